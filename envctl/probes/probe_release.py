"""The checks of PyTorch's own release smoke test, as named checks of the smoke probe.

PyTorch runs .ci/pytorch/smoke_test/smoke_test.py (github.com/pytorch/pytorch) on every
wheel it publishes; the probe makes each of its checks a named check with a one-line
message, skipped with the reason where it cannot apply:

    openmp                torch built with OpenMP (main)
    linalg cpu / cuda     SVD shapes, and A rebuilt from U, S, Vh (test_linalg)
    conv2d cpu / cuda     a dilated conv2d; on CUDA under autocast fp16 and in fp16/fp32/fp64,
                          each against the CPU result (smoke_test_conv2d)
    sdpa cuda             fp16 scaled_dot_product_attention free of NaN (test_sdpa)
    nvshmem               compiled in from torch 2.9 on CUDA (smoke_test_nvshmem)
    cuda gds              cuFile errors reach Python, CUDA >= 12.6 (test_cuda_gds_errors_captured)
    cuda device assert    a device-side assert is a CUDA RuntimeError (test_cuda_runtime_errors_captured)
    cpu vec isa           inductor detects a vector ISA (smoke_test_compile)
    max-autotune compile  a small net under mode="max-autotune", full level only (smoke_test_compile)

The last two are ``compile_checks``, run after the benchmarks: inductor's ISA detection
builds and loads a test library per ISA (~10 s on a small CPU), which a CPU compile
benchmark has already paid. The two CUDA error checks run in a child (cuda_errors.py),
since a device-side assert poisons the CUDA context. smoke_test's cuDNN and NCCL checks are
probe_checks' "cudnn", "cudnn wheel" and "nccl wheel". Every check catches its own
exceptions: a broken library is a failed check, never a crashed probe.
Part of the in-image smoke probe (see smoke.py): standard library and torch only (torch
imported lazily), Python >= 3.9.
"""
from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
import time

from probe_report import check, error_line

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_errors.py")
CHILD_TIMEOUT_S = 180  # a cold CUDA torch import and context on a busy host, with room
GDS_MIN_CUDA = (12, 6)  # PyTorch builds cuFile support from CUDA 12.6 on
NVSHMEM_MIN_TORCH = (2, 9)  # PyTorch's CUDA wheels build NVSHMEM in from 2.9 on
# Tolerances relative to the result's largest magnitude: fp16 and TF32 round at ~1e-3; a
# broken kernel or solver is off by ~1. Loose on purpose, never a false alarm.
CLOSE = 2e-2
NO_GPU = "no GPU (the probe runs on cpu)"


def _run(name, fn, *args):
    """A named check from fn(*args) -> (status, message); an exception is a failed check."""
    try:
        status, message = fn(*args)
    except Exception as exc:
        status, message = "fail", f"raised {error_line(exc)}"
    return check(name, status, message)


def release_checks(env, device):
    """The quick checks, in report order; the CUDA ones on the probe's GPU, skipped without one."""
    import torch

    gpu = device if device.startswith("cuda") else None
    gds_skip = _gds_skip(env, gpu)
    child = start_cuda_errors(gpu, gds=gds_skip is None) if gpu else None  # runs meanwhile
    conv_ref = {}
    checks = [_run("openmp", openmp_check, torch),
              _run("linalg cpu", linalg_check, torch, "cpu"),
              _run("conv2d cpu", conv2d_check, torch, "cpu", conv_ref)]
    if gpu:
        checks += [_run("linalg cuda", linalg_check, torch, gpu),
                   _run("conv2d cuda", conv2d_check, torch, gpu, conv_ref),
                   _run("sdpa cuda", sdpa_check, torch, gpu)]
    else:
        checks += [check(name, "skip", NO_GPU) for name in ("linalg cuda", "conv2d cuda", "sdpa cuda")]
    checks.append(_run("nvshmem", nvshmem_check, env, gpu))
    if not gpu:
        return checks + [check("cuda gds", "skip", gds_skip), check("cuda device assert", "skip", NO_GPU)]
    results, problem = finish_cuda_errors(child)
    if gds_skip:
        checks.append(check("cuda gds", "skip", gds_skip))
    else:
        checks.append(_run("cuda gds", gds_verdict, results.get("gds"), problem, gpu))
    checks.append(_run("cuda device assert", assert_verdict, results.get("assert"), problem, gpu))
    return checks


def compile_checks(device, level, isa_paid):
    """The inductor checks: the CPU's vector ISA and a max-autotune compile (full level only).

    isa_paid: a CPU compile benchmark ran in this process, so the ISA detection is cached
    and costs nothing at quick; otherwise it runs at standard and full only.
    """
    import torch

    if level == "quick" and not isa_paid:
        isa = check("cpu vec isa", "skip", "runs at level standard or full: inductor's ISA detection "
                                           "builds and loads a test library per ISA (~10 s on a small CPU)")
    else:
        isa = _run("cpu vec isa", vec_isa_check)
    if level != "full":
        autotune = check("max-autotune compile", "skip",
                         f"runs at level full only (level is {level}): max-autotune benchmarks kernel "
                         f"choices (minutes on a GPU)")
    else:
        autotune = _run("max-autotune compile", max_autotune_check, torch, device)
    return [isa, autotune]


# --------------------------------------------------------------------------- in-process checks


def openmp_check(torch):
    if torch.backends.openmp.is_available():
        return "pass", f"torch built with OpenMP ({torch.get_num_threads()} threads)"
    return "fail", (f"torch {torch.__version__} is built without OpenMP (torch.backends.openmp."
                    f"is_available() is False): PyTorch's release builds all have it, so CPU ops may run "
                    f"on one thread here; install a release build")


def _relative_error(torch, got, want):
    want = want.detach().double().cpu()
    got = got.detach().double().cpu()
    if not bool(torch.isfinite(got).all()):
        return float("inf")
    return float((got - want).abs().max()) / max(float(want.abs().max()), 1e-12)


def linalg_check(torch, device):
    """smoke_test's test_linalg, plus the check it leaves out: U, S, Vh rebuild A."""
    g = torch.Generator().manual_seed(0)
    cases = [((5, 3), False, torch.float32), ((5, 3), True, torch.float32), ((7, 5, 3), False, torch.float32)]
    if device != "cpu":  # smoke_test's batch on the GPU, in both precisions
        cases += [((20, 16, 50, 100), True, torch.float32), ((20, 16, 50, 100), True, torch.float64)]
    worst = 0.0
    for shape, full, dtype in cases:
        a = torch.randn(*shape, generator=g, dtype=dtype).to(device)
        what = f"torch.linalg.svd({'x'.join(map(str, shape))} {str(dtype)[6:]}, full_matrices={full}) on {device}"
        u, s, vh = torch.linalg.svd(a, full_matrices=full)
        m, n = shape[-2:]
        k, batch = min(m, n), tuple(shape[:-2])
        want = (batch + (m, m if full else k), batch + (k,), batch + (n if full else k, n))
        got = (tuple(u.shape), tuple(s.shape), tuple(vh.shape))
        if got != want:
            return "fail", f"{what} gave U, S, Vh shapes {got}, expected {want}"
        rebuilt = u[..., :k] @ torch.diag_embed(s) @ vh[..., :k, :]
        err = float(torch.dist(a, rebuilt)) / max(float(torch.linalg.norm(a)), 1e-12)
        if not err <= CLOSE:  # also catches NaN
            return "fail", f"{what}: U @ diag(S) @ Vh is off from A by {err:.1e} (relative), expected < {CLOSE}"
        worst = max(worst, err)
    return "pass", f"SVD of {len(cases)} matrices/batches on {device}: shapes right, A rebuilt to {worst:.1e}"


def conv2d_check(torch, device, ref):
    """smoke_test_conv2d. On cpu it stores its conv and result in ref; on CUDA each dtype's
    output is held to that CPU result (smoke_test only checks that there is one)."""
    import torch.nn as nn

    if device == "cpu":
        with torch.random.fork_rng(devices=[]):  # seeded weights, the probe's RNG untouched
            torch.manual_seed(0)
            conv = nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1))
        x = torch.randn(20, 16, 50, 100, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = conv(x)
        if tuple(out.shape) != (20, 33, 26, 100) or not bool(torch.isfinite(out).all()):
            return "fail", (f"Conv2d(16, 33, (3, 5), dilation=(3, 1)) on a 20x16x50x100 input gave "
                            f"shape {tuple(out.shape)} (expected (20, 33, 26, 100)) or non-finite values")
        ref.update(conv=conv, x=x, out=out)
        return "pass", "dilated Conv2d(16, 33, (3, 5)) on 20x16x50x100: output 20x33x26x100, finite"
    if not ref:
        return "skip", "no CPU result to compare with (conv2d cpu failed)"
    small = nn.Conv2d(3, 3, 3).to(device)
    x = torch.randn(1, 3, 24, 24, device=device)
    with torch.no_grad():
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            out = small(x)
        if out.dtype != torch.float16:
            return "fail", f"Conv2d under autocast(float16) on {device} gave {out.dtype}, expected torch.float16"
        err = _relative_error(torch, out, small(x))
        if not err <= CLOSE:
            return "fail", f"Conv2d under autocast(float16) on {device} is off by {err:.1e} from float32"
        worst = [("autocast fp16", err)]
        for dtype in (torch.float16, torch.float32, torch.float64):
            conv = copy.deepcopy(ref["conv"]).to(device=device, dtype=dtype)
            err = _relative_error(torch, conv(ref["x"].to(device=device, dtype=dtype)), ref["out"])
            if not err <= CLOSE:
                return "fail", (f"dilated Conv2d in {str(dtype)[6:]} on {device} is off from the CPU result by "
                                f"{err:.1e} of its range (expected < {CLOSE})")
            worst.append((str(dtype)[6:], err))
    return "pass", f"Conv2d on {device} matches the CPU result: " + ", ".join(f"{n} {e:.0e}" for n, e in worst)


def sdpa_check(torch, device):
    """smoke_test's test_sdpa: fp16 attention with a mask (cuDNN 9.13 on CUDA 13 once gave no plan)."""
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        return "skip", f"torch {torch.__version__} predates scaled_dot_product_attention (2.0)"
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.rand(3, 1, 16, 77, 64, generator=g).to(device=device, dtype=torch.float16).unbind(0)
    mask = torch.rand(1, 1, 77, 77, generator=g).to(device=device, dtype=torch.float16)
    with torch.no_grad():
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, mask)
    if bool(out.isnan().any()):
        return "fail", f"scaled_dot_product_attention in float16 on {device} returned NaN"
    return "pass", f"scaled_dot_product_attention in float16 on {device}: no NaN"


def nvshmem_check(env, gpu):
    if not gpu:
        return "skip", NO_GPU
    info = env["torch"]
    if info.get("hip"):
        return "skip", f"ROCm build (HIP {info['hip']}): NVSHMEM is CUDA only"
    try:
        from torch._C._distributed_c10d import _is_nvshmem_available
    except ImportError:
        return nvshmem_verdict(info["version"], info.get("parsed"), None)
    return nvshmem_verdict(info["version"], info.get("parsed"), bool(_is_nvshmem_available()))


def nvshmem_verdict(version, parsed, available):
    """available: None when torch has no NVSHMEM, else whether it loads at run time."""
    if available is not None:
        return "pass", f"torch built with NVSHMEM (available at run time: {available})"
    if parsed and (parsed["major"], parsed["minor"]) < NVSHMEM_MIN_TORCH:
        return "skip", f"torch {version} predates 2.9, whose CUDA builds have NVSHMEM"
    return "fail", (f"torch {version} is built without NVSHMEM (no torch._C._distributed_c10d."
                    f"_is_nvshmem_available): PyTorch's CUDA builds have it from 2.9 on")


def vec_isa_check():
    pick = None
    for name in ("torch._inductor.cpu_vec_isa", "torch._inductor.codecache"):  # newer, older home
        try:
            pick = getattr(importlib.import_module(name), "pick_vec_isa", None)
        except ImportError:
            continue
        if pick is not None:
            break
    if pick is None:
        return "skip", "this torch has no inductor ISA detection (torch._inductor.cpu_vec_isa.pick_vec_isa)"
    return vec_isa_verdict(pick(), os.environ.get("ATEN_CPU_CAPABILITY"))


def vec_isa_verdict(isa, capability=None):
    """capability: $ATEN_CPU_CAPABILITY, which inductor follows too ("default": no vector ISA)."""
    if not isa and capability == "default":
        return "fail", ("inductor picks no vector ISA: ATEN_CPU_CAPABILITY=default is set, which turns off "
                        "vectorized CPU kernels in compiled code too; unset it (or name avx2, avx512)")
    if not isa:
        return "fail", ("inductor detects no vector ISA for this CPU (pick_vec_isa() is empty): compiled CPU "
                        "kernels run scalar; see the c++ compiler check (each ISA is test-built with it)")
    return "pass", f"inductor picked {type(isa).__name__} ({isa.bit_width()}-bit: {isa})"


def max_autotune_check(torch, device):
    """smoke_test_compile's last step: its small convnet under mode="max-autotune", against eager."""
    if not hasattr(torch, "compile"):
        return "skip", f"torch {torch.__version__} predates torch.compile (2.0)"
    import torch._dynamo
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):  # smoke_test's: two convs, a max-pool, one linear layer
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 1)

        def forward(self, x):
            x = F.max_pool2d(self.conv2(self.conv1(x)), 2)
            return self.fc1(torch.flatten(x, 1))

    precision = torch.get_float32_matmul_precision()
    torch._dynamo.reset()
    torch.set_float32_matmul_precision("high")  # as smoke_test: TF32 matmuls, within CLOSE
    try:
        model = Net().to(device).eval()
        x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = torch.compile(model, mode="max-autotune")(x)
            seconds = time.perf_counter() - t0
            err = _relative_error(torch, out, model(x))
    finally:
        torch.set_float32_matmul_precision(precision)
        torch._dynamo.reset()
    if not err <= CLOSE:
        return "fail", f"the max-autotune compiled net on {device} is off from eager by {err:.1e} (relative)"
    return "pass", f"max-autotune compile on {device} in {seconds:.1f} s, matches eager to {err:.0e}"


# --------------------------------------------------------------------------- the CUDA error child


def _gds_skip(env, gpu):
    """Why the cuFile check cannot apply here, or None."""
    if not gpu:
        return NO_GPU
    info = env["torch"]
    if info.get("hip"):
        return f"ROCm build (HIP {info['hip']}): cuFile is CUDA only"
    if not sys.platform.startswith("linux"):
        return f"cuFile (GDS) is Linux only ({sys.platform})"
    cuda = tuple(int(x) for x in str(info.get("cuda") or "0.0").split(".")[:2])
    if cuda < GDS_MIN_CUDA:
        return f"CUDA {info.get('cuda')} < 12.6: PyTorch builds cuFile support from CUDA 12.6 on"
    return None


def start_cuda_errors(device, gds, timeout=CHILD_TIMEOUT_S):
    """Start cuda_errors.py on device without waiting; ``finish_cuda_errors`` collects it."""
    state = {"proc": None, "error": None, "timeout": timeout}
    try:
        argv = [sys.executable, "-B", CHILD, device] + (["--gds"] if gds else [])
        state["proc"] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True)
    except OSError as exc:
        state["error"] = f"cannot start the child process: {error_line(exc)}"
    return state


def finish_cuda_errors(state):
    """({test: result}, None) when the child ran through, else the results it gave and why not."""
    proc = state["proc"]
    if proc is None:
        return {}, state["error"]
    try:
        out, err = proc.communicate(timeout=state["timeout"])
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        problem = f"the child process ran past {state['timeout']} s"
    else:
        problem = None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
            last = lines[-1][:300] if lines else "no output on stderr"
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            problem = f"the child process ended with {how}: {last}"
    results = {}
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "test" in obj:
            results[obj["test"]] = obj
    return results, problem


def gds_verdict(result, problem, device):
    if result is None:
        return "fail", f"GdsFile on {device} in a child process gave no result: {problem or 'no output'}"
    if result["outcome"] == "unsupported":
        return "skip", f"this torch has no cuFile (GDS) support: {result['error']}"
    if result["outcome"] == "registered":
        return "pass", "GdsFile registered a temp file: cuFile works here (GDS or compat mode)"
    if result["runtime_error"] and result["names_cufile"]:
        return "pass", f"cuFile error captured as {result['error']}"
    return "fail", f"GdsFile on {device} raised {result['error']}: expected a RuntimeError from cuFile"


def assert_verdict(result, problem, device):
    if result is None:
        return "fail", (f"torch._assert_async on {device} in a child process gave no result: "
                        f"{problem or 'no output'}")
    if result["outcome"] == "setup":
        return "fail", f"a child process could not put a tensor on {device}: {result['error']}"
    if result["outcome"] == "silent":
        return "fail", (f"torch._assert_async(tensor(0)) on {device} raised nothing, even after a "
                        f"synchronize: errors in CUDA kernels go unreported")
    if not (result["runtime_error"] and result["names_cuda"]):
        return "fail", (f"torch._assert_async(tensor(0)) on {device} raised {result['error']}, "
                        f"expected a RuntimeError naming CUDA")
    return "pass", f"device-side assert raised as {result['error']}"
