"""The doctor's rules with the values of the release matrix's reference tables."""

from __future__ import annotations

from envctl.catalog import Project
from envctl.doctor import Gpu, HostFacts, check_capability, check_driver, evaluate

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_driver_520_fails_cuda_12_8_and_names_the_needed_driver():
    f = check_driver("520.61.05", "12.8")
    assert f.status == "fail" and f.blocking
    assert "driver 520.61.05 is older than 525.60.13, which CUDA 12.8 needs" in f.message


def test_driver_rules_per_cuda_major():
    assert check_driver("580.159.04", "13.0").status == "ok"
    assert check_driver("575.57.08", "13.0").status == "fail"
    assert check_driver("470.82.01", "11.8").status == "ok"
    assert check_driver("525.60.13", "12.6").status == "ok"


def test_capability_12_0_not_in_cu126_arch_list():
    f = check_capability("GPU 0 (RTX 5090)", "12.0", "12.6", "2.8.0", "cu126")
    assert f.status == "fail" and f.blocking
    assert "capability 12.0 is not in the cu126 arch list 5.0..9.0" in f.message


def test_capability_rules():
    assert check_capability("H100", "9.0", "12.6", "2.8.0", "cu126").status == "ok"
    assert check_capability("V100", "7.0", "12.8", "2.11.0", "cu128").status == "fail"  # 2.11 dropped Volta
    assert check_capability("V100", "7.0", "12.8", "2.8.0", "cu128").status == "ok"
    assert check_capability("future", "13.0", "13.0", "2.13.0", "cu130").status == "ok"  # PTX of 12.0 JITs


def test_no_gpu_is_said_plainly_not_failed():
    spec = Project(REPO).resolve("pytorch-2.8-cu126")
    findings = evaluate(HostFacts(engine_version="20.10", free_bytes=100 * 10**9, driver_error="nvidia-smi not found"),
                        spec)
    gpu = next(f for f in findings if f.check == "gpu")
    assert gpu.status == "warn" and "no NVIDIA GPU or driver" in gpu.message
    assert not any(f.blocking and f.status == "fail" for f in findings)


def test_gpu_host_with_old_driver_and_no_runtime_blocks():
    spec = Project(REPO).resolve("pytorch-2.11-cu128")
    facts = HostFacts(engine_version="27.0", nvidia_runtime=False, free_bytes=100 * 10**9,
                      gpus=[Gpu(0, "Tesla V100", "7.0", "520.61.05")])
    failed = {f.check for f in evaluate(facts, spec) if f.status == "fail"}
    assert failed == {"driver", "gpu arch", "nvidia runtime"}


def test_engine_missing_blocks_only_when_an_image_is_asked_for():
    facts = HostFacts(engine_error="connection refused", free_bytes=10**11)
    assert next(f for f in evaluate(facts, None) if f.check == "docker").status == "warn"
    spec = Project(REPO).resolve("pytorch-2.13-cpu")
    assert next(f for f in evaluate(facts, spec) if f.check == "docker").blocking


def test_doctor_takes_cuda_from_the_lock_and_size_from_the_built_image():
    from envctl.doctor import HostFacts, ImageFacts, evaluate, locked_cuda
    from envctl.lock import load_lock

    spec = Project(REPO).resolve("pytorch-2.14-cu130")
    lock = load_lock(Project(REPO).lock_path(spec.name))
    assert locked_cuda(lock) == "13.0"  # nvidia-cuda-runtime 13.0.96 in the lock
    facts = HostFacts(engine_version="20.10", free_bytes=5 * 10**9,
                      gpus=[Gpu(0, "NVIDIA H100", "9.0", "575.51")])
    image = ImageFacts(cuda="13.0", size=6_200_000_000, source="built image abc")
    findings = {f.check: f for f in evaluate(facts, spec, image)}
    assert findings["driver"].status == "fail" and "CUDA 13.0" in findings["driver"].message
    assert findings["disk"].status == "fail" and "the image is 6.2 GB (built image abc)" in findings["disk"].message
    roomy = HostFacts(engine_version="20.10", free_bytes=10 * 10**9)
    assert next(f for f in evaluate(roomy, spec, image) if f.check == "disk").status == "ok"
