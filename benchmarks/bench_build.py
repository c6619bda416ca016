"""Build figures: cold build time and image size against the naive way, a small-pin rebuild,
and the no-op rebuild.

    python benchmarks/bench_build.py [--image pytorch-2.14-cu130] [--rounds 1] [--pin filelock]

"Naive" is a hand-written single-stage Dockerfile that installs the same locked wheels
from a COPY layer (what most teams write first).  Both build from the same local base
with the same builder (the engine's: BuildKit when a CLI has it), the layer cache off,
alternating so machine noise hits both; the ratio of medians is what to read.

Small pin: one package of the last layer (--pin, a pure-Python one) is moved to its
previous release on PyPI, and the image is built again with the layer cache on: the
rebuild time, and the bytes of the layers that changed against the whole image.
Needs a running engine, the base (scripts/engine-up.sh, envctl base), and PyPI for --pin.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from envctl.build import assemble_context, build_image, plan_build, requirements_txt  # noqa: E402
from envctl.cache import PackageCache  # noqa: E402
from envctl.catalog import Project  # noqa: E402
from envctl.engine import Engine  # noqa: E402
from envctl.lock import load_lock  # noqa: E402
from envctl.net import ssl_context  # noqa: E402

NAIVE = """FROM {base}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv --without-pip /opt/venv \\
 && /opt/venv/bin/python /tmp/wheels/{pip}/pip install --no-index --no-deps -q \\
      -r /tmp/wheels/requirements.txt --find-links /tmp/wheels
ENV PATH=/opt/venv/bin:$PATH
"""


def previous_release(name: str, version: str):
    """(version, url, sha256, filename) of the py3-none-any wheel of the release before ``version``."""
    from packaging.version import Version

    req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=30, context=ssl_context()) as resp:
        files = json.load(resp)["files"]
    wheels = {}
    for f in files:
        if f["filename"].endswith("-py3-none-any.whl") and not f.get("yanked"):
            wheels[Version(f["filename"].split("-")[1])] = f
    older = sorted(v for v in wheels if v < Version(version))
    f = wheels[older[-1]]
    return str(older[-1]), f["url"], f["hashes"]["sha256"], f["filename"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", default="pytorch-2.14-cu130")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--pin", default="filelock", help="a pure-Python package of the last layer to move")
    args = parser.parse_args()
    project = Project(REPO)
    spec = project.resolve(args.image)
    lock = load_lock(project.lock_path(spec.name))
    engine = Engine.connect()
    cache = PackageCache()
    base = engine.image(spec.base)
    plan = plan_build(spec, lock, project=project, tag="envctl-bench/envctl:latest", base_id=base.id,
                      builder=engine.builder())
    pip_wheel = next(p.filename for p in lock.pip if p.name == "pip")
    results = {"envctl": [], "naive": []}
    sizes = {}
    built_id = ""
    for _ in range(args.rounds):
        start = time.perf_counter()
        res = build_image(engine, plan, cache=cache, log_dir=Path(tempfile.mkdtemp()), rebuild=True, no_cache=True)
        results["envctl"].append(time.perf_counter() - start)
        sizes["envctl"], built_id = res.image.size, res.image.id
        with tempfile.TemporaryDirectory(dir=cache.root) as tmp:
            ctx = Path(tmp)
            start = time.perf_counter()
            assemble_context(plan, cache, ctx)  # the same verified files, flattened for a COPY
            wheels = ctx / "wheels"
            wheels.mkdir()
            for layer in (ctx / "layers").iterdir():
                for f in layer.glob("*.whl"):
                    f.rename(wheels / f.name)
            (wheels / "requirements.txt").write_text(requirements_txt(lock))
            (ctx / "Dockerfile").write_text(NAIVE.format(base=spec.base, pip=pip_wheel))
            out = engine.build(ctx, tag="envctl-bench/naive:latest", labels={}, no_cache=True)
            results["naive"].append(time.perf_counter() - start)
            sizes["naive"] = engine.image(out.image_id).size

    # One small pin moved: the layer cache keeps every layer but the last.
    old = next(p for p in lock.pip if p.name == args.pin)
    version, url, sha, filename = previous_release(old.name, old.version)
    pinned = replace(lock, lock_hash="sha256:bench-pin",
                     pip=[replace(p, version=version, url=url, sha256=sha, filename=filename)
                          if p.name == args.pin else p for p in lock.pip])
    plan2 = plan_build(spec, pinned, project=project, tag="envctl-bench/pinned:latest", base_id=base.id,
                       builder=engine.builder())
    start = time.perf_counter()
    res2 = build_image(engine, plan2, cache=cache, log_dir=Path(tempfile.mkdtemp()), rebuild=True)
    pin_s = time.perf_counter() - start
    before = engine.client.images.get(built_id).attrs["RootFS"]["Layers"]
    after = engine.client.images.get(res2.image.id).attrs["RootFS"]["Layers"]
    # The sealed layers are the image's last ones, in order (the base's come first).
    sized = dict(zip(after[-len(res2.layers):], (e["bytes"] for e in res2.layers)))
    changed = [d for d in after if d not in before]
    changed_bytes = sum(sized.get(d, 0) for d in changed)

    noop = []
    for _ in range(5):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "envctl", "build", spec.name, "--tag",
                               "envctl-bench/envctl:latest"], capture_output=True, text=True)
        noop.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr

    env_med, naive_med = statistics.median(results["envctl"]), statistics.median(results["naive"])
    print(f"image: {spec.name}; builder: {engine.builder()}; rounds: {args.rounds} "
          f"(alternating, layer cache off, warm package cache)")
    print(f"{'build':<8} {'cold median s':>14} {'all runs s':>24} {'image MB':>9}")
    for name in ("envctl", "naive"):
        runs = ", ".join(f"{t:.1f}" for t in results[name])
        print(f"{name:<8} {statistics.median(results[name]):>14.1f} {runs:>24} {sizes[name] / 1e6:>9.0f}")
    print(f"cold time ratio envctl/naive: {env_med / naive_med:.3f}  (goal <= 1.00)")
    print(f"size ratio envctl/naive:      {sizes['envctl'] / sizes['naive']:.3f}  (goal <= 1.00)")
    print("layers: " + ", ".join(f"{e['layer']} {e['bytes'] / 1e6:.0f} MB" for e in res2.layers))
    print(f"small pin ({args.pin} {old.version} -> {version}): rebuild {pin_s:.1f}s = "
          f"{pin_s / env_med:.1%} of the cold build (goal < 20%); {len(changed)} of {len(after)} layers changed, "
          f"{changed_bytes / 1e6:.0f} MB = {changed_bytes / res2.image.size:.2%} of the image (goal < 5%)")
    print(f"no-op `envctl build` (CLI, 5 runs): median {statistics.median(noop):.2f}s, max {max(noop):.2f}s "
          f"(goal < 1 s)")
    for ref in ("envctl-bench/envctl:latest", "envctl-bench/naive:latest", "envctl-bench/pinned:latest"):
        engine.remove_image(ref)


if __name__ == "__main__":
    main()
