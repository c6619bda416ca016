"""Lock time: envctl lock against `uv pip compile --generate-hashes` on the same inputs, warm
and cold; `envctl matrix refresh` cold and with nothing changed.

    python benchmarks/bench_lock.py [--repeat 3] [--only cold|warm]

Every figure is a whole process (start-up included), as a person runs it.  Cold: a fresh
ENVCTL_CACHE (uv's cache and the wheel-metadata cache live under it) and, for uv, a fresh
UV_CACHE_DIR, each removed after its run (uv unpacks a find-links wheel into its cache) and the
disk synced before the next.  Warm: the same caches reused after one filling run.  envctl and uv
runs alternate, each first in half the pairs, so machine load hits both alike.  Prints median seconds; a script, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from envctl.catalog import Project  # noqa: E402
from envctl.spec import defaults  # noqa: E402

SPECS = ("pytorch-2.13-cpu", "pytorch-2.14-cu130")
ENVCTL = [sys.executable, "-m", "envctl"]


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    took = time.perf_counter() - start
    if proc.returncode not in (0,):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return took


def uv_command(spec, out: Path) -> list[str]:
    """What a person would type to get the same resolution with uv alone."""
    import uv

    reqs = out.parent / f"{spec.name}.in"
    reqs.write_text("\n".join(spec.pip_requirements()) + "\n")
    glibc = defaults()["target"]["glibc"].replace(".", "_")
    cmd = [uv.find_uv_bin(), "pip", "compile", str(reqs), "-o", str(out), "--generate-hashes", "--no-config",
           "--quiet", "--python-version", spec.python, "--python-platform", f"x86_64-manylinux_{glibc}",
           "--index-url", spec.pip_index.index_url]
    for url in spec.pip_index.extra_index_urls:
        cmd += ["--extra-index-url", url]
    for link in spec.pip_index.find_links:
        cmd += ["--find-links", link]
    return cmd


def base_env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set on the build machines) would recompile envctl's modules from source
    # on every run of this editable checkout; an installed envctl has its bytecode from pip.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UV_", "PIP_INDEX", "PIP_EXTRA")) and k != "PYTHONDONTWRITEBYTECODE"}
    env["ENVCTL_PROJECT"] = str(REPO)
    return env


def pairs(spec, tmp: Path, repeat: int, modes: tuple[str, ...] = ("cold", "warm")) -> list[tuple]:
    rows = []
    env0 = base_env()
    for mode in modes:
        times = {"envctl": [], "uv": []}
        warm_e, warm_u = tmp / f"warm-envctl-{spec.name}", tmp / f"warm-uv-{spec.name}"
        for i in range(repeat + (1 if mode == "warm" else 0)):
            ecache = tmp / f"cold-envctl-{spec.name}-{i}" if mode == "cold" else warm_e
            ucache = tmp / f"cold-uv-{spec.name}-{i}" if mode == "cold" else warm_u
            envctl_run = lambda: run([*ENVCTL, "lock", spec.name], env0 | {"ENVCTL_CACHE": str(ecache)})  # noqa: E731
            uv_run = lambda: run(uv_command(spec, tmp / "out.txt"), env0 | {"UV_CACHE_DIR": str(ucache)})  # noqa: E731
            if i % 2:  # each goes first in half the pairs
                t_u, t_e = uv_run(), envctl_run()
            else:
                t_e, t_u = envctl_run(), uv_run()
            if mode == "cold":  # uv unpacks a find-links torch into its cache: ~0.7 GB a run
                shutil.rmtree(ecache, ignore_errors=True)
                shutil.rmtree(ucache, ignore_errors=True)
                os.sync()  # the deletion's writeback lands here, not in the next timed run
            if mode == "warm" and i == 0:
                continue  # the run that filled the caches
            times["envctl"].append(t_e)
            times["uv"].append(t_u)
        shutil.rmtree(warm_e, ignore_errors=True)
        shutil.rmtree(warm_u, ignore_errors=True)
        e, u = statistics.median(times["envctl"]), statistics.median(times["uv"])
        rows.append((spec.name, mode, e, u, e / u, times))
    return rows


def refresh_rows(tmp: Path, repeat: int) -> list[tuple]:
    data = tmp / "release-matrix.yaml"
    shutil.copy(REPO / "envctl" / "data" / "release-matrix.yaml", data)
    cmd = [*ENVCTL, "matrix", "refresh", "--check", "--file", str(data)]
    env0 = base_env()
    cold = []
    for i in range(repeat):
        cold.append(run(cmd, env0 | {"ENVCTL_CACHE": str(tmp / f"refresh-cold-{i}")}))
        shutil.rmtree(tmp / f"refresh-cold-{i}", ignore_errors=True)
    warm_cache = tmp / "refresh-warm"
    run(cmd, env0 | {"ENVCTL_CACHE": str(warm_cache)})
    warm = [run(cmd, env0 | {"ENVCTL_CACHE": str(warm_cache)}) for _ in range(repeat)]
    return [("matrix refresh", "cold", statistics.median(cold), cold),
            ("matrix refresh", "nothing new", statistics.median(warm), warm)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("cold", "warm"), help="one cache state, no refresh rows")
    args = parser.parse_args()
    modes = (args.only,) if args.only else ("cold", "warm")
    tmp = Path(tempfile.mkdtemp(prefix="envctl-bench-lock-"))
    project = Project(REPO)
    try:
        rows = [r for name in SPECS for r in pairs(project.resolve(name), tmp, args.repeat, modes)]
        refresh = [] if args.only else refresh_rows(tmp, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'lock (whole process)':<26} {'cache':<6} {'envctl s':>9} {'uv s':>7} {'ratio':>6}  goal <= 1.5x")
    for name, mode, e, u, ratio, times in rows:
        runs = " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(times["envctl"], times["uv"]))
        print(f"{name:<26} {mode:<6} {e:>9.2f} {u:>7.2f} {ratio:>5.2f}x  {'met' if ratio <= 1.5 else 'NOT met'}"
              f"  (runs envctl/uv: {runs})")
    if not refresh:
        return
    print()
    print(f"{'refresh (all torch >= 2.0)':<26} {'cache':<12} {'median s':>9}  goal")
    for name, mode, med, runs in refresh:
        goal = 30 if mode == "cold" else 3
        print(f"{name:<26} {mode:<12} {med:>9.2f}  < {goal} s {'met' if med < goal else 'NOT met'}"
              f"  (runs: {' '.join(f'{t:.2f}' for t in runs)})")


if __name__ == "__main__":
    main()
