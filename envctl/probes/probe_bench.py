"""The smoke probe's benchmarks: settings per level, output comparison and the checks.

Each model runs eagerly, under torch.compile (one row per compile mode), scripted and
traced; the runner (probe_runner) times them side by side with probe_timing's method; rows
carry timings with their intervals, speedups with verdicts, peak memory, graph breaks,
recompiles and the error against the eager output. Part of the in-image smoke probe (see
smoke.py): standard library and torch only (torch imported lazily), Python >= 3.9.
"""
from __future__ import annotations

from probe_models import MODELS
from probe_report import check
from probe_timing import policy_for

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DTYPES = ("fp32", "bf16", "fp16")
# Allowed max |out - eager| / max|eager| per dtype.
TOLERANCE = {"fp32": 2e-3, "fp16": 2e-2, "bf16": 8e-2}

# Benchmark defaults per device class and level; config keys override, then caps apply.
# CUDA quick times batch 32: at batch 8 every row on an H100 is launch-bound (the host queues a
# call for over half its time, benchmarks/results/gate/h100-2), so its time is the host's speed
# and the gate must withhold it; at 32 the ResNet rows are the GPU's and can be gated.
LEVEL_DEFAULTS = {
    "cuda": {
        "quick": {"models": list(MODELS), "compile_modes": ["default"], "batch_sizes": [32],
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
                             "first compile mode of each model; later modes may reuse its kernels; "
                             "warm_compile_s (first dtype and batch size of each model) is a second "
                             "process reusing that cache")
    # runs and warmup are minimums now: timing goes on by time until precise (probe_timing)
    timing = policy_for(device_kind, level)
    timing["min_rounds"] = max(timing["min_rounds"], base["runs"])
    timing["warmup_rounds"] = base["warmup"]
    base["timing"] = timing
    base["warm_compile"] = level != "quick"
    if device_kind == "cuda":
        base["cudnn_benchmark"] = True  # fixed shapes: what an inference service sets
    else:
        base["inductor_freezing"] = True  # CPU inference: folds BN into convs, 3x less to compile
    return base


# --------------------------------------------------------------------------- outputs


def torch_dtype(name):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def first_tensor(out):
    if isinstance(out, (tuple, list)):
        return first_tensor(out[0])
    return out


def compare_outputs(out, ref, dtype_name):
    """(max_abs_err, max_rel_err, agree); rel is normalized by max|ref|; NaN/inf never agree."""
    import torch

    o = first_tensor(out).detach().float().cpu()
    r = first_tensor(ref).detach().float().cpu()
    if o.shape != r.shape:
        return None, None, False
    if not bool(torch.isfinite(o).all()) or not bool(torch.isfinite(r).all()):
        return None, None, False
    abs_err = float((o - r).abs().max()) if o.numel() else 0.0
    scale = float(r.abs().max()) if r.numel() else 0.0
    rel = abs_err / max(scale, 1e-12)
    return abs_err, rel, rel <= TOLERANCE[dtype_name]


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
