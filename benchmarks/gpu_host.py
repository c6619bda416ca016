"""Why host-bound speedups move between runs on the GPU machine, and what steadies them.

    python benchmarks/gpu_host.py [--out DIR] [--reps 4]

Eager inference at small batches is bound by how fast the host dispatches ops; a CUDA graph
replay is not, so their ratio moves with the host's speed. This script measures, natively
on the GPU machine (standard library and torch only, the probe's own modules):

1. the host's dispatch speed (us per tiny torch op) sampled every 20 ms for a few seconds,
   the host sleeping, spinning, or waiting on GPU work (blocking or polling) between samples,
   with the steal time /proc/stat reports meanwhile;
2. ResNet-50 fp32 batch 1, eager against a CUDA-graph replay of it (no compile needed) and a
   frozen trace, timed with probe_timing's interleaved method in separate processes,
   alternating conditions: blocking waits (the probe's), busy-polling the GPU, busy-polling
   with the garbage collector off while timed.  Each process's rounds are kept (``raw``).

The first call on the H100 (results/gpu-host/host-1.*) was an earlier version: part 1 pinned
to single CPUs, part 2 pinned with and without the garbage collector.

It prints a table per part and writes DIR/host.json.
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
PROBES = HERE.parent / "envctl" / "probes"


def _steal():
    with open("/proc/stat") as fh:
        f = fh.readline().split()[1:]
    vals = [int(v) for v in f]
    return vals[7] if len(vals) > 7 else 0, sum(vals)


def sample_dispatch(seconds=6.0, gap=0.02, spin=False, on_gpu=False):
    import torch

    sys.path.insert(0, str(PROBES))
    from probe_machine import dispatch_us

    torch.zeros(1).add_(1)
    gpu = None
    if on_gpu:
        a = torch.randn(4096, 4096, device="cuda")
        torch.cuda.synchronize()
        gpu = a
    out = []
    s0, t0 = _steal()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(dispatch_us())
        if gpu is not None:  # the GPU works for about gap seconds while the host waits
            a = gpu
            for _ in range(8):
                a @ a
            ev = torch.cuda.Event()
            ev.record()
            if spin:
                while not ev.query():
                    pass
            else:
                ev.synchronize()
        elif spin:  # busy-wait: the vCPU never idles between samples
            t = time.perf_counter() + gap
            while time.perf_counter() < t:
                pass
        else:
            time.sleep(gap)
    s1, t1 = _steal()
    out.sort()

    def q(p):
        return out[int(p * (len(out) - 1))]

    cut = q(0.1) * 1.3
    return {"n": len(out), "p10": round(q(0.1), 3), "p50": round(q(0.5), 3), "p90": round(q(0.9), 3),
            "slow_share": round(sum(v > cut for v in out) / len(out), 3),
            "steal_pct": round((s1 - s0) / max(t1 - t0, 1) * 100, 2), "cpu": len(os.sched_getaffinity(0))}


def child(pin, nogc, spin=False):
    """One process: eager vs CUDA-graph ResNet-50 fp32 b1, interleaved (probe_timing.measure)."""
    import gc

    import torch

    sys.path.insert(0, str(PROBES))
    from probe_machine import dispatch_us
    from probe_models import build_model
    from probe_timing import BlockClock, measure, policy_for

    if pin is not None:
        os.sched_setaffinity(0, {pin})
    torch.backends.cudnn.benchmark = True
    _, model, make_input = build_model("resnet50", "cuda", seed=1234)
    model = model.cuda()
    x = make_input(1, torch.Generator().manual_seed(1)).cuda()
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                model(x)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)

        traced = torch.jit.freeze(torch.jit.trace(model, x))

        def eager():
            return model(x)

        def trace():
            return traced(x)

        policy = policy_for("cuda", "standard")
        policy.update(budget_s=8.0, target_iqr_pct=0.0)
        if nogc:
            gc.collect()
            gc.disable()
        t = time.monotonic()
        res = measure({"eager": eager, "graph": graph.replay, "trace": trace}, "eager", True, policy,
                      host_probe=dispatch_us, clock=BlockClock(True, spin=spin))
        wall = time.monotonic() - t
        gc.enable()
    r = res["ratios"]["graph"]
    return {"pin": pin, "nogc": nogc, "ratio": round(r["median"], 3), "low": round(r["low"], 3),
            "high": round(r["high"], 3), "host_dependent": r.get("host_dependent"),
            "eager_ms": round(res["candidates"]["eager"]["median"], 3),
            "graph_ms": round(res["candidates"]["graph"]["median"], 3),
            "trace_ratio": round(res["ratios"]["trace"]["median"], 3),
            "rounds": res["rounds"], "host_us": res["host_us"], "wall_s": round(wall, 1), "raw": res["raw"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gpu-host")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sample", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        pin, nogc, spin = args.child.split(",")
        print(json.dumps(child(None if pin == "-" else int(pin), nogc == "1", spin == "1")))
        return
    if args.sample is not None:
        where, how = args.sample.split(",")
        if where != "-":
            os.sched_setaffinity(0, {int(where)})
        print(json.dumps(sample_dispatch(spin=how.endswith("spin"), on_gpu=how.startswith("gpu"))))
        return
    ncpu = len(os.sched_getaffinity(0))
    report = {"cpus": ncpu, "sampling": [], "pairs": []}
    print(f"host: {ncpu} CPUs; {os.uname().release}")
    print("\n1. dispatch speed (us/op), sampled every 20 ms for 6 s")
    print(f"{'condition':<16} {'p10':>6} {'p50':>6} {'p90':>6} {'slow share':>10} {'steal %':>8}")
    for cond in ["-,sleep", "-,spin", "-,gpu-sync", "-,gpu-spin", "-,sleep", "-,spin", "-,gpu-sync", "-,gpu-spin"]:
        out = subprocess.run([sys.executable, __file__, f"--sample={cond}"], capture_output=True, text=True, check=False)
        doc = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
        where, how = cond.split(",")
        doc["condition"] = ("unpinned" if where == "-" else f"cpu {where}") + f", {how}"
        report["sampling"].append(doc)
        if "error" in doc:
            print(doc["condition"], doc["error"])
            continue
        print(f"{doc['condition']:<16} {doc['p10']:>6} {doc['p50']:>6} {doc['p90']:>6} "
              f"{doc['slow_share']:>10} {doc['steal_pct']:>8}")
    print("\n2. resnet50 fp32 b1: CUDA-graph replay over eager, interleaved, one process each")
    print(f"{'condition':<16} {'ratio':>7} {'interval':>15} {'eager ms':>9} {'graph ms':>9} "
          f"{'host p10/p50/p90 us':>21} {'rounds':>6}")
    conds = [("-", "0", "0", "blocking sync"), ("-", "0", "1", "spin"), ("-", "1", "1", "spin, gc off")]
    for rep in range(args.reps):
        for pin, nogc, spin, label in conds:
            out = subprocess.run([sys.executable, __file__, f"--child={pin},{nogc},{spin}"],
                                 capture_output=True, text=True, check=False)
            try:
                doc = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                print(label, "failed:", out.stderr[-800:])
                continue
            doc["condition"], doc["rep"] = label, rep
            report["pairs"].append(doc)
            h = doc["host_us"] or {}
            print(f"{label:<16} {doc['ratio']:>7} {doc['low']:>7}-{doc['high']:<7} {doc['eager_ms']:>9} "
                  f"{doc['graph_ms']:>9} {h.get('p10')}/{h.get('median')}/{h.get('p90'):>6} {doc['rounds']:>6}"
                  f"  trace {doc['trace_ratio']}",
                  flush=True)
    for *_, label in conds:
        rs = [d["ratio"] for d in report["pairs"] if d["condition"] == label]
        if len(rs) > 1:
            print(f"{label}: ratios {rs}: spread {(max(rs) - min(rs)) / statistics.median(rs) * 100:.1f}%")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
