"""``envctl compat run`` on the real one-node Slurm cluster (issues #23, #24): a real TorchScript
artifact under pytorch-2.13-cpu pushed to the real registry, run by the compat workflow as an
sbatch job (the image pulled by digest through the node's engine, the runner and the artifact
travelling in the submission folder) beside a target `on: local`, each outcome recorded with
its target and where it ran, and the matrix showing this machine's column beside the targets'."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envctl.records import Records

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm, pytest.mark.engine]


def envctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **env}, timeout=1800)


def test_compat_run_on_a_slurm_target_is_recorded_with_it_and_shown_in_the_matrix(slurm_cluster, registry,
                                                                                   docker_client, tmp_path):
    import torch

    project = tmp_path / "project"
    for folder in ("images", "locks"):
        shutil.copytree(REPO / folder, project / folder)
    (project / "fleet.yaml").write_text('version: 1\ntargets:\n  cpu-pool: {on: slurm, time: "00:20:00", wait: 600}\n'
                                        '  here: {on: local}\n')
    env = {"ENVCTL_PROJECT": str(project), "ENVCTL_RECORDS": str(tmp_path / "records.db"),
           "ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_ARTIFACTS": str(tmp_path / "store")}
    built = envctl("build", "pytorch-2.13-cpu", "--json", env=env)
    assert built.returncode == 0, built.stderr[-2000:]

    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()).eval())
    model, inputs, outputs = tmp_path / "model.pt", tmp_path / "in.pt", tmp_path / "out.pt"
    scripted.save(str(model))
    sample = (torch.randn(2, 8),)
    torch.save(sample, inputs)
    torch.save([scripted(*sample)], outputs)
    added = envctl("artifacts", "add", str(model), "--inputs", str(inputs), "--outputs", str(outputs), env=env)
    assert added.returncode == 0, added.stderr

    never = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--target", "cpu-pool", env=env)
    assert never.returncode == 2 and "pytorch-2.13-cpu was never pushed" in never.stderr
    assert "Traceback" not in never.stderr

    pushed = envctl("push", "pytorch-2.13-cpu", "--registry", f"{registry}/compat", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    ref = json.loads(pushed.stdout)["ref"]
    try:
        remote = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--all-targets", "--json", env=env)
        assert remote.returncode == 0, remote.stderr[-3000:]
        cell, here = json.loads(remote.stdout)  # both targets submitted, then collected in order
        assert here["on"] == "here" and here["status"] == "ok" and here["where"]["executor"] == "local"
        assert here["image_id"] == json.loads(built.stdout)["image_id"]  # `on: local` runs the local build
        assert cell["artifact"] == "model" and cell["status"] == "ok", cell
        assert cell["on"] == "cpu-pool" and cell["image_id"] == ref and cell["device"] == "cpu"
        assert cell["where"]["executor"] == "slurm" and cell["where"]["job_id"]
        assert cell["where"]["node"] == slurm_cluster and cell["where"]["runtime"] == "docker"
        assert "slurm job" in remote.stderr  # followed through squeue

        local = envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--json", env=env)
        assert local.returncode == 0, local.stderr[-3000:]
        assert [(c["status"], c["on"], c["where"]) for c in json.loads(local.stdout)] == [("ok", None, None)]
    finally:
        docker_client.images.remove(ref, force=True)  # what the job pulled

    rows = {r["target"]: r for r in Records(tmp_path / "records.db").execute(
        'SELECT target, "where", image_id, status FROM compat')}
    assert set(rows) == {"", "cpu-pool", "here"}
    assert rows["cpu-pool"]["image_id"] == ref and json.loads(rows["cpu-pool"]["where"])["node"] == slurm_cluster
    assert rows[""]["where"] is None

    matrix = json.loads(envctl("compat", "matrix", "--json", env=env).stdout)
    assert matrix["targets"] == ["pytorch-2.13-cpu python/cpu", "pytorch-2.13-cpu on cpu-pool python/cpu",
                                 "pytorch-2.13-cpu on here python/cpu"]
    assert [c["on"] for c in matrix["columns"]] == [None, "cpu-pool", "here"]
    remote_cell = matrix["cells"]["model"]["pytorch-2.13-cpu on cpu-pool python/cpu"]
    assert remote_cell["status"] == "ok" and remote_cell["where"]["job_id"] == cell["where"]["job_id"]
    table = envctl("compat", "matrix", env=env)
    assert table.returncode == 0 and "on cpu-pool" in table.stdout, table.stdout
    page = tmp_path / "matrix.html"
    assert envctl("compat", "matrix", "--html", str(page), env=env).returncode == 0
    assert "<th>pytorch-2.13-cpu on cpu-pool python/cpu</th>" in page.read_text()

