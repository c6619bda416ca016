"""The smoke probe's benchmarks: settings per level, the runner, timing and its checks.

Each model runs eagerly, under torch.compile (one row per compile mode), scripted and
traced; rows carry timings (CUDA events on a GPU, perf_counter on CPU), peak memory,
graph breaks, recompiles and the error against the eager output. Part of the in-image
smoke probe (see smoke.py): standard library and torch only (torch imported lazily),
Python >= 3.9.
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
import warnings

from probe_models import MODEL_SHAPES, MODELS, build_model
from probe_report import add_warnings, check, error_line

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = ("fp32", "bf16", "fp16")
# Allowed max |out - eager| / max|eager| per dtype.
TOLERANCE = {"fp32": 2e-3, "fp16": 2e-2, "bf16": 8e-2}

# Benchmark defaults per device class and level; config keys override, then caps apply.
LEVEL_DEFAULTS = {
    "cuda": {
        "quick": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [8],
                  "dtypes": ["fp32"], "warmup": 3, "runs": 10, "max_autotune": False},
        "standard": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                     "batch_sizes": [1, 32], "dtypes": ["fp32", "bf16"], "warmup": 10, "runs": 50,
                     "max_autotune": False},
        "full": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                 "batch_sizes": [1, 32, 128], "dtypes": ["fp32", "bf16", "fp16"], "warmup": 10,
                 "runs": 100, "max_autotune": False},
    },
    "cpu": {
        "quick": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [1],
                  "dtypes": ["fp32"], "warmup": 3, "runs": 10, "max_autotune": False},
        "standard": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [1, 4],
                     "dtypes": ["fp32"], "warmup": 5, "runs": 20, "max_autotune": False},
        "full": {"models": list(MODELS), "compile_modes": ["default", "reduce-overhead"],
                 "batch_sizes": [1, 4], "dtypes": ["fp32", "bf16"], "warmup": 5, "runs": 30,
                 "max_autotune": False},
    },
}
CPU_MAX_BATCH = 4
CPU_MAX_RUNS = {"quick": 10, "standard": 20, "full": 30}
CPU_MAX_WARMUP = {"quick": 3, "standard": 5, "full": 5}
QUICK_MAX_RUNS = 10
QUICK_MAX_WARMUP = 3


def resolve_settings(cfg, level, device_kind):
    """Effective benchmark settings for a level on "cuda" or "cpu", with the caps applied."""
    base = dict(LEVEL_DEFAULTS[device_kind][level])
    bench = cfg.get("benchmark") or {}
    for key in base:
        if key in bench:
            base[key] = list(bench[key]) if isinstance(bench[key], list) else bench[key]
    adjusted = []
    if level == "quick":
        quick = LEVEL_DEFAULTS[device_kind]["quick"]
        if device_kind == "cpu":
            if base["batch_sizes"] != quick["batch_sizes"] or base["dtypes"] != quick["dtypes"]:
                adjusted.append("quick on cpu: one batch size (1) and fp32 only")
            base["batch_sizes"], base["dtypes"] = list(quick["batch_sizes"]), list(quick["dtypes"])
        else:
            if len(base["batch_sizes"]) > 1 or len(base["dtypes"]) > 1:
                adjusted.append("quick: first batch size and first dtype only")
            base["batch_sizes"], base["dtypes"] = base["batch_sizes"][:1], base["dtypes"][:1]
        if base["compile_modes"] != ["default"] or base["max_autotune"]:
            adjusted.append('quick: compile mode "default" only')
        base["compile_modes"], base["max_autotune"] = ["default"], False
        if base["runs"] > QUICK_MAX_RUNS or base["warmup"] > QUICK_MAX_WARMUP:
            adjusted.append(f"quick: at most {QUICK_MAX_WARMUP} warmup and {QUICK_MAX_RUNS} runs")
        base["runs"] = min(base["runs"], QUICK_MAX_RUNS)
        base["warmup"] = min(base["warmup"], QUICK_MAX_WARMUP)
    if device_kind == "cpu":
        clamped = sorted({min(b, CPU_MAX_BATCH) for b in base["batch_sizes"]})
        if clamped != sorted(set(base["batch_sizes"])):
            adjusted.append(f"cpu: batch sizes clamped to <= {CPU_MAX_BATCH}")
        base["batch_sizes"] = clamped
        if base["runs"] > CPU_MAX_RUNS[level] or base["warmup"] > CPU_MAX_WARMUP[level]:
            adjusted.append(f"cpu: at most {CPU_MAX_WARMUP[level]} warmup and "
                            f"{CPU_MAX_RUNS[level]} runs")
        base["runs"] = min(base["runs"], CPU_MAX_RUNS[level])
        base["warmup"] = min(base["warmup"], CPU_MAX_WARMUP[level])
        adjusted.append("cpu: small model variants (resnet-small 64x64, transformer-small)")
    modes = ["eager"] + [f"compile-{m}" for m in dict.fromkeys(base["compile_modes"])]
    if base["max_autotune"] and "compile-max-autotune" not in modes:
        modes.append("compile-max-autotune")
    modes += ["script", "trace"]
    base["modes"] = modes
    base["adjusted"] = adjusted
    base["compile_cache"] = ("fresh inductor/triton cache per probe run: compile_s is cold for the "
                             "first compile mode of each model; later modes may reuse its kernels")
    return base


# --------------------------------------------------------------------------- runner


def _torch_dtype(name):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_vals[int(k)]
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def _first_tensor(out):
    if isinstance(out, (tuple, list)):
        return _first_tensor(out[0])
    return out


def compare_outputs(out, ref, dtype_name):
    """(max_abs_err, max_rel_err, agree); rel is normalized by max|ref|; NaN/inf never agree."""
    import torch

    o = _first_tensor(out).detach().float().cpu()
    r = _first_tensor(ref).detach().float().cpu()
    if o.shape != r.shape:
        return None, None, False
    if not bool(torch.isfinite(o).all()) or not bool(torch.isfinite(r).all()):
        return None, None, False
    abs_err = float((o - r).abs().max()) if o.numel() else 0.0
    scale = float(r.abs().max()) if r.numel() else 0.0
    rel = abs_err / max(scale, 1e-12)
    return abs_err, rel, rel <= TOLERANCE[dtype_name]


class _Timer:
    def __init__(self, device):
        self.cuda = device.startswith("cuda")

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def time_calls(self, call, n):
        """Per-call milliseconds for n calls."""
        if self.cuda:
            import torch

            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                   for _ in range(n)]
            out = None
            for s, e in evs:
                s.record()
                out = call()
                e.record()
            torch.cuda.synchronize()
            return [s.elapsed_time(e) for s, e in evs], out
        times, out = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            out = call()
            times.append((time.perf_counter() - t0) * 1000.0)
        return times, out


def _dynamo_counters():
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
    c = _dynamo_counters()
    if c is not None:
        c.clear()


def _frames_ok(counters):
    return int(counters["frames"]["ok"]) if counters is not None else 0


def run_mode(mode, model, x, ref, dtype_name, batch, device, settings, jit_warnings):
    """One benchmark row. Never raises: failures become status "error"."""
    import torch

    row = {"model": None, "mode": mode, "dtype": dtype_name, "batch": batch, "device": device,
           "compile_s": None, "median_ms": None, "p10_ms": None, "p90_ms": None,
           "spread_pct": None, "throughput_per_s": None, "peak_mem_bytes": None,
           "max_abs_err": None, "max_rel_err": None, "agree": None, "graph_breaks": None,
           "recompiles": None, "status": "ok", "error": None}
    timer = _Timer(device)
    is_compile = mode.startswith("compile-")
    cudagraphs = mode in ("compile-reduce-overhead", "compile-max-autotune")
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    counters = _dynamo_counters() if is_compile else None
    fn = None
    try:
        if timer.cuda:
            torch.cuda.reset_peak_memory_stats()
        if is_compile:
            _reset_dynamo()
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
            if cudagraphs and timer.cuda and mark_step is not None:
                mark_step()
            return fn(x)

        with torch.inference_mode():
            out = call()
            timer.sync()
            row["compile_s"] = round(time.perf_counter() - t0, 4)
            frames_after_first = _frames_ok(counters)
            for _ in range(settings["warmup"]):
                call()
            timer.sync()
            times, out = timer.time_calls(call, settings["runs"])
            out = _first_tensor(out).clone() if cudagraphs else _first_tensor(out)
        times.sort()
        med = statistics.median(times)
        p10, p90 = _percentile(times, 0.1), _percentile(times, 0.9)
        row.update(median_ms=round(med, 4), p10_ms=round(p10, 4), p90_ms=round(p90, 4),
                   spread_pct=round((p90 - p10) / med * 100.0, 2) if med > 0 else None,
                   throughput_per_s=round(batch / (med / 1000.0), 2) if med > 0 else None)
        if timer.cuda:
            row["peak_mem_bytes"] = int(torch.cuda.max_memory_allocated())
        if counters is not None:
            row["graph_breaks"] = int(sum(counters["graph_break"].values()))
            row["recompiles"] = max(0, _frames_ok(counters) - frames_after_first)
        if ref is not None:
            abs_err, rel_err, agree = compare_outputs(out, ref, dtype_name)
            row.update(max_abs_err=abs_err, max_rel_err=rel_err, agree=agree)
        del out
    except Exception as exc:
        row["status"] = "error"
        row["error"] = error_line(exc)
        if counters is not None:
            try:
                row["graph_breaks"] = int(sum(counters["graph_break"].values()))
            except Exception:
                pass
    finally:
        fn = None
        if is_compile:
            _reset_dynamo()
        gc.collect()
        if timer.cuda:
            try:
                torch.cuda.empty_cache()
            except Exception:
                pass
    return row


def run_benchmarks(settings, device, jit_warnings):
    """Benchmark rows for every model, dtype, batch size and mode of the settings."""
    import torch

    rows = []
    device_kind = "cuda" if device.startswith("cuda") else "cpu"
    for mi, key in enumerate(settings["models"]):
        for dtype_name in settings["dtypes"]:
            try:
                name, model, make_input = build_model(key, device_kind, seed=1234 + mi)
                model = model.to(device=device, dtype=_torch_dtype(dtype_name))
            except Exception as exc:
                for batch in settings["batch_sizes"]:
                    for mode in settings["modes"]:
                        rows.append({"model": MODEL_SHAPES[(key, device_kind)]["name"], "mode": mode,
                                     "dtype": dtype_name, "batch": batch, "device": device,
                                     "status": "error", "error": error_line(exc)})
                continue
            for batch in settings["batch_sizes"]:
                g = torch.Generator().manual_seed(4321 + batch)
                x = make_input(batch, g).to(device=device, dtype=_torch_dtype(dtype_name))
                try:  # reference output: eager, first call
                    with torch.inference_mode():
                        ref = _first_tensor(model(x)).clone()
                except Exception:
                    ref = None  # the eager row records the error
                for mode in settings["modes"]:
                    print(f"[smoke] {name} {dtype_name} b{batch} {mode}", file=sys.stderr, flush=True)
                    row = run_mode(mode, model, x, ref, dtype_name, batch, device, settings,
                                   jit_warnings)
                    row["model"] = name
                    row["tolerance"] = TOLERANCE[dtype_name]
                    rows.append(row)
                del x, ref
            del model
            gc.collect()
    return rows


def benchmark_checks(rows):
    """The eager, torch.compile and TorchScript checks summarizing the benchmark rows."""
    checks = []

    def describe(r):
        return f"{r['mode']} on {r['model']} {r['dtype']} b{r['batch']}"

    def summarize(name, selected, what, fail_status="fail"):
        if not selected:
            return check(name, "skip", f"no {what} benchmark rows")
        errors = [r for r in selected if r["status"] != "ok"]
        wrong = [r for r in selected if r["status"] == "ok" and r.get("agree") is False]
        if errors:
            r = errors[0]
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            return check(name, fail_status, f"{what} failed: {describe(r)}: {r['error']}{more}")
        if wrong:
            r = wrong[0]
            more = f" (+{len(wrong) - 1} more)" if len(wrong) > 1 else ""
            err = r.get("max_rel_err")
            errs = f"rel err {err:.3g}" if isinstance(err, float) else "non-finite output"
            return check(name, fail_status,
                         f"{what} disagrees with eager: {describe(r)} {errs} > tol "
                         f"{r.get('tolerance')}{more}")
        modes = sorted({r["mode"] for r in selected})
        return check(name, "pass", f"{what} ok in {len(selected)} runs ({', '.join(modes)})")

    checks.append(summarize("eager", [r for r in rows if r["mode"] == "eager"], "eager inference"))
    checks.append(summarize("torch.compile", [r for r in rows if r["mode"].startswith("compile-")],
                            "torch.compile"))
    checks.append(summarize("torchscript modes", [r for r in rows if r["mode"] in ("script", "trace")],
                            "torch.jit script/trace"))
    return checks
