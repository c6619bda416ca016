"""The benchmark gate's error rates: how often `envctl bench compare` calls a change where
there is none (every pair of runs of one environment), and how often it catches a real one.

    python benchmarks/bench_gate.py cpu [--runs 4] [--out benchmarks/results/gate/cpu]
        runs the quick probe on this CPU --runs times quiet, then --runs times beside two
        processes spinning on the CPU, saves each document, then compares every pair
    python benchmarks/bench_gate.py compare DIR [--same GLOB ...] [--changed A_GLOB B_GLOB]
        compares documents already made (the H100 runs: benchmarks/gate_device.sh)

A pair of one environment passes when compare draws no `slower`/`faster` verdict (speedup or
absolute) and exits 0; a changed pair is caught when compare exits 1. Prints each pair's
outcome, then the rates; the documents and this output are committed under results/gate/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
PROBE = HERE.parent / "envctl" / "probes" / "smoke.py"
GATE_MODES = None  # every mode gates, as `envctl bench compare` does by default


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def probe_runs(out: Path, prefix: str, runs: int, spinners: int) -> list[Path]:
    """Run the quick probe ``runs`` times (a fresh process each), ``spinners`` busy processes beside it."""
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(spinners)]
    for p in procs:
        p.start()
    paths = []
    try:
        for i in range(1, runs + 1):
            start = time.monotonic()
            proc = subprocess.run([sys.executable, str(PROBE), "--quick"], capture_output=True, text=True,
                                  timeout=900)
            doc = json.loads(proc.stdout)
            doc["wall_s"] = round(time.monotonic() - start, 2)
            path = out / f"{prefix}-{i}.json"
            path.write_text(json.dumps(doc, indent=1, sort_keys=True))
            paths.append(path)
            print(f"{path.name}: wall {doc['wall_s']:.1f} s, {spinners} spinning processes", flush=True)
    finally:
        stop.set()
        for p in procs:
            p.join(5)
    return paths


def outcome(a: Path, b: Path) -> tuple[int, list[str], int]:
    """(exit code, the verdicts drawn, rows withheld) of comparing two documents."""
    from envctl.bench import compare, load_runs

    c = compare(load_runs(str(a)), load_runs(str(b)), gate_modes=GATE_MODES)
    drawn = [f"{' '.join(map(str, r.key))}: {v}" for r in c.rows
             for v in (r.verdict, r.abs_verdict) if v in ("slower", "faster", "B slower", "B faster")]
    return c.exit_code, drawn, len(c.withheld)


def same_environment(paths: list[Path], label: str) -> tuple[int, int]:
    """Every pair, both orders: (false alarms, pairs)."""
    alarms = pairs = 0
    for a, b in itertools.permutations(paths, 2):
        code, drawn, withheld = outcome(a, b)
        pairs += 1
        bad = code != 0 or bool(drawn)
        alarms += bad
        print(f"  {label} {a.name} vs {b.name}: exit {code}, {withheld} withheld"
              + (f", FALSE ALARM: {'; '.join(drawn)}" if bad else ""))
    return alarms, pairs


def changed(a_paths: list[Path], b_paths: list[Path]) -> tuple[int, int]:
    """Every A against every B: (caught, pairs)."""
    caught = pairs = 0
    for a, b in itertools.product(a_paths, b_paths):
        code, drawn, withheld = outcome(a, b)
        pairs += 1
        caught += code == 1
        print(f"  changed {a.name} vs {b.name}: exit {code}, {withheld} withheld; " + ("; ".join(drawn) or "no verdict"))
    return caught, pairs


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--runs", type=int, default=4)
    cpu.add_argument("--out", type=Path, default=HERE / "results" / "gate" / "cpu")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("dir", type=Path)
    cmp_.add_argument("--same", nargs="+", default=[], help="globs, each a set of runs of one environment")
    cmp_.add_argument("--changed", nargs=2, metavar=("A_GLOB", "B_GLOB"))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}, gated modes: every mode")
    if args.what == "cpu":
        args.out.mkdir(parents=True, exist_ok=True)
        sets = {"quiet": probe_runs(args.out, "quiet", args.runs, 0),
                "spinning": probe_runs(args.out, "spinning", args.runs, 2)}
        for label, paths in sets.items():
            alarms, pairs = same_environment(paths, label)
            print(f"{label}: false alarms in {alarms} of {pairs} ordered pairs")
        return
    for pattern in args.same:
        paths = sorted(args.dir.glob(pattern))
        alarms, pairs = same_environment(paths, pattern)
        print(f"{pattern}: false alarms in {alarms} of {pairs} ordered pairs")
    if args.changed:
        a_paths, b_paths = (sorted(args.dir.glob(g)) for g in args.changed)
        caught, pairs = changed(a_paths, b_paths)
        print(f"{args.changed[1]} against {args.changed[0]}: caught in {caught} of {pairs} pairs")


if __name__ == "__main__":
    main()
