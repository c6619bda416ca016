"""Planning a build needs no engine: the rendered Dockerfile and labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from envctl.build import LABEL_LOCK_HASH, plan_build, requirements_txt
from envctl.catalog import Project
from envctl.errors import StaleLockError
from envctl.lock import load_lock, require_current_lock

REPO = Path(__file__).resolve().parent.parent


def test_buildkit_plan_bind_mounts_each_layers_packages_into_its_own_offline_run():
    project = Project(REPO)
    spec = project.resolve("pytorch-2.13-cpu")
    lock = load_lock(project.lock_path(spec.name))
    text = plan_build(spec, lock, project=project, builder="buildkit").dockerfile
    assert text.count("FROM envctl/debian:bookworm") == 1
    # No cuda layer in a CPU lock: the venv, then torch, then the rest.
    assert "RUN --mount=type=bind,source=layers/torch,target=/mnt" in text
    assert "RUN --mount=type=bind,source=layers/packages,target=/mnt" in text
    assert "layers/cuda" not in text
    assert text.count("--no-index --no-deps --require-hashes") == 2
    assert "COPY" not in text  # no layer ever holds a package file
    # Reproducible layers: hash-based .pyc under SOURCE_DATE_EPOCH, each layer sealed.
    assert text.count("SOURCE_DATE_EPOCH=315532800 ") == 2
    assert "seal_layer.py /opt/conda/envs/pytorch-2.13-cpu 1 torch 315532800" in text
    assert "--mount=type=tmpfs,target=/tmp" in text  # a RUN leaves nothing in /tmp


def test_cuda_lock_splits_into_cuda_torch_and_packages_layers():
    project = Project(REPO)
    spec = project.resolve("pytorch-2.14-cu130")
    lock = load_lock(project.lock_path(spec.name))
    plan = plan_build(spec, lock, project=project, builder="buildkit")
    layers = {layer.name: {p.name for p in layer.packages} for layer in plan.layers}
    assert [layer.name for layer in plan.layers] == ["cuda", "torch", "packages"]
    assert {"nvidia-cudnn-cu13", "nvidia-nccl-cu13", "cuda-toolkit", "triton"} <= layers["cuda"]
    assert layers["torch"] == {"torch", "torchvision"}
    assert {"numpy", "pip", "sympy"} <= layers["packages"]
    assert not any(name.startswith("nvidia-") for name in layers["packages"] | layers["torch"])
    assert sum(len(v) for v in layers.values()) == len(lock.pip)  # every package in exactly one layer
    text = plan.dockerfile
    assert text.index("layers/cuda") < text.index("layers/torch") < text.index("layers/packages")
    reqs = requirements_txt(plan.layers[1]).splitlines()
    assert [r.split("==")[0] for r in reqs] == ["torch", "torchvision"]


def test_classic_plan_renders_a_hermetic_two_stage_dockerfile():
    project = Project(REPO)
    spec = project.resolve("pytorch-2.13-cpu")
    lock = load_lock(project.lock_path(spec.name))
    plan = plan_build(spec, lock, project=project, builder="classic")
    text = plan.dockerfile
    assert text.count("FROM envctl/debian:bookworm") == 2
    assert "--no-index" in text and "--require-hashes" in text
    assert "COPY --from=builder /opt/conda/envs/pytorch-2.13-cpu /opt/conda/envs/pytorch-2.13-cpu" in text
    final_stage = text.split("AS builder", 1)[1].split("\nFROM ", 1)[1]
    assert "wheels" not in final_stage  # no package file reaches the final image
    assert plan.labels[LABEL_LOCK_HASH] == lock.lock_hash
    assert len(plan.pip_files) == len(lock.pip)
    reqs = requirements_txt(lock).splitlines()
    assert any(r.startswith("torch==2.13.0+cpu --hash=sha256:") for r in reqs)


def test_stale_or_missing_lock_says_to_run_lock(project):
    import yaml

    proj = Project(project)
    with pytest.raises(StaleLockError, match="run: envctl lock pytorch-2.8-cu126"):
        spec = proj.resolve("pytorch-2.8-cu126")
        try:
            require_current_lock(spec, proj.lock_path(spec.name))
        except StaleLockError as exc:
            raise StaleLockError(f"{exc} {exc.hint}") from None
    path = proj.spec_path("pytorch-2.13-cpu")
    data = yaml.safe_load(path.read_text())
    data["pip"] = ["numpy==2.3.4"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StaleLockError) as info:
        require_current_lock(proj.resolve("pytorch-2.13-cpu"), proj.lock_path("pytorch-2.13-cpu"))
    assert info.value.hint == "run: envctl lock pytorch-2.13-cpu"
