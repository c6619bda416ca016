"""CLI start-up: how long the quick commands take, end to end, as a user runs them.

    python benchmarks/bench_cli.py [--runs 11]

Each command runs as ``python -m envctl ...`` in a fresh interpreter (NO_COLOR, output to
pipes), against this checkout's catalog and an empty records database.  Prints the median,
minimum and maximum wall seconds, and the heavy modules each one imported (pydantic,
conda_lock, docker, jinja2 must stay off this path).  Run it as a script; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pydantic", "conda_lock", "docker", "jinja2", "rattler")
COMMANDS = [
    (["catalog"], 0.5),
    (["show", "pytorch-2.8-cu118"], 0.3),  # the refusal: answered from the matrix
    (["show", "pytorch-2.13-cpu"], None),
    (["--help"], None),
]


def heavy_imports(args: list[str], env: dict) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", *args], capture_output=True,
                          text=True, env=env)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return sorted(n for n in names if n in HEAVY)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="envctl-bench-cli-"))
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", "ENVCTL_PROJECT": str(REPO),
           "ENVCTL_RECORDS": str(tmp / "records.db")}
    print(f"python {sys.version.split()[0]}; {args.runs} runs each; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<32} {'median s':>9} {'min s':>7} {'max s':>7}  {'goal':>6}  heavy imports")
    for argv, goal in COMMANDS:
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "envctl", *argv], capture_output=True, env=env)
            times.append(time.perf_counter() - start)
        heavy = heavy_imports(argv, env)
        goal_text = f"< {goal}" if goal else "-"
        print(f"{'envctl ' + ' '.join(argv):<32} {statistics.median(times):>9.3f} {min(times):>7.3f} "
              f"{max(times):>7.3f}  {goal_text:>6}  {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
