"""Sweep figures: `envctl matrix verify` over a range, time and disk per combination and in all,
then the same sweep again with nothing new (the resume).

    python benchmarks/bench_matrix.py [--since 2.0] [--until X.Y] [--variants default] [--python 3.11]
                                      [--keep N] [--max-disk GB] [--records PATH] [--html DIR]
                                      [--resume-only]

Targets (issue #27): the default variant of every stable release since 2.0 (about 25 images) on
one 2-core build machine in under 2 hours, at most 40 GB of disk in use at any time (the package
cache and the images together), and a resumed run with nothing new under 10 s.

Disk is measured from outside the sweep after each combination: the package cache's folder
($ENVCTL_CACHE) plus what the engine's image layers grew by since the start (`docker system df`'s
LayersSize; other users of a shared engine count too, so read it on a quiet machine).  The
records go to a fresh database unless --records names one (a second bench run then resumes).
Needs a running engine and the base (scripts/engine-up.sh, envctl base).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from envctl.cache import PackageCache  # noqa: E402
from envctl.catalog import find_project  # noqa: E402
from envctl.engine import Engine  # noqa: E402
from envctl.matrix import load_matrix  # noqa: E402
from envctl.sweep.plan import combinations, tally  # noqa: E402
from envctl.sweep.run import run_sweep  # noqa: E402

HOURS_2, DISK_40GB, RESUME_S = 2 * 3600, 40e9, 10.0


def layers_size(engine: Engine) -> int:
    return int(engine.client.df().get("LayersSize") or 0)


def sweep(combos, args, engine: Engine, *, label: str) -> tuple[float, float]:
    """Run the sweep, printing a row per combination; (seconds, peak GB in use)."""
    cache, start_layers = PackageCache(), layers_size(engine)
    state = {"last": time.monotonic(), "peak": 0.0, "measuring": 0.0}
    print(f"\n{label}: {len(combos)} combinations")
    print(f"{'combination':36} {'state':9} {'class':28} {'lock s':>7} {'build s':>8} {'verify s':>9} "
          f"{'wall s':>7} {'disk GB':>8}")

    def row(cell, fresh: bool) -> None:
        now = time.monotonic()
        disk = (cache.disk_bytes() + max(0, layers_size(engine) - start_layers)) / 1e9
        state["peak"] = max(state["peak"], disk)
        state["measuring"] += time.monotonic() - now  # the bench's own du and `docker system df`

        def t(v):
            return f"{v:.1f}" if v is not None else "-"

        print(f"{cell.combo.label:36} {cell.state if fresh else 'recorded':9} {(cell.failure or '')[:28]:28} "
              f"{t(cell.lock_s):>7} {t(cell.build_s):>8} {t(cell.verify_s):>9} {now - state['last']:7.1f} "
              f"{disk:8.2f}", flush=True)
        state["last"] = now

    result = run_sweep(find_project(), combos, gpus=args.gpus, keep=args.keep, retry_failed=False,
                       max_disk=int(args.max_disk * 1e9) if args.max_disk is not None else None,
                       progress=lambda m: print(f"    {m}", file=sys.stderr, flush=True), on_cell=row)
    classes = ", ".join(f"{name} {n}" for name, n in tally(result.cells).most_common()) or "none"
    seconds = result.seconds - state["measuring"]  # the sweep's time, without the bench's disk readings
    print(f"{label}: {seconds:.1f} s for {len(result.cells)} combinations "
          f"(+{state['measuring']:.1f} s of this bench's disk readings after each, not counted) "
          f"({sum(c.ok for c in result.cells)} verified, {len(result.settled)} from the records); "
          f"peak disk {state['peak']:.2f} GB measured, {result.peak_bytes / 1e9:.2f} GB by the sweep's own count; "
          f"images given back: {len(result.removed)}; package files evicted: {result.evicted_files} "
          f"({result.evicted_bytes / 1e9:.2f} GB); not verified: {classes}")
    if args.html:
        from envctl.fsio import atomic_write
        from envctl.sweep.html import render_dashboard

        Path(args.html).mkdir(parents=True, exist_ok=True)
        atomic_write(Path(args.html) / "index.html", render_dashboard(result.cells, note=f"bench_matrix {label}"))
    if result.interrupt is not None:
        raise result.interrupt
    return seconds, state["peak"]


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", default="2.0")
    parser.add_argument("--until", default=None)
    parser.add_argument("--variants", default="default")
    parser.add_argument("--python", action="append", default=[])
    parser.add_argument("--gpus", default="none")
    parser.add_argument("--keep", type=int, default=None)
    parser.add_argument("--max-disk", type=float, default=None, metavar="GB")
    parser.add_argument("--records", default=None, help="records database (default: a fresh one)")
    parser.add_argument("--html", default=None, metavar="DIR")
    parser.add_argument("--resume-only", action="store_true", help="only the resumed pass (give --records)")
    args = parser.parse_args()
    if args.records is None:
        args.records = str(Path(tempfile.mkdtemp(prefix="bench-matrix-")) / "records.db")
    os.environ["ENVCTL_RECORDS"] = args.records
    combos = combinations(load_matrix(), since=args.since, until=args.until, variants=args.variants,
                          pythons=args.python)
    engine = Engine.connect()
    print(f"records: {args.records}; keep {args.keep}, max disk {args.max_disk} GB")
    if args.resume_only:  # the records already hold a sweep of this range: time its resume alone
        again, peak = sweep(combos, args, engine, label="resumed, nothing new")
        print(f"\n{'resumed, nothing new':24} {again:10.2f} s  < {RESUME_S:.0f} s "
              f"{'met' if again < RESUME_S else 'MISSED'}")
        return
    seconds, peak = sweep(combos, args, engine, label="sweep")
    again, _ = sweep(combos, args, engine, label="resumed, nothing new")
    whole = args.since == "2.0" and args.until is None and args.variants == "default"
    print(f"\n{'sweep':24} {seconds:10.1f} s  " + (f"< {HOURS_2} s {'met' if seconds < HOURS_2 else 'MISSED'}"
                                                   if whole else "(target is for the whole range since 2.0)"))
    print(f"{'peak disk':24} {peak:10.2f} GB < {DISK_40GB / 1e9:.0f} GB {'met' if peak * 1e9 < DISK_40GB else 'MISSED'}")
    print(f"{'resumed, nothing new':24} {again:10.2f} s  < {RESUME_S:.0f} s {'met' if again < RESUME_S else 'MISSED'}")


if __name__ == "__main__":
    main()
