"""Warm compile: the same torch.compile calls again in a second process that reuses the caches.

The probe compiles every model cold in a private inductor/triton cache (smoke.py sets
TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR). A service that restarts pays the *warm* cost:
a new process, the same code, the caches on disk. ``warm_compile(rows, settings, device)``
runs this file as a child process with the same environment, which builds the same models
with the same seeds in the same order and times each compile mode's first call, and writes
``warm_compile_s`` into the parent's rows. Run as a script it is that child: a JSON job on
stdin, one JSON object on stdout. Part of the in-image smoke probe (see smoke.py): standard
library and torch only, Python >= 3.9.
"""
from __future__ import annotations

import sys

sys.dont_write_bytecode = True  # the probe folder is mounted read-only

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

TIMEOUT_S = 900


def warm_compile(rows, settings, device):
    """Fill ``warm_compile_s`` of the compile rows that built cold; returns a note or None."""
    compiled = [r for r in rows if r["mode"].startswith("compile-") and r.get("compile_s") is not None]
    if not compiled:
        return None
    # the first dtype and batch size of each model: a warm compile is a cache hit for every
    # shape alike, and each one costs a few seconds
    job = {"device": device, "models": settings["models"], "dtypes": settings["dtypes"][:1],
           "batch_sizes": settings["batch_sizes"][:1],
           "modes": [m for m in settings["modes"] if m.startswith("compile-")],
           "cudnn_benchmark": settings.get("cudnn_benchmark", False),
           "inductor_freezing": settings.get("inductor_freezing", False)}
    proc = None
    try:
        proc = subprocess.run([sys.executable, "-B", os.path.join(_HERE, "probe_warm.py")],
                              input=json.dumps(job), capture_output=True, text=True,
                              timeout=TIMEOUT_S)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return f"warm compile: the second process ran past {TIMEOUT_S}s"
    except (OSError, ValueError, IndexError):
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:]) if proc is not None else ""
        return f"warm compile: the second process failed: {tail or 'no output'}"
    warm = {(w["model"], w["dtype"], w["batch"], w["mode"]): w for w in out["rows"]}
    for r in compiled:
        w = warm.get((r["model"], r["dtype"], r["batch"], r["mode"]))
        if w is not None:
            r["warm_compile_s"] = w.get("warm_compile_s")
            r["warm_cache"] = w.get("cache")
    return None


def _cache_counts():
    """(FX-graph cache hits, bypasses) so far in this process; with inductor freezing (the CPU
    default here) the FX-graph cache is bypassed and only the compiled-kernel caches are reused."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["inductor"]["fxgraph_cache_hit"]), int(counters["inductor"]["fxgraph_cache_bypass"])
    except Exception:
        return 0, 0


def _cache_files():
    root = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not root or not os.path.isdir(root):
        return 0
    return sum(len(files) for _, _, files in os.walk(root))


def _child(job):
    import torch

    from probe_bench import torch_dtype
    from probe_models import build_model

    device = job["device"]
    cuda = device.startswith("cuda")
    kind = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = job["cudnn_benchmark"]
    else:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = job["inductor_freezing"]
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    files_at_start = _cache_files()  # what the cold run left for this process to reuse
    rows = []
    for mi, key in enumerate(job["models"]):  # the parent's order, seeds and shapes
        for dtype_name in job["dtypes"]:
            name, model, make_input = build_model(key, kind, seed=1234 + mi)
            model = model.to(device=device, dtype=torch_dtype(dtype_name))
            for batch in job["batch_sizes"]:
                x = make_input(batch, torch.Generator().manual_seed(4321 + batch)).to(
                    device=device, dtype=torch_dtype(dtype_name))
                torch._dynamo.reset()
                row = {"model": name, "dtype": dtype_name, "batch": batch}
                with torch.inference_mode():
                    model(x)  # as in the parent: eager (CUDA init, cuDNN search) before compiling
                    if cuda:
                        torch.cuda.synchronize()
                    for mode in job["modes"]:
                        hits0, bypass0 = _cache_counts()
                        t0 = time.perf_counter()
                        try:
                            fn = torch.compile(model, mode=mode[len("compile-"):])
                            if cuda and mode in ("compile-reduce-overhead", "compile-max-autotune") \
                                    and mark_step is not None:
                                mark_step()
                            fn(x)
                            if cuda:
                                torch.cuda.synchronize()
                            hits, bypass = _cache_counts()
                            rows.append(dict(row, mode=mode,
                                             warm_compile_s=round(time.perf_counter() - t0, 4),
                                             cache={"files_at_start": files_at_start,
                                                    "fxgraph_hits": hits - hits0,
                                                    "fxgraph_bypassed": bypass - bypass0}))
                        except Exception as exc:
                            rows.append(dict(row, mode=mode, warm_compile_s=None,
                                             error=f"{type(exc).__name__}: {exc}"[:300]))
                torch._dynamo.reset()
    return {"rows": rows}


def main():
    out_fd = os.dup(1)
    os.dup2(2, 1)  # torch's own output goes to stderr; stdout keeps the one JSON object
    result = _child(json.loads(sys.stdin.read()))
    os.write(out_fd, (json.dumps(result) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
