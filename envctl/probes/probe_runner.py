"""The benchmark runner: build every mode of a model, then time them side by side.

For each model, dtype and batch size (a *group*) every mode is built first (eager,
torch.compile per compile mode, TorchScript script and trace; the first call is timed as the
cold compile and its peak memory read), then all modes that built are timed together in
interleaved rounds (probe_timing), with a machine-state sample before and after
(probe_machine). A row carries the absolute median with its interval and, for every mode but
eager, the speedup over eager measured in the same rounds with its interval and verdict.
Part of the in-image smoke probe (see smoke.py): standard library and torch only (torch
imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import gc
import sys
import time
import warnings

from probe_bench import TOLERANCE, compare_outputs, first_tensor, torch_dtype
from probe_machine import contention, dispatch_us, noise_notes
from probe_models import MODEL_SHAPES, build_model
from probe_report import add_warnings, error_line
from probe_timing import HOST_BOUND_SHARE, absolute_conclusive, host_share, measure, ratio_verdict

BASE = "eager"


class _ModeFailed(Exception):
    def __init__(self, mode, exc):
        super().__init__(f"{mode}: {exc}")
        self.mode, self.exc = mode, exc


def _counters():
    try:
        from torch._dynamo.utils import counters

        return counters
    except Exception:
        return None


def _reset_dynamo():
    try:
        import torch

        torch._dynamo.reset()
    except Exception:
        pass
    c = _counters()
    if c is not None:
        c.clear()


def _frames(c):
    return int(c["frames"]["ok"]) if c is not None else 0


def _breaks(c):
    return int(sum(c["graph_break"].values())) if c is not None else 0


def new_row(model, mode, dtype_name, batch, device):
    return {"model": model, "mode": mode, "dtype": dtype_name, "batch": batch, "device": device,
            "compile_s": None, "warm_compile_s": None, "median_ms": None, "ci_low_ms": None,
            "ci_high_ms": None, "p10_ms": None, "p90_ms": None, "spread_pct": None, "iqr_pct": None,
            "blocks": None, "calls_per_block": None, "conclusive": False, "speedup": None,
            "throughput_per_s": None, "peak_mem_bytes": None, "max_abs_err": None,
            "max_rel_err": None, "agree": None, "graph_breaks": None, "recompiles": None,
            "group": None, "host_share": None, "host_bound": None, "tolerance": TOLERANCE[dtype_name], "status": "ok", "error": None}


def _build(mode, model, x, row, cuda, counters, jit_warnings):
    """The mode's callable after its first (timed) call; fills compile_s, peak memory, breaks."""
    import torch

    is_compile = mode.startswith("compile-")
    cudagraphs = cuda and mode in ("compile-reduce-overhead", "compile-max-autotune")
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    breaks0 = _breaks(counters)
    t0 = time.perf_counter()
    if mode == "eager":
        fn = model
    elif is_compile:
        fn = torch.compile(model, mode=mode[len("compile-"):])
    elif mode in ("script", "trace"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.no_grad():
                if mode == "script":
                    fn = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
                else:
                    fn = torch.jit.trace(model, (x,))
        add_warnings(jit_warnings, caught)
    else:
        raise ValueError(f"unknown mode {mode}")

    def call():
        if cudagraphs and mark_step is not None:
            mark_step()
        return fn(x)

    call()
    if cuda:
        torch.cuda.synchronize()
        row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
    row["compile_s"] = round(time.perf_counter() - t0, 4)
    if is_compile:  # a first call may compile several frames; later compiles are recompiles
        row["graph_breaks"] = _breaks(counters) - breaks0
        row["recompiles"] = 0
    return call


def _fill_timing(row, stats, ratio, verdict, policy, batch):
    med = stats["median"]
    row.update(median_ms=round(med, 4), ci_low_ms=round(stats["low"], 4),
               ci_high_ms=round(stats["high"], 4), p10_ms=round(stats["p10"], 4),
               p90_ms=round(stats["p90"], 4),
               spread_pct=round((stats["p90"] - stats["p10"]) / med * 100.0, 2) if med > 0 else None,
               iqr_pct=round(stats["iqr_pct"], 2) if stats["iqr_pct"] is not None else None,
               blocks=stats["n"], calls_per_block=stats["calls_per_block"],
               conclusive=absolute_conclusive(stats, policy),
               throughput_per_s=round(batch / (med / 1000.0), 2) if med > 0 else None)
    if ratio is not None:
        row["speedup"] = {"median": round(ratio["median"], 4), "low": round(ratio["low"], 4),
                          "high": round(ratio["high"], 4), "rounds": ratio["n"],
                          "host_dependent": ratio.get("host_dependent"),
                          "iqr_pct": round(ratio["iqr_pct"], 2) if ratio["iqr_pct"] is not None else None,
                          **verdict}


def run_group(name, model, x, ref, dtype_name, batch, device, settings, jit_warnings, monitor,
              groups, before_timing=None):
    """Rows for every mode of one model/dtype/batch, timed side by side."""
    import torch

    cuda = device.startswith("cuda")
    rows = {mode: new_row(name, mode, dtype_name, batch, device) for mode in settings["modes"]}
    calls = {}
    _reset_dynamo()
    counters = _counters()
    with torch.inference_mode():
        for mode in settings["modes"]:
            print(f"[smoke] {name} {dtype_name} b{batch} {mode}: build", file=sys.stderr, flush=True)
            try:
                calls[mode] = _build(mode, model, x, rows[mode], cuda, counters, jit_warnings)
            except Exception as exc:
                rows[mode].update(status="error", error=error_line(exc))
        last_frames = [_frames(counters)]

        def after_block(mode):  # a compiled mode that compiles again while timed: a recompile
            now = _frames(counters)
            if now != last_frames[0] and rows[mode]["recompiles"] is not None:
                rows[mode]["recompiles"] += now - last_frames[0]
            last_frames[0] = now

        def guarded(mode, call):
            def run():
                try:
                    return call()
                except Exception as exc:
                    raise _ModeFailed(mode, exc)
            return run

        policy = settings["timing"]
        result, window = None, None
        if before_timing is not None:
            before_timing()
        while calls and result is None:
            samples = []
            try:
                print(f"[smoke] {name} {dtype_name} b{batch}: timing {', '.join(calls)}",
                      file=sys.stderr, flush=True)
                if monitor is not None:
                    samples.append(monitor.sample())
                result = measure({m: guarded(m, c) for m, c in calls.items()}, BASE, cuda, policy,
                                 after_block=after_block, host_probe=dispatch_us,
                                 on_start=(lambda: samples.append(monitor.sample())) if monitor else None)
                if monitor is not None:
                    window = monitor.window(samples[-1], monitor.sample())
                    window["warmup_before"] = monitor.window(samples[0], samples[-1])["before"]
            except _ModeFailed as failed:  # drop the failing mode, time the others again
                rows[failed.mode].update(status="error", error=error_line(failed.exc))
                calls.pop(failed.mode)
        notes = noise_notes(window) if window else []
        # on the CPU device the modes share the cores other processes were busy on: no verdict
        deciding = [n for n in [contention(window) if window and not cuda else None] if n]
        gi = len(groups)
        groups.append({"model": name, "dtype": dtype_name, "batch": batch, "window": window,
                       "notes": notes, "timing": {k: result[k] for k in ("rounds", "warmup_s",
                       "warmup_settled", "measure_s", "stopped", "host_us")} if result else None})
        for mode, call in calls.items():
            row = rows[mode]
            row["group"] = gi
            ratio = result["ratios"].get(mode)
            verdict = ratio_verdict(ratio, policy, notes, deciding) if ratio is not None else None
            _fill_timing(row, result["candidates"][mode], ratio, verdict, policy, batch)
            if cuda:  # launch-bound rows follow the host's speed between runs (bench compare withholds them)
                try:
                    row["host_share"] = host_share(call)
                    row["host_bound"] = row["host_share"] is not None and row["host_share"] >= HOST_BOUND_SHARE
                except Exception:  # an extra measurement: its failure leaves a row that was timed fine
                    row["host_share"] = row["host_bound"] = None
            try:
                out = first_tensor(call()).clone()
                if ref is not None:
                    abs_err, rel_err, agree = compare_outputs(out, ref, dtype_name)
                    row.update(max_abs_err=abs_err, max_rel_err=rel_err, agree=agree)
                del out
            except Exception as exc:
                row.update(status="error", error=error_line(exc))
    calls.clear()
    _reset_dynamo()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return [rows[m] for m in settings["modes"]]


def run_benchmarks(settings, device, jit_warnings, monitor=None, groups=None, before_timing=None):
    """Benchmark rows for every model, dtype, batch size and mode of the settings.

    ``before_timing()`` runs before each group is timed (the probe waits there for its
    background work); ``groups`` receives each group's machine-state window.
    """
    import torch

    groups = [] if groups is None else groups
    rows = []
    device_kind = "cuda" if device.startswith("cuda") else "cpu"
    if device_kind == "cuda":
        torch.backends.cudnn.benchmark = settings.get("cudnn_benchmark", True)
        if any(m.startswith("compile-") for m in settings["modes"]):
            try:  # start inductor's compile workers now, not at the first compile
                from torch._inductor.async_compile import maybe_warm_pool

                maybe_warm_pool()
            except Exception:
                pass
    else:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = settings.get("inductor_freezing", True)
        except Exception:
            pass
    for mi, key in enumerate(settings["models"]):
        for dtype_name in settings["dtypes"]:
            try:
                name, model, make_input = build_model(key, device_kind, seed=1234 + mi)
                model = model.to(device=device, dtype=torch_dtype(dtype_name))
            except Exception as exc:
                for batch in settings["batch_sizes"]:
                    for mode in settings["modes"]:
                        row = new_row(MODEL_SHAPES[(key, device_kind)]["name"], mode, dtype_name,
                                      batch, device)
                        row.update(status="error", error=error_line(exc))
                        rows.append(row)
                continue
            for batch in settings["batch_sizes"]:
                g = torch.Generator().manual_seed(4321 + batch)
                x = make_input(batch, g).to(device=device, dtype=torch_dtype(dtype_name))
                try:  # reference output: eager, first call
                    with torch.inference_mode():
                        ref = first_tensor(model(x)).clone()
                except Exception:
                    ref = None  # the eager row records the error
                rows.extend(run_group(name, model, x, ref, dtype_name, batch, device, settings,
                                      jit_warnings, monitor, groups, before_timing))
                del x, ref
            del model
            gc.collect()
    return rows
