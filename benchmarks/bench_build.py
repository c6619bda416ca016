"""Cold build time, no-op rebuild time and image size: envctl against the naive way.

    python benchmarks/bench_build.py [--rounds 2]

"Naive" is a hand-written single-stage Dockerfile that installs the same locked wheels
from a COPY layer (what most teams write first).  Both build from the same local base
with the same builder (the engine's: BuildKit when a CLI has it), the layer cache off,
alternating so machine noise hits both; the ratio of medians is what to read.  With
--classic both use the SDK's classic builder (envctl then builds in two stages).  Needs a running engine and the base (scripts/engine-up.sh, envctl base).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from envctl.build import assemble_context, build_image, plan_build  # noqa: E402
from envctl.cache import PackageCache  # noqa: E402
from envctl.catalog import Project  # noqa: E402
from envctl.engine import Engine  # noqa: E402
from envctl.lock import load_lock  # noqa: E402

NAIVE = """FROM {base}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv --without-pip /opt/venv \\
 && /opt/venv/bin/python /tmp/wheels/{pip}/pip install --no-index --no-deps -q \\
      -r /tmp/wheels/requirements.txt --find-links /tmp/wheels
ENV PATH=/opt/venv/bin:$PATH
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--classic", action="store_true", help="use the SDK's classic builder for both")
    args = parser.parse_args()
    if args.classic:
        import os

        os.environ["ENVCTL_BUILDER"] = "classic"
    project = Project(REPO)
    spec = project.resolve("pytorch-2.13-cpu")
    lock = load_lock(project.lock_path(spec.name))
    engine = Engine.connect()
    cache = PackageCache()
    base = engine.image(spec.base)
    plan = plan_build(spec, lock, project=project, tag="envctl-bench/envctl:latest", base_id=base.id,
                      builder=engine.builder())
    pip_wheel = next(p.filename for p in lock.pip if p.name == "pip")
    results = {"envctl": [], "naive": []}
    sizes = {}
    for _ in range(args.rounds):
        start = time.perf_counter()
        res = build_image(engine, plan, cache=cache, log_dir=Path(tempfile.mkdtemp()), rebuild=True, no_cache=True)
        results["envctl"].append(time.perf_counter() - start)
        sizes["envctl"] = res.image.size
        with tempfile.TemporaryDirectory(dir=cache.root) as tmp:
            ctx = Path(tmp)
            start = time.perf_counter()
            assemble_context(plan, cache, ctx)
            (ctx / "Dockerfile").write_text(NAIVE.format(base=spec.base, pip=pip_wheel))
            out = engine.build(ctx, tag="envctl-bench/naive:latest", labels={}, no_cache=True)
            results["naive"].append(time.perf_counter() - start)
            sizes["naive"] = engine.image(out.image_id).size
    noop = []
    for _ in range(5):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "envctl", "build", "pytorch-2.13-cpu", "--tag",
                               "envctl-bench/envctl:latest"], capture_output=True, text=True)
        noop.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr
    env_med, naive_med = statistics.median(results["envctl"]), statistics.median(results["naive"])
    print(f"builder: {engine.builder()}; rounds: {args.rounds} (alternating, layer cache off, warm package cache)")
    print(f"{'build':<8} {'cold median s':>14} {'all runs s':>24} {'image MB':>9}")
    for name in ("envctl", "naive"):
        runs = ", ".join(f"{t:.1f}" for t in results[name])
        print(f"{name:<8} {statistics.median(results[name]):>14.1f} {runs:>24} {sizes[name] / 1e6:>9.0f}")
    print(f"cold time ratio envctl/naive: {env_med / naive_med:.3f}  (goal <= 1.10)")
    print(f"size ratio envctl/naive:      {sizes['envctl'] / sizes['naive']:.3f}  (goal <= 1.00)")
    print(f"no-op `envctl build` (CLI, 5 runs): median {statistics.median(noop):.2f}s, max {max(noop):.2f}s "
          f"(goal < 2 s)")
    for ref in ("envctl-bench/envctl:latest", "envctl-bench/naive:latest"):
        engine.remove_image(ref)


if __name__ == "__main__":
    main()
