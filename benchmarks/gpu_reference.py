"""Run the smoke probe natively twice with the reference settings and compare with the H100 table.

    python benchmarks/gpu_reference.py [--out DIR] [--python PYTHON]

Runs envctl/probes/smoke.py (standard library and torch only: no envctl install needed on the
GPU machine) twice at level "standard" (ResNet-50 and the transformer block; fp32 and bf16;
batch 1 and 32; eager, compile default and reduce-overhead, script, trace; 50 timed runs),
writes both JSON documents and a markdown table to DIR (default benchmarks/results), and
prints, per row, the two medians, their spread and the difference from the reference table
(benchmarks/reference-h100.json).  Goals: within 15% of the reference, run-to-run spread
under 5%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE.parent / "envctl" / "probes" / "smoke.py"
MODES = ("eager", "compile-default", "compile-reduce-overhead", "script", "trace")
CONFIG = {"gpus": "all", "level": "standard",
          "benchmark": {"models": ["resnet50", "transformer"], "dtypes": ["fp32", "bf16"], "batch_sizes": [1, 32],
                        "compile_modes": ["default", "reduce-overhead"], "warmup": 10, "runs": 50}}


def run_probe(python: str) -> dict:
    proc = subprocess.run([python, str(PROBE), "--config", "-"], input=json.dumps(CONFIG), capture_output=True,
                          text=True, timeout=3600)
    sys.stderr.write(proc.stderr[-2000:])
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    docs = [run_probe(args.python) for _ in range(2)]
    for i, doc in enumerate(docs, 1):
        (args.out / f"probe-run{i}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    ref = json.loads((HERE / "reference-h100.json").read_text())
    refs = {(r["dtype"], r["batch"]): r for r in ref["rows"]}
    lines = ["| dtype | batch | mode | run 1 ms | run 2 ms | spread % | reference ms | vs reference % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = [{(r["dtype"], r["batch"], r["mode"]): r for r in d.get("benchmarks", []) if r["model"] == "resnet50"}
            for d in docs]
    for (dtype, batch), ref_row in sorted(refs.items()):
        for mode in MODES:
            a, b = (r.get((dtype, batch, mode), {}).get("median_ms") for r in rows)
            if a is None or b is None:
                lines.append(f"| {dtype} | {batch} | {mode} | {a} | {b} | - | {ref_row[mode]} | - |")
                continue
            mean = statistics.mean([a, b])
            spread = abs(a - b) / mean * 100
            delta = (mean - ref_row[mode]) / ref_row[mode] * 100
            lines.append(f"| {dtype} | {batch} | {mode} | {a:.2f} | {b:.2f} | {spread:.1f} | {ref_row[mode]:.2f} | "
                         f"{delta:+.1f} |")
    env = docs[0].get("env", {})
    header = (f"torch {env.get('torch', {}).get('version')}, GPUs "
              f"{', '.join(g.get('name', '?') for g in env.get('gpus') or []) or 'none'}, "
              f"driver {env.get('driver_version')}; probe ok: {[d.get('ok') for d in docs]}")
    table = header + "\n\n" + "\n".join(lines) + "\n"
    (args.out / "gpu-reference.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
