"""A real CUDA image on a host without a GPU: pytorch-2.14-cu130 (torch 2.14.1 and its
cuda-toolkit / nvidia-*-cu13 wheels from PyPI) built from the committed lock, verified with
--gpus none, PyTorch's own release smoke test run in it, and rebuilt from the package cache alone."""

from __future__ import annotations

import json

import pytest

from envctl.catalog import Project
from envctl.lock import load_lock

from .conftest import REPO, run_envctl, run_pytorch_smoke_test

NAME = "pytorch-2.14-cu130"


@pytest.fixture(scope="module")
def cuda_image(engine_env, docker_client):
    result = run_envctl("build", NAME, "--rebuild", "--json", env=engine_env, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads(result.stdout)
    yield built
    docker_client.images.remove(built["image_id"], force=True)
    # The engine's BuildKit cache still holds the image's 6 GB of layers (about 13 GB after the
    # rebuild below): removing the image gives nothing back until the unused build cache goes.
    # Left in place, it alone ran CI out of disk later in the suite.
    docker_client.api.prune_builds()


def test_cuda_image_is_layered_cuda_torch_packages(cuda_image):
    layers = {layer["layer"]: layer["bytes"] for layer in cuda_image["layers"]}
    assert list(layers) == ["venv", "cuda", "torch", "packages"]
    assert layers["cuda"] > 3e9  # the nvidia-* / cuda-toolkit / triton wheels, unpacked
    # A small pin (numpy, say) rebuilds only the last layer: under 5% of the image.
    assert layers["packages"] < 0.05 * cuda_image["size"]
    assert cuda_image["labels"]["io.envctl.cuda"] == "cu130"


def test_verify_without_gpu_passes_every_check_that_needs_none(cuda_image, engine_env):
    result = run_envctl("verify", NAME, "--gpus", "none", "--quick", "--json", env=engine_env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    doc = json.loads(result.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["cuda version"]["status"] == "pass"
    assert "CUDA 13.0" in checks["cuda version"]["message"]
    assert checks["gpu available"]["status"] == "skip" and "no GPU visible" in checks["gpu available"]["message"]
    lock = load_lock(Project(REPO).lock_path(NAME))
    pins = lock.pip_pins()
    # cuDNN and NCCL as torch loads them, against the installed wheels (and the lock).
    assert checks["cudnn wheel"]["status"] == "pass" and pins["nvidia-cudnn-cu13"] in checks["cudnn wheel"]["message"]
    assert checks["nccl wheel"]["status"] == "pass" and pins["nvidia-nccl-cu13"] in checks["nccl wheel"]["message"]
    assert checks["cudnn"]["status"] == "pass"
    assert checks["arch list"]["status"] == "pass" and "9.0" in checks["arch list"]["message"]
    assert checks["c++ compiler"]["status"] == "pass" and checks["python headers"]["status"] == "pass"
    assert checks["pip drift"]["status"] == "pass" and checks["env tree"]["status"] == "pass"
    # The toolchain proven on the CPU with the small models.
    assert doc["device"] == "cpu"
    ok_modes = {r["mode"] for r in doc["benchmarks"] if r["status"] == "ok"}
    assert {"eager", "compile-default", "script", "trace"} <= ok_modes


@pytest.mark.upstream
def test_pytorchs_smoke_test_passes_without_a_gpu(cuda_image, docker_client, pytorch_smoke_test):
    """PyTorch's release smoke test, unchanged, in the CUDA image on a host without a GPU. Its CUDA
    steps run only when MATRIX_GPU_ARCH_TYPE is "cuda", and then a missing GPU is its failure
    ("CUDA is not loaded"), so it runs as on a CPU runner: OpenMP, torch's version, conv2d, SVD,
    numpy, then torch.compile on the CPU with the ISA and max-autotune; NVSHMEM says no CUDA."""
    spec = Project(REPO).resolve(NAME)
    result = run_pytorch_smoke_test(docker_client, cuda_image["image_id"], pytorch_smoke_test, torch=spec.torch,
                                    environment={"MATRIX_GPU_ARCH_VERSION": "13.0"})  # what a GPU run holds it to
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out[-3000:]
    assert f"torch: {spec.torch}" in out
    assert "Picked CPU ISA" in out and "smoke_test_compile with mode 'max-autotune'" in out
    assert "CUDA is not available, skipping NVSHMEM test" in out


def test_verify_requiring_a_gpu_on_a_host_without_one_fails_with_what_to_do(cuda_image, engine_env,
                                                                            docker_client):
    result = run_envctl("verify", NAME, "--checks-only", env=engine_env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--gpus none" in result.stderr  # the hint names the way to run the GPU-free checks
    # The container whose start failed is not left behind (docker-py's run() would leave it created).
    assert docker_client.containers.list(all=True, filters={"ancestor": cuda_image["image_id"]}) == []


def test_second_build_downloads_nothing(cuda_image, engine_env, docker_client):
    # Every download would go through a proxy that does not exist, and no mirror is named:
    # the build succeeds only because the verified cache holds every file of the lock.
    offline = {**engine_env, "ENVCTL_MIRRORS": "", "HTTPS_PROXY": "http://127.0.0.1:9",
               "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9"}
    result = run_envctl("build", NAME, "--rebuild", "--json", env=offline, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout)
    try:
        assert again["built"] is True and again["env_tree"] == cuda_image["env_tree"]
    finally:
        docker_client.images.get(cuda_image["image_id"]).tag(cuda_image["tag"])
        if again["image_id"] != cuda_image["image_id"]:
            docker_client.images.remove(again["image_id"], force=True)
