"""Time to check N small TorchScript artifacts against one image under each runtime.

    python benchmarks/bench_compat.py [--counts 1,10,50,100] [--image pytorch-2.13-cpu]
                                      [--runtimes python,libtorch]

Every artifact (a small scripted model with its own weights and sample inputs) is loaded
and run in its own child inside ONE container: a forked Python child, or under libtorch a
child of the C++ loader.  "beyond start" subtracts the 1-artifact run (container start,
torch import).  Goal: 100 artifacts under 30 s beyond the container start for each runtime
on the CI machine.  The libtorch loader is compiled once per image (in a fresh cache here):
that one-time build is reported on its own line.  Needs torch on the host (to make them),
a running engine and the image built (envctl build pytorch-2.13-cpu).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make(folder: Path, count: int) -> list[tuple[Path, Path, Path]]:
    import torch

    warnings.simplefilter("ignore")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        torch.manual_seed(i)
        model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)))
        x = torch.randn(2, 16)
        paths = folder / f"m{i}.pt", folder / f"m{i}.in.pt", folder / f"m{i}.out.pt"
        model.save(str(paths[0]))
        torch.save((x,), paths[1])
        torch.save([model(x).detach()], paths[2])
        out.append(paths)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,10,50,100")
    parser.add_argument("--image", default="pytorch-2.13-cpu")
    parser.add_argument("--runtimes", default="python,libtorch")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="envctl-bench-compat-"))
    os.environ["ENVCTL_RECORDS"] = str(tmp / "records.db")
    os.environ["ENVCTL_ARTIFACTS"] = str(tmp / "store")
    os.environ["ENVCTL_CACHE"] = str(tmp / "cache")  # a cold loader cache: the build is measured
    from envctl.artifacts import Registry
    from envctl.catalog import Project
    from envctl.compat import ensure_loader, image_target, run
    from envctl.engine import Engine
    from envctl.records import Records

    registry = Registry(Records())
    made = make(tmp / "made", max(counts))
    arts = [registry.add(p, name=p.stem, inputs=i, outputs=o)[0] for p, i, o in made]
    engine = Engine.connect()
    target = image_target(Project(REPO), engine, args.image)
    print(f"image {args.image} ({target.ref.split(':')[-1][:12]}), one container per run, device cpu")
    for runtime in args.runtimes.split(","):
        loader = None
        if runtime == "libtorch":
            start = time.perf_counter()
            loader = ensure_loader(target, engine=engine)
            print(f"libtorch loader: one-time build {time.perf_counter() - start:.1f}s (container start and g++)")
            start = time.perf_counter()
            assert not ensure_loader(target, engine=engine).built
            print(f"libtorch loader: second lookup {time.perf_counter() - start:.2f}s (no rebuild)")
        rows = []
        for n in counts:
            start = time.perf_counter()
            outcomes = run(target, arts[:n], registry, engine=engine, device="cpu", runtime=runtime, loader=loader)
            seconds = time.perf_counter() - start
            assert all(o.status == "ok" for o in outcomes), [o.detail for o in outcomes if o.status != "ok"][:3]
            rows.append((n, seconds))
        base = rows[0][1] if rows[0][0] == 1 else 0.0
        print(f"runtime {runtime}")
        print(f"{'artifacts':>9} {'total s':>8} {'beyond start s':>15} {'per artifact ms':>16}")
        for n, seconds in rows:
            beyond = seconds - base
            per = beyond / (n - 1) * 1000 if n > 1 else 0.0
            print(f"{n:>9} {seconds:>8.2f} {beyond:>15.2f} {per:>16.1f}")


if __name__ == "__main__":
    main()
