"""``envctl compat run`` on the fleet without a cluster (issues #23-#25): the runner task of the
compat workflow as Kubernetes Jobs (validated strictly against the official schemas, as verify's
are) and as an sbatch script, printed by ``--dry-run`` with nothing submitted or recorded; and the
bad input a fleet run refuses in one line, exit 2, before anything runs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from envctl.lock import load_lock
from envctl.records import Records

VERSIONS = [f"1.{minor}" for minor in range(28, 38)]
DIGEST = "sha256:" + "ab" * 32
RUNNER_ARGS = ["python", "/opt/envctl-probe/compat_runner.py", "--manifest", "/opt/envctl-compat/manifest.json",
               "--timeout", "60.0", "--device", "auto", "--runtime", "python"]


def envctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {text}") or text in lines[0], result.stderr
    assert len(lines) <= 2 and "Traceback" not in result.stderr and result.stdout == ""


@pytest.fixture
def model(tmp_path, project, monkeypatch) -> Path:
    """A real TorchScript artifact registered with its inputs and outputs (made with the test's torch)."""
    import torch

    monkeypatch.setenv("ENVCTL_ARTIFACTS", str(tmp_path / "store"))
    scripted = torch.jit.script(torch.nn.Linear(4, 2).eval())
    path, inputs, outputs = tmp_path / "linear.pt", tmp_path / "in.pt", tmp_path / "out.pt"
    scripted.save(str(path))
    sample = (torch.ones(1, 4),)
    torch.save(sample, inputs)
    torch.save([scripted(*sample)], outputs)
    added = envctl("artifacts", "add", str(path), "--inputs", str(inputs), "--outputs", str(outputs))
    assert added.returncode == 0, added.stderr
    return path


@pytest.fixture
def pushed(project) -> str:
    """A recorded push of the current lock of pytorch-2.13-cpu (no registry is asked: the compat
    workflow needs only the reference by digest)."""
    lock = load_lock(project / "locks" / "pytorch-2.13-cpu.conda-lock.yml")
    ref = f"127.0.0.1:5000/ml/pytorch-2.13-cpu@{DIGEST}"
    Records().add_push(image="pytorch-2.13-cpu", ref=ref, registry="127.0.0.1:5000/ml", image_id="sha256:" + "cd" * 32,
                       lock_hash=lock.lock_hash)
    return ref


def test_kubernetes_dry_run_prints_valid_jobs_carrying_the_runner_and_the_artifact(model, pushed):
    result = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--on", "kubernetes", "--namespace", "ml-ci",
                    "--gpu-product", "NVIDIA-H100-80GB-HBM3", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# envctl submission ") and "kubectl apply --namespace ml-ci -f -" in result.stdout
    config_map, job = docs = list(yaml.safe_load_all(result.stdout))
    for doc in docs:
        for version in VERSIONS:
            assert kubernetes_validate.validate(doc, version, strict=True) == version
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == pushed and container["args"] == RUNNER_ARGS
    assert container["securityContext"]["runAsUser"] == 65534 and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "2Gi", "cpu": "2000m"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {m["mountPath"] for m in container["volumeMounts"] if m.get("readOnly")} == {
        "/opt/envctl-probe", "/artifacts", "/opt/envctl-compat"}
    assert job["metadata"]["labels"]["envctl.io/image"] == "pytorch-2.13-cpu"
    assert job["metadata"]["labels"]["envctl.io/target"] == "kubernetes"
    # What travels: the runner, the manifest naming the artifact where it is mounted, the artifact's bytes.
    files = {**config_map.get("data", {}), **{k: base64.b64decode(v) for k, v in config_map["binaryData"].items()}}
    assert any(k.endswith("-compat_runner.py") for k in files)
    [manifest] = [json.loads(v) for k, v in files.items() if k.endswith("-manifest.json")]
    [entry] = manifest
    assert entry["kind"] == "torchscript" and entry["artifact"].startswith(f"/artifacts/{entry['id']}/")
    assert model.read_bytes() in files.values()
    items = {i["path"] for v in pod["volumes"] if v.get("configMap") for i in v["configMap"]["items"]}
    assert entry["artifact"].removeprefix("/artifacts/") in items
    assert list(Records().execute("SELECT * FROM compat")) == []  # nothing ran, nothing recorded


def test_slurm_dry_run_prints_the_sbatch_script_pulling_the_push(model, pushed):
    result = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--on", "slurm", "--partition", "debug",
                    "--dry-run")
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert script.startswith("#!/bin/bash") and "#SBATCH --partition=debug" in script
    assert f"PULL={pushed}" in script and "/opt/envctl-probe/compat_runner.py --manifest" in script
    assert "--read-only" in script and "--user 65534:65534" in script and "--network=none" in script
    assert "--gpus" not in script  # auto on a pool without GPUs asks for none


def test_a_never_pushed_image_is_one_line_exit_2(model):
    for where in (["--on", "slurm"], ["--on", "kubernetes", "--dry-run"]):
        result = envctl("compat", "run", "--image", "pytorch-2.13-cpu", *where)
        one_line_error(result, "pytorch-2.13-cpu was never pushed: a remote target runs the image from a registry")
        assert "push it first: envctl push pytorch-2.13-cpu --registry R" in result.stderr


def test_an_unknown_target_is_one_line_exit_2(model, pushed, project):
    (project / "fleet.yaml").write_text("version: 1\ntargets:\n  cpu-pool: {on: slurm, partition: debug}\n")
    result = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--target", "nowhere")
    one_line_error(result, "--target nowhere: no such target in")
    assert "targets: cpu-pool" in result.stderr


def test_what_only_this_machine_runs_is_refused_on_the_fleet(model, pushed):
    python = envctl("compat", "run", "--python", sys.executable, "--on", "slurm")
    one_line_error(python, f"--python {sys.executable} runs on this machine")
    libtorch = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--runtime", "libtorch", "--on", "slurm")
    one_line_error(libtorch, "--runtime libtorch runs only on this machine's engine")
    option = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--partition", "debug")
    one_line_error(option, "--partition needs --on slurm or --on kubernetes")


def test_gpus_a_fleet_task_asks_for():
    from envctl.compat.workflow import fleet_gpus
    from envctl.executors.kubernetes import KubernetesExecutor, KubernetesOptions
    from envctl.executors.slurm import SlurmExecutor, SlurmOptions

    cpu_pool, gpu_pool = SlurmExecutor(SlurmOptions()), SlurmExecutor(SlurmOptions(gres="gpu:1"))
    assert [fleet_gpus(cpu_pool, d) for d in ("auto", "cpu", "cuda")] == [None, None, "all"]
    assert [fleet_gpus(gpu_pool, d) for d in ("auto", "cpu", "cuda")] == ["all", None, "all"]
    two = KubernetesExecutor(KubernetesOptions(gpus=2))
    assert [fleet_gpus(two, d) for d in ("auto", "cpu", "cuda")] == ["2", None, "2"]
    plain = KubernetesExecutor(KubernetesOptions())
    assert [fleet_gpus(plain, d) for d in ("auto", "cpu", "cuda")] == [None, None, "1"]
