"""PyTorch's own release smoke test (.ci/pytorch/smoke_test/smoke_test.py), run unchanged in the
real CPU image beside the probe's named checks of it: it passes there, and each fault planted in
an image fails both PyTorch's script and the probe's check of the same thing, and no other check."""

from __future__ import annotations

import pytest

from envctl.catalog import Project
from envctl.engine import Engine
from envctl.executors import LocalEngine
from envctl.verify import plan_verify, run_verify

from .conftest import REPO, run_pytorch_smoke_test

NAME = "pytorch-2.13-cpu"

# fault: (the image's environment, what PyTorch's script fails with, the probe's checks that fail).
# Set with ENV in an image built on the CPU image, so the script and the probe meet it alike.
FAULTS = {
    # ATen's dispatch switch, a real setting: inductor takes "default" as no vector ISA at all
    "no vector isa": ({"ATEN_CPU_CAPABILITY": "default"}, "Can't detect vectorized ISA for CPU",
                      {"cpu vec isa"}),
    # inductor's compiler is $CXX: every compile and the ISA detection (a test build per ISA) fail
    "no c++ compiler": ({"CXX": "/usr/local/bin/no-such-g++"}, "No working C++ compiler",
                        {"c++ compiler", "cpu vec isa"}),
}


@pytest.mark.upstream
def test_pytorchs_smoke_test_passes_in_the_cpu_image(cpu_image, docker_client, pytorch_smoke_test):
    torch = Project(REPO).resolve(NAME).torch
    result = run_pytorch_smoke_test(docker_client, cpu_image["image_id"], pytorch_smoke_test, torch=torch)
    out = result.stdout + result.stderr
    assert result.exit_code == 0, out[-3000:]
    assert f"torch: {torch}+cpu" in out  # and MATRIX_STABLE_VERSION held it to the spec's version
    # its last steps ran: the inductor ISA it picked, then the max-autotune compile
    assert "Picked CPU ISA" in out and "smoke_test_compile with mode 'max-autotune'" in out


@pytest.fixture(params=sorted(FAULTS))
def planted(request, cpu_image, docker_client, tmp_path):
    """(fault, image id): the CPU image with the fault's environment set."""
    env = FAULTS[request.param][0]
    (tmp_path / "Dockerfile").write_text(f"FROM {cpu_image['image_id']}\n"
                                         + "".join(f"ENV {k}={v}\n" for k, v in env.items()))
    image, _ = docker_client.images.build(path=str(tmp_path), rm=True, forcerm=True, network_mode="none")
    yield request.param, image.id
    docker_client.images.remove(image.id, force=True)


def test_the_probe_fails_each_planted_fault_in_its_own_check(planted, docker_client):
    """Without PyTorch's script: the probe meets each fault in the named check of it, and no other."""
    fault, image_id = planted
    env, _script_error, failing = FAULTS[fault]
    plan = plan_verify(Project(REPO), NAME, executor=LocalEngine(Engine(docker_client)), image=image_id,
                       gpus="none", level="standard", checks_only=True)
    report = run_verify(plan).report
    failed = {c["name"]: c["message"] for c in report.checks if c["status"] == "fail"}
    assert set(failed) == failing, failed
    for name, message in failed.items():  # one line that names the cause
        assert "\n" not in message and any(value in message for value in env.values()), (name, message)


@pytest.mark.upstream
def test_pytorchs_smoke_test_fails_on_the_same_planted_faults(planted, docker_client, pytorch_smoke_test):
    """PyTorch's script, unchanged, fails on each fault the probe fails on (the probe's side is above)."""
    fault, image_id = planted
    _env, script_error, _failing = FAULTS[fault]
    script = run_pytorch_smoke_test(docker_client, image_id, pytorch_smoke_test,
                                    torch=Project(REPO).resolve(NAME).torch)
    assert script.exit_code == 1 and script_error in script.stderr, script.stdout[-1500:] + script.stderr[-1500:]
