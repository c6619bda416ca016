"""Lock time: the fixture conda channel and pytorch-2.13-cpu, cold and warm caches.

    python benchmarks/bench_lock.py [--repeat 3]

Cold: fresh repodata cache (under $ENVCTL_CACHE) and pip HTTP cache.  Warm: the same caches reused.
Prints a table of median seconds; run it as a script, it is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fixtures.conda_channel import build_channel  # noqa: E402

from envctl.catalog import Project  # noqa: E402
from envctl.lock import lock_image  # noqa: E402
from envctl.spec import parse_spec  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="envctl-bench-"))
    channel = build_channel(tmp / "fixture")
    fixture = parse_spec({"version": 1, "name": "fixture-env", "python": "3.11", "torch": "2.13.0", "cuda": "cu126",
                          "torch_source": "base", "python_source": "base", "channels": [str(channel)],
                          "conda": ["footools", "gpukit", "pyshim"]}, path="bench")
    cpu = Project(REPO).resolve("pytorch-2.13-cpu")
    rows = []
    for label, spec in (("fixture channel (conda)", fixture), ("pytorch-2.13-cpu (pip)", cpu)):
        for mode in ("cold", "warm"):
            times = []
            warm_cache = tmp / f"cache-{label[:7]}"
            for i in range(args.repeat):
                cache = tmp / f"cold-{label[:7]}-{i}" if mode == "cold" else warm_cache
                os.environ["PIP_CACHE_DIR"] = str(cache / "pip")
                os.environ["ENVCTL_CACHE"] = str(cache / "envctl")  # rattler's repodata cache lives here
                if mode == "warm" and i == 0:
                    lock_image(spec)  # fill the caches first
                times.append(timed(lambda: lock_image(spec)))
            rows.append((label, mode, statistics.median(times), min(times), max(times)))
    print(f"{'what':<26} {'cache':<5} {'median s':>9} {'min s':>7} {'max s':>7}")
    for label, mode, med, lo, hi in rows:
        print(f"{label:<26} {mode:<5} {med:>9.2f} {lo:>7.2f} {hi:>7.2f}")


if __name__ == "__main__":
    main()
