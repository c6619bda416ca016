"""The probe's checks of PyTorch's release smoke test (envctl/probes/probe_release.py, cuda_errors.py).

The probe runs as a plain script with this interpreter's CPU torch: every new check is present,
passing or skipped with its reason (the CUDA ones with "no GPU"). Planted failures show as
failed checks of one line: in the probe process itself (a sitecustomize that breaks torch
before the probe starts), in the real CUDA-error child (run on the CPU, where the assert raises
no CUDA error; killed by a real signal; past its timeout), and in the verdicts' pure logic.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import types

import pytest

from test_smoke import PROBES, _import_probe_module, _torch_or_fail, checks_by_name, run_probe  # noqa: F401

release = _import_probe_module("probe_release")
versions = _import_probe_module("probe_versions")

RELEASE_CHECKS = ("openmp", "linalg cpu", "conv2d cpu", "linalg cuda", "conv2d cuda", "sdpa cuda", "nvshmem",
                  "cuda gds", "cuda device assert", "cpu vec isa", "max-autotune compile")
CUDA_CHECKS = ("linalg cuda", "conv2d cuda", "sdpa cuda", "nvshmem", "cuda gds", "cuda device assert")


def _one_line(c):
    assert c["message"] and "\n" not in c["message"], c


@pytest.fixture(scope="module")
def checks_only_quick():
    return run_probe("--checks-only", "--level", "quick")


@pytest.mark.torch
def test_quick_checks_on_this_cpu(checks_only_quick):
    code, data, stderr = checks_only_quick
    assert code == 0 and data["ok"] is True, stderr[-2000:]
    checks = checks_by_name(data)
    for name in RELEASE_CHECKS:
        _one_line(checks[name])
    for name in ("openmp", "linalg cpu", "conv2d cpu"):
        assert checks[name]["status"] == "pass", checks[name]
    for name in CUDA_CHECKS:
        assert (checks[name]["status"], checks[name]["message"]) == ("skip", "no GPU (the probe runs on cpu)")
    # --checks-only at quick compiles nothing, so the ISA detection would cost ~10 s: skipped
    assert checks["cpu vec isa"]["status"] == "skip" and "standard or full" in checks["cpu vec isa"]["message"]
    assert checks["max-autotune compile"]["status"] == "skip"
    assert checks["max-autotune compile"]["message"].startswith("runs at level full only (level is quick)")
    assert data["phases"]["release_s"] < 5  # cheap on CPU: the quick level stays fast


@pytest.mark.torch
@pytest.mark.slow
def test_full_level_detects_the_cpu_vector_isa_and_compiles_with_max_autotune():
    code, data, stderr = run_probe("--checks-only", "--level", "full")
    checks = checks_by_name(data)
    isa, autotune = checks["cpu vec isa"], checks["max-autotune compile"]
    assert isa["status"] == "pass", (isa, stderr[-2000:])
    assert isa["message"].startswith("inductor picked Vec") and "-bit" in isa["message"]
    assert autotune["status"] == "pass", (autotune, stderr[-2000:])
    assert autotune["message"].startswith("max-autotune compile on cpu in ") and "matches eager" in autotune["message"]
    assert code == 0 and data["ok"] is True


@pytest.mark.torch
@pytest.mark.slow
def test_planted_failures_in_the_probe_process(tmp_path):
    """torch without OpenMP and an SVD that returns garbage: two failed checks, one line each,
    exit 1; every other new check still runs."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import torch
        torch.backends.openmp.is_available = lambda: False
        _svd = torch.linalg.svd
        torch.linalg.svd = lambda a, **kw: tuple(t * 0 for t in _svd(a, **kw))
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code, data, stderr = run_probe("--checks-only", "--level", "quick", env=env)
    assert code == 1 and data["ok"] is False, stderr[-2000:]
    checks = checks_by_name(data)
    assert checks["openmp"]["status"] == "fail"
    assert "is built without OpenMP (torch.backends.openmp.is_available() is False)" in checks["openmp"]["message"]
    linalg = checks["linalg cpu"]
    assert linalg["status"] == "fail"
    assert linalg["message"].startswith("torch.linalg.svd(5x3 float32, full_matrices=False) on cpu: "
                                        "U @ diag(S) @ Vh is off from A by 1.0e+00")
    assert checks["conv2d cpu"]["status"] == "pass"
    for name in RELEASE_CHECKS:
        _one_line(checks[name])


# --------------------------------------------------------------------------- in-process checks


@pytest.mark.torch
def test_conv2d_with_a_broken_kernel_fails(monkeypatch):
    import torch

    monkeypatch.setattr(torch.nn.Conv2d, "_conv_forward",
                        lambda self, x, w, b: torch.full((20, 33, 26, 100), float("nan")))
    c = release._run("conv2d cpu", release.conv2d_check, torch, "cpu", {})
    assert c["status"] == "fail" and "non-finite values" in c["message"]
    _one_line(c)
    # on a GPU, no CPU result to hold the CUDA one to: said, not crashed
    assert release.conv2d_check(torch, "cuda:0", {}) == ("skip", "no CPU result to compare with (conv2d cpu failed)")


@pytest.mark.torch
def test_a_check_that_raises_is_a_failed_check_of_one_line():
    import torch

    c = release._run("linalg cuda", release.linalg_check, torch, "nonsense:0")
    assert c["status"] == "fail" and c["message"].startswith("raised RuntimeError: ")
    _one_line(c)


def test_openmp_missing_fails():
    fake = types.SimpleNamespace(__version__="2.9.0", backends=types.SimpleNamespace(
        openmp=types.SimpleNamespace(is_available=lambda: False)))
    status, message = release.openmp_check(fake)
    assert status == "fail" and message.startswith("torch 2.9.0 is built without OpenMP")


def test_vec_isa_verdict():
    class NoIsa:
        def __bool__(self):
            return False

    assert release.vec_isa_verdict(NoIsa())[0] == "fail"
    assert "c++ compiler" in release.vec_isa_verdict(NoIsa())[1]
    # ATen's switch set to "default" is why, not the compiler: the message says so
    status, message = release.vec_isa_verdict(NoIsa(), "default")
    assert status == "fail" and "ATEN_CPU_CAPABILITY=default" in message and "c++ compiler" not in message
    assert "c++ compiler" in release.vec_isa_verdict(NoIsa(), "avx2")[1]

    class Avx2:
        def __bool__(self):
            return True

        def bit_width(self):
            return 256

        def __str__(self):
            return "avx2"

    assert release.vec_isa_verdict(Avx2()) == ("pass", "inductor picked Avx2 (256-bit: avx2)")


@pytest.mark.parametrize("version, available, status, needle", [
    ("2.8.0+cu128", None, "skip", "predates 2.9"),
    ("2.9.0+cu128", None, "fail", "built without NVSHMEM"),
    ("2.11.0+cu130", None, "fail", "built without NVSHMEM"),
    ("2.11.0+cu130", True, "pass", "available at run time: True"),
    ("2.9.1+cu126", False, "pass", "available at run time: False"),
])
def test_nvshmem_verdict(version, available, status, needle):
    parsed = versions.parse_version(version)
    got = release.nvshmem_verdict(version, parsed, available)
    assert got[0] == status and needle in got[1]


def test_nvshmem_skips_without_a_gpu_and_on_rocm():
    env = {"torch": {"version": "2.11.0", "parsed": None, "hip": "6.4"}}
    assert release.nvshmem_check(env, None) == ("skip", release.NO_GPU)
    assert release.nvshmem_check(env, "cuda:0")[0] == "skip"


@pytest.mark.parametrize("cuda, hip, gpu, reason", [
    ("13.0", None, "cuda:0", None),
    ("12.6", None, "cuda:0", None),
    ("12.4", None, "cuda:0", "CUDA 12.4 < 12.6"),
    ("11.8", None, "cuda:0", "CUDA 11.8 < 12.6"),
    (None, "6.4", "cuda:0", "ROCm build"),
    ("13.0", None, None, "no GPU"),
])
def test_gds_applies_from_cuda_12_6(cuda, hip, gpu, reason):
    got = release._gds_skip({"torch": {"cuda": cuda, "hip": hip}}, gpu)
    assert got == reason if reason is None else reason in got


# --------------------------------------------------------------------------- the CUDA-error child


@pytest.mark.torch
def test_child_on_cpu_gives_no_cuda_errors_and_both_fail():
    """The real child with the CPU as device: the assert raises, but not as a CUDA error, and
    GdsFile refuses a CPU device. Both are failed checks that say so in one line."""
    results, problem = release.finish_cuda_errors(release.start_cuda_errors("cpu", gds=True))
    assert problem is None
    status, message = release.assert_verdict(results["assert"], problem, "cpu")
    assert status == "fail"
    assert message == ("torch._assert_async(tensor(0)) on cpu raised RuntimeError: Expected Tensor with "
                       "single nonzero value, but got zero, expected a RuntimeError naming CUDA")
    status, message = release.gds_verdict(results["gds"], problem, "cpu")
    assert status == "fail" and message.startswith("GdsFile on cpu raised ValueError: ")


@pytest.mark.torch
def test_child_past_its_timeout_is_killed_and_named():
    results, problem = release.finish_cuda_errors(release.start_cuda_errors("cpu", gds=False, timeout=0.05))
    assert results == {} and problem == "the child process ran past 0.05 s"
    assert release.assert_verdict(None, problem, "cuda:0") == (
        "fail", "torch._assert_async on cuda:0 in a child process gave no result: the child process ran past 0.05 s")


def test_child_killed_by_a_signal_keeps_what_it_reported(tmp_path, monkeypatch):
    """A child that dies of SIGSEGV after the cuFile result: that result stands, the assert is a
    failed check naming the signal and the child's last words."""
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import json, os, signal, sys
        print(json.dumps({{"test": "gds", "outcome": "registered"}}), flush=True)
        sys.stderr.write("about to crash\\n"); sys.stderr.flush()
        os.kill(os.getpid(), {int(signal.SIGSEGV)})
    """))
    monkeypatch.setattr(release, "CHILD", str(child))
    results, problem = release.finish_cuda_errors(release.start_cuda_errors("cuda:0", gds=True))
    assert problem == f"the child process ended with signal {int(signal.SIGSEGV)}: about to crash"
    assert release.gds_verdict(results["gds"], problem, "cuda:0")[0] == "pass"
    status, message = release.assert_verdict(results.get("assert"), problem, "cuda:0")
    assert status == "fail" and message.endswith(f"signal {int(signal.SIGSEGV)}: about to crash")


@pytest.mark.parametrize("result, status, needle", [
    ({"outcome": "raised", "runtime_error": True, "names_cuda": True,
      "error": "AcceleratorError: CUDA error: device-side assert triggered"}, "pass", "device-side assert raised as"),
    ({"outcome": "silent"}, "fail", "raised nothing, even after a synchronize"),
    ({"outcome": "setup", "error": "AcceleratorError: CUDA error: all CUDA-capable devices are busy"},
     "fail", "could not put a tensor on cuda:0"),
    ({"outcome": "raised", "runtime_error": False, "names_cuda": True, "error": "ValueError: CUDA"},
     "fail", "expected a RuntimeError naming CUDA"),
])
def test_assert_verdict(result, status, needle):
    got = release.assert_verdict(result, None, "cuda:0")
    assert got[0] == status and needle in got[1]


@pytest.mark.parametrize("result, status, needle", [
    ({"outcome": "raised", "runtime_error": True, "names_cufile": True,
      "error": "RuntimeError: cuFileHandleRegister failed: internal error"}, "pass", "cuFile error captured"),
    ({"outcome": "registered"}, "pass", "compat mode"),
    ({"outcome": "unsupported", "error": "AttributeError: _gds_register_handle"}, "skip", "no cuFile (GDS) support"),
    ({"outcome": "raised", "runtime_error": True, "names_cufile": False, "error": "RuntimeError: boom"},
     "fail", "expected a RuntimeError from cuFile"),
])
def test_gds_verdict(result, status, needle):
    got = release.gds_verdict(result, None, "cuda:0")
    assert got[0] == status and needle in got[1]


def test_child_usage_without_a_device():
    proc = subprocess.run([sys.executable, str(PROBES / "cuda_errors.py")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == "" and "usage: cuda_errors.py DEVICE" in proc.stderr
