"""The quick probe on this CPU, twice: wall time (goal: under 60 s on a 2-core machine) and verdicts.

    python benchmarks/cpu_quick.py [--runs 2] [--out benchmarks/results/cpu]

Runs envctl/probes/smoke.py --quick as `envctl verify --quick` would in a CPU image (cold
compile caches each time), saves each document, and prints per run: wall time, the probe's
phases, the CPU use of other processes during the timing, and each mode's speedup verdict;
then whether two runs ever gave conclusive verdicts in opposite directions (goal: never).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE.parent / "envctl" / "probes" / "smoke.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    docs = []
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    for i in range(1, args.runs + 1):
        start = time.monotonic()
        proc = subprocess.run([sys.executable, str(PROBE), "--quick"], capture_output=True, text=True, timeout=900)
        wall = time.monotonic() - start
        doc = json.loads(proc.stdout)
        doc["wall_s"] = round(wall, 2)
        docs.append(doc)
        (args.out / f"quick-{i}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
        m = doc.get("machine") or {}
        print(f"run {i}: wall {wall:.1f} s (goal < 60), ok {doc.get('ok')}, phases {doc.get('phases')}, "
              f"other processes {m.get('other_cpu_cores')} of {m.get('cores')} cores")
        for r in doc["benchmarks"]:
            sp = r.get("speedup") or {}
            if sp:
                print(f"  {r['model']:18} {r['mode']:16} {sp['median']:.2f}x [{sp['low']:.2f}-{sp['high']:.2f}] "
                      f"{sp['verdict']}" + (f" ({'; '.join(sp['why'])})" if sp.get("why") else ""))
    opposite = []
    for i in range(len(docs)):
        for j in range(i + 1, len(docs)):
            vi = {(r["model"], r["mode"]): (r.get("speedup") or {}).get("verdict") for r in docs[i]["benchmarks"]}
            vj = {(r["model"], r["mode"]): (r.get("speedup") or {}).get("verdict") for r in docs[j]["benchmarks"]}
            opposite += [k for k in vi if {vi[k], vj.get(k)} == {"faster", "slower"}]
    print(f"conclusive verdicts in opposite directions between runs: {opposite or 'none'}")


if __name__ == "__main__":
    main()
