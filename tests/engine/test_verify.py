"""envctl verify in real images: the CPU image passes; a missing compiler and drift are named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from envctl.catalog import Project
from envctl.engine import Engine
from envctl.executors import LocalEngine
from envctl.verify import plan_verify, run_verify

from .conftest import REPO, project_with_base, run_envctl


def test_verify_cpu_image_passes_and_is_recorded(cpu_image, engine_env):
    result = run_envctl("verify", "pytorch-2.13-cpu", "--quick", "--json", env=engine_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["schema"] == "envctl.probe/1"
    assert doc["image"] == {"name": "pytorch-2.13-cpu", "id": cpu_image["image_id"]}  # a saved file names it
    modes = {r["mode"] for r in doc["benchmarks"] if r["status"] == "ok"}
    assert {"eager", "compile-default", "script", "trace"} <= modes
    assert all(r["agree"] for r in doc["benchmarks"] if r["status"] == "ok")
    drift = next(c for c in doc["checks"] if c["name"] == "pip drift")
    assert drift["status"] == "pass"
    history = json.loads(run_envctl("history", "pytorch-2.13-cpu", "--json", env=engine_env).stdout)
    assert history[0]["kind"] == "verify" and history[0]["ok"] is True
    assert history[0]["image_id"] == cpu_image["image_id"]


def test_release_smoke_checks_pass_in_the_cpu_image(cpu_image, docker_client):
    """PyTorch's release smoke test as the probe's checks, in the real image at standard (where
    inductor's CPU ISA detection runs too): the CPU ones pass, the GPU ones say there is no GPU."""
    plan = plan_verify(Project(REPO), "pytorch-2.13-cpu", executor=LocalEngine(Engine(docker_client)),
                       image=cpu_image["image_id"], gpus="none", level="standard", checks_only=True)
    report = run_verify(plan).report
    checks = {c["name"]: c for c in report.checks}
    for name in ("openmp", "linalg cpu", "conv2d cpu", "cpu vec isa"):
        assert checks[name]["status"] == "pass", checks[name]
    for name in ("linalg cuda", "conv2d cuda", "sdpa cuda", "nvshmem", "cuda gds", "cuda device assert"):
        assert checks[name]["status"] == "skip" and checks[name]["message"].startswith("no GPU"), checks[name]
    assert checks["max-autotune compile"]["status"] == "skip"
    assert report.ok


@pytest.fixture(scope="module")
def nocc_project(tmp_path_factory, engine_env):
    """pytorch-2.13-cpu on the base without g++ (envctl base --no-toolchain)."""
    root = project_with_base(tmp_path_factory.mktemp("nocc"), "envctl/debian:bookworm-minimal")
    env = {**engine_env, "ENVCTL_PROJECT": str(root)}
    built = run_envctl("build", "pytorch-2.13-cpu", "--json", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    image_id = json.loads(built.stdout)["image_id"]
    yield env, image_id
    Engine.connect().remove_image(image_id)


def test_image_without_compiler_fails_compile_check_and_runs_the_rest(nocc_project):
    env, image_id = nocc_project
    result = run_envctl("verify", "pytorch-2.13-cpu", "--quick", "--json", env=env)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    failed = {c["name"]: c["message"] for c in doc["checks"] if c["status"] == "fail"}
    assert "torch.compile cannot work in this image" in failed["c++ compiler"]
    assert "torch.compile" in failed
    rows = {r["mode"]: r for r in doc["benchmarks"]}
    assert rows["compile-default"]["status"] == "error"
    assert rows["eager"]["status"] == rows["script"]["status"] == rows["trace"]["status"] == "ok"
    assert doc["torchscript"]["ok"] is True


def test_extra_pip_package_fails_drift_naming_it(cpu_image, docker_client, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(ctx), "six==1.16.0"],
                   check=True)
    wheel = next(ctx.glob("six-*.whl")).name
    (ctx / "Dockerfile").write_text(f"FROM {cpu_image['image_id']}\nCOPY {wheel} /tmp/\n"
                                    f"RUN python -m pip install -q --no-index /tmp/{wheel} && rm /tmp/{wheel}\n")
    image, _ = docker_client.images.build(path=str(ctx), rm=True, forcerm=True, network_mode="none")
    try:
        plan = plan_verify(Project(REPO), "pytorch-2.13-cpu", executor=LocalEngine(Engine(docker_client)),
                           image=image.id, gpus="none", level="quick", checks_only=True)
        v = run_verify(plan)
        report = v.report
        assert v.where["executor"] == "local"
        drift = next(c for c in report.checks if c["name"] == "pip drift")
        assert drift["status"] == "fail"
        assert "six" in drift["message"]
        assert not report.ok
    finally:
        docker_client.images.remove(image.id, force=True)
