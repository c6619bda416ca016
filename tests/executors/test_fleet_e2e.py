"""The fleet end to end, against the real registry and the real one-node Slurm cluster: push by
digest, verify on two targets of fleet.yaml (submitted at once, each a Slurm job running the
image pulled by digest through the node's engine), each recorded with its job, node and
runtime, and the fleet view showing both.  Needs scripts/slurm-up.sh (the Slurm executor's)."""

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
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=1800)


@pytest.fixture(scope="module")
def slurm_node() -> str:
    """The cluster's node, after scripts/slurm-up.sh (fails, never skips, when it cannot start)."""
    up = subprocess.run(["bash", str(REPO / "scripts" / "slurm-up.sh")], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        pytest.fail(f"scripts/slurm-up.sh failed: {up.stderr[-1500:]}", pytrace=False)
    nodes = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, timeout=30).stdout.split()
    assert nodes, "the cluster lists no node"
    return nodes[0]


def test_push_then_verify_on_two_slurm_targets_then_the_fleet_view(slurm_node, registry, docker_client, tmp_path):
    project = tmp_path / "project"
    for folder in ("images", "locks"):
        shutil.copytree(REPO / folder, project / folder)
    (project / "fleet.yaml").write_text(
        "version: 1\ntargets:\n"
        '  gres-gpu: {on: slurm, gres: "gpu:1", time: "00:20:00", wait: 600}\n'
        '  any-node: {on: slurm, time: "00:20:00", wait: 600}\n')
    env = {"ENVCTL_PROJECT": str(project), "ENVCTL_RECORDS": str(tmp_path / "records.db"),
           "ENVCTL_CACHE": str(tmp_path / "cache")}
    built = envctl("build", "pytorch-2.13-cpu", "--json", env=env)
    assert built.returncode == 0, built.stderr[-2000:]

    never = envctl("verify", "pytorch-2.13-cpu", "--target", "any-node", env=env)
    assert never.returncode == 2 and "push it first: envctl push pytorch-2.13-cpu --registry R" in never.stderr

    pushed = envctl("push", "pytorch-2.13-cpu", "--registry", f"{registry}/e2e", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    ref = json.loads(pushed.stdout)["ref"]

    result = envctl("verify", "pytorch-2.13-cpu", "--all-targets", "--checks-only", "--gpus", "none", "--json",
                    env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    docs = {d["target"]: d for d in json.loads(result.stdout)}
    assert set(docs) == {"gres-gpu", "any-node"} and all(d["ok"] for d in docs.values())
    for doc in docs.values():
        assert doc["where"]["executor"] == "slurm" and doc["where"]["job_id"]
        assert doc["where"]["node"] == slurm_node and doc["where"]["runtime"] == "docker"

    runs = Records(tmp_path / "records.db").runs(kind="verify")
    assert sorted(r.target for r in runs) == ["any-node", "gres-gpu"]
    assert all(r.image_id == ref and r.ok and r.where["job_id"] for r in runs)

    view = json.loads(envctl("fleet", "--json", env=env).stdout)
    assert [t["name"] for t in view["targets"]][:2] == ["gres-gpu", "any-node"]
    cells = view["cells"]["pytorch-2.13-cpu"]
    assert cells["gres-gpu"]["status"] == cells["any-node"]["status"] == "verified"
    assert cells["gres-gpu"]["node"] == slurm_node
    docker_client.images.remove(ref, force=True)  # what the jobs pulled
