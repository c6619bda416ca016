"""The whole GPU measurement of the probe's benchmark in one call, and its report.

    python benchmarks/gpu_reference.py [--plan quick,quick,standard,standard] [--out DIR]
                                       [--python PYTHON] [--deadline SECONDS]
    python benchmarks/gpu_reference.py --report DIR      # the report from saved runs only

Runs envctl/probes/smoke.py (standard library and torch only: no envctl install needed on the
GPU machine) once per entry of --plan with the reference settings (ResNet-50 and the
transformer block; fp32 and bf16; batch 1 and 32; eager, compile default and reduce-overhead,
script, trace; the quick level keeps batch 1, fp32 and compile default), saves each document
as DIR/<level>-<n>.json as soon as it is done (a later call can add runs to the same DIR),
skips a run that would not finish before --deadline, then prints and writes DIR/report.md:

1. the quick level's wall time (goal: under 45 s on the H100);
2. two standard runs: every mode's speedup over eager with its interval, run 1 against run 2
   (goal: within 5% for every ResNet-50 and transformer row), and the absolute medians with
   their intervals and the machine state of each run;
3. quick against standard: conclusive quick speedups within 15% of standard's, never
   conclusive in the wrong direction;
4. standard against the reference table (benchmarks/reference-h100.json), ResNet-50 rows;
5. cold and warm compile times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = HERE.parent / "envctl" / "probes" / "smoke.py"
ESTIMATE_S = {"quick": 60, "standard": 330}
CONFIG = {"gpus": "all", "benchmark": {"models": ["resnet50", "transformer"], "dtypes": ["fp32", "bf16"],
                                       "batch_sizes": [1, 32], "compile_modes": ["default", "reduce-overhead"]}}


def run_probe(python: str, level: str) -> tuple[dict, float]:
    start = time.monotonic()
    proc = subprocess.run([python, str(PROBE), "--config", "-", "--level", level], input=json.dumps(CONFIG),
                          capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - start
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr[-3000:])
    doc = json.loads(proc.stdout)
    doc["wall_s"] = round(wall, 2)
    return doc, wall


def _rows(doc):
    return {(r["model"], r["dtype"], r["batch"], r["mode"]): r for r in doc.get("benchmarks", [])
            if r.get("status") == "ok"}


def _sp(r):
    sp = r.get("speedup") or {}
    return sp if sp.get("median") else None


def _fmt_sp(sp):
    tag = "" if sp.get("conclusive") else " ?"
    return f"{sp['median']:.3f} [{sp['low']:.3f}-{sp['high']:.3f}]{tag}"


def _fmt_abs(r):
    return f"{r['median_ms']:.3f} [{r['ci_low_ms']:.3f}-{r['ci_high_ms']:.3f}]"


def _state(doc, r):
    groups = (doc.get("machine") or {}).get("groups") or []
    g = groups[r["group"]] if isinstance(r.get("group"), int) and r["group"] < len(groups) else {}
    w = g.get("window") or {}
    b, a = (w.get("before") or {}).get("gpu") or {}, (w.get("after") or {}).get("gpu") or {}
    host = [(w.get(k) or {}).get("host", {}).get("torch_op_us") for k in ("before", "after")]
    if not a:
        return "-"
    thr = ",".join(sorted(set(b.get("throttle") or []) | set(a.get("throttle") or []))) or "none"
    return (f"SM {b.get('sm_mhz')}->{a.get('sm_mhz')} MHz, {b.get('temp_c')}->{a.get('temp_c')} C, "
            f"{a.get('power_w')} W, throttle {thr}, host {host[0]}->{host[1]} us/op, "
            f"other CPU {w.get('other_cpu_cores')} cores")


def report(docs: dict[str, dict]) -> str:
    out = []
    quick = [d for n, d in sorted(docs.items()) if n.startswith("quick")]
    std = [d for n, d in sorted(docs.items()) if n.startswith("standard")]
    any_doc = next(iter(docs.values()))
    env = any_doc.get("env", {})
    out.append(f"torch {env.get('torch', {}).get('version')}, GPU "
               f"{', '.join(g.get('name', '?') for g in env.get('gpus') or []) or 'none'}, driver "
               f"{env.get('driver_version')}; runs: {', '.join(sorted(docs))}\n")
    out.append("## 1. Quick level wall time (goal < 45 s)\n")
    for i, d in enumerate(quick, 1):
        out.append(f"- quick run {i}: process wall {d.get('wall_s')} s, probe duration {d.get('duration_s')} s, "
                   f"ok {d.get('ok')}; phases {d.get('phases')}")
    for i, d in enumerate(std, 1):
        out.append(f"- standard run {i}: process wall {d.get('wall_s')} s; phases {d.get('phases')}")
    if len(std) >= 2:
        a, b = _rows(std[0]), _rows(std[1])
        out.append("\n## 2. Two standard runs back to back: speedup over eager (goal: within 5%)\n")
        out.append("| model | dtype | batch | mode | run 1 speedup [95% CI] | run 2 speedup | diff % | state run 1 | state run 2 |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        diffs = []
        for key in sorted(set(a) & set(b)):
            if key[3] == "eager" or not (_sp(a[key]) and _sp(b[key])):
                continue
            s1, s2 = _sp(a[key]), _sp(b[key])
            diff = abs(s1["median"] - s2["median"]) / ((s1["median"] + s2["median"]) / 2) * 100
            diffs.append((diff, key))
            out.append(f"| {' | '.join(map(str, key))} | {_fmt_sp(s1)} | {_fmt_sp(s2)} | {diff:.1f} | "
                       f"{_state(std[0], a[key])} | {_state(std[1], b[key])} |")
        within = sum(1 for d, _ in diffs if d <= 5.0)
        out.append(f"\n{within} of {len(diffs)} speedup rows within 5% (max {max(d for d, _ in diffs):.1f}%; "
                   f"median {statistics.median(d for d, _ in diffs):.1f}%); '?' marks an inconclusive row\n")
        out.append("Absolute medians (ms) with their 95% intervals:\n")
        out.append("| model | dtype | batch | mode | run 1 ms | run 2 ms | diff % | intervals overlap | state run 1 | state run 2 |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for key in sorted(set(a) & set(b)):
            r1, r2 = a[key], b[key]
            diff = abs(r1["median_ms"] - r2["median_ms"]) / ((r1["median_ms"] + r2["median_ms"]) / 2) * 100
            overlap = not (r1["ci_high_ms"] < r2["ci_low_ms"] or r2["ci_high_ms"] < r1["ci_low_ms"])
            states = f"{_state(std[0], r1)} | {_state(std[1], r2)}" if not overlap else "| "
            out.append(f"| {' | '.join(map(str, key))} | {_fmt_abs(r1)} | {_fmt_abs(r2)} | {diff:.1f} | "
                       f"{'yes' if overlap else 'NO'} | {states} |")
    if quick and std:
        out.append("\n## 3. Quick against standard (goal: conclusive quick within 15%, never the wrong direction)\n")
        s = _rows(std[0])
        out.append("| run | model | mode | quick speedup | verdict | standard speedup | diff % | wrong direction |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for i, q in enumerate(quick, 1):
            for key, r in sorted(_rows(q).items()):
                if key not in s or not (_sp(r) and _sp(s[key])):
                    continue
                qs, ss = _sp(r), _sp(s[key])
                diff = abs(qs["median"] - ss["median"]) / ss["median"] * 100
                wrong = qs.get("conclusive") and ((qs["verdict"] == "faster" and ss["high"] < 1) or
                                                  (qs["verdict"] == "slower" and ss["low"] > 1))
                out.append(f"| {i} | {key[0]} | {key[3]} | {_fmt_sp(qs)} | {qs['verdict']} | {_fmt_sp(ss)} | "
                           f"{diff:.1f} | {'YES' if wrong else 'no'} |")
    if std:
        ref = json.loads((HERE / "reference-h100.json").read_text())
        out.append("\n## 4. Standard against the reference table (ResNet-50; differences > 15% marked)\n")
        out.append("| dtype | batch | mode | probe ms (mean of runs) | reference ms | diff % | probe speedup | reference speedup |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        tables = [_rows(d) for d in std]
        for rr in ref["rows"]:
            for mode in ("eager", "compile-default", "compile-reduce-overhead", "script", "trace"):
                key = ("resnet50", rr["dtype"], rr["batch"], mode)
                meds = [t[key]["median_ms"] for t in tables if key in t]
                sps = [_sp(t[key])["median"] for t in tables if key in t and _sp(t[key])]
                if not meds:
                    continue
                m = statistics.mean(meds)
                diff = (m - rr[mode]) / rr[mode] * 100
                psp = f"{statistics.mean(sps):.2f}" if sps else "-"
                rsp = f"{rr['eager'] / rr[mode]:.2f}" if mode != "eager" else "-"
                flag = " **" if abs(diff) > 15 else ""
                out.append(f"| {rr['dtype']} | {rr['batch']} | {mode} | {m:.2f} | {rr[mode]:.2f} | {diff:+.1f}{flag} | "
                           f"{psp} | {rsp} |")
        out.append("\n## 5. Compile: cold (fresh caches) and warm (a second process reusing them), seconds\n")
        out.append("| model | dtype | batch | mode | cold s | warm s |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for key, r in sorted(_rows(std[0]).items()):
            if key[3] != "eager":
                out.append(f"| {' | '.join(map(str, key))} | {r.get('compile_s')} | {r.get('warm_compile_s')} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--plan", default="quick,quick,standard,standard")
    parser.add_argument("--deadline", type=float, default=None, help="seconds from now; later runs are skipped")
    parser.add_argument("--report", type=Path, default=None, help="only write the report from DIR's runs")
    args = parser.parse_args()
    out = args.report or args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.report is None:
        start = time.monotonic()
        took: dict[str, float] = {}
        for level in args.plan.split(","):
            estimate = took.get(level, ESTIMATE_S[level]) * 1.05
            if args.deadline and time.monotonic() - start + estimate > args.deadline:
                print(f"skipping a {level} run: it would pass the deadline", file=sys.stderr)
                continue
            n = 1 + sum(1 for p in out.glob(f"{level}-*.json"))
            doc, wall = run_probe(args.python, level)
            took[level] = wall
            (out / f"{level}-{n}.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
            print(f"{level}-{n}: {wall:.1f} s wall, ok {doc.get('ok')}", file=sys.stderr, flush=True)
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*-*.json"))}
    text = report(docs)
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
