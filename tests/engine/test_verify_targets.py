"""verify on fleet targets: several targets of fleet.yaml submitted at once and each recorded with
its target and where it ran; a remote-style executor runs the image pulled from the real registry
by the digest `envctl push` recorded, with no local image of it needed."""

from __future__ import annotations

import json
import shutil

import pytest

from envctl.catalog import Project
from envctl.errors import EnvctlError
from envctl.executors import LocalEngine
from envctl.records import Records
from envctl.verify import plan_verify, run_verifications

from .conftest import REPO, run_envctl


class RegistryNode(LocalEngine):
    """A stand-in for a remote node: it has no copy of the image and pulls the reference by
    digest from the registry, as a Slurm job's ``docker run`` does, then runs it on this engine."""

    kind = "registry-node"

    def wait(self, submission, *, timeout=None, progress=lambda _m: None):
        for task in submission.tasks:
            self.engine.client.images.pull(task.image)
        return super().wait(submission, timeout=timeout, progress=progress)

    def where(self) -> dict[str, str]:
        return {**super().where(), "executor": self.kind, "node": "node-a", "runtime": "docker", "job_id": "1"}


@pytest.fixture
def fleet_project(tmp_path, engine_env):
    root = tmp_path / "project"
    for folder in ("images", "locks"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "fleet.yaml").write_text("version: 1\ntargets:\n  here: {on: local}\n  there: {on: local}\n")
    return root


def test_all_targets_run_and_each_is_recorded_with_its_target(cpu_image, engine_env, fleet_project, tmp_path):
    env = {**engine_env, "ENVCTL_PROJECT": str(fleet_project), "ENVCTL_RECORDS": str(tmp_path / "r.db")}
    result = run_envctl("verify", "pytorch-2.13-cpu", "--all-targets", "--checks-only", "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    docs = json.loads(result.stdout)
    assert [d["target"] for d in docs] == ["here", "there"] and all(d["ok"] for d in docs)
    runs = Records(tmp_path / "r.db").runs(kind="verify")
    assert sorted(r.target for r in runs) == ["here", "there"]
    assert all(r.where["executor"] == "local" and r.ok and r.image_id == cpu_image["image_id"] for r in runs)
    one = run_envctl("verify", "pytorch-2.13-cpu", "--target", "there", "--checks-only", env=env)
    assert one.returncode == 0 and "checks: pytorch-2.13-cpu on there" in one.stdout
    unknown = run_envctl("verify", "pytorch-2.13-cpu", "--target", "nowhere", env=env)
    assert unknown.returncode == 2 and "--target nowhere: no such target in" in unknown.stderr
    assert "targets: here, there" in unknown.stderr


def test_a_remote_target_runs_the_recorded_push_by_digest(cpu_image, engine_env, registry, tmp_path, monkeypatch,
                                                          docker_client):
    records = tmp_path / "r.db"
    monkeypatch.setenv("ENVCTL_RECORDS", str(records))
    monkeypatch.setenv("ENVCTL_CACHE", engine_env["ENVCTL_CACHE"])
    project = Project(REPO)
    with pytest.raises(EnvctlError) as never:
        plan_verify(project, "pytorch-2.13-cpu", executor=RegistryNode(), target="node-a")
    assert "pytorch-2.13-cpu was never pushed" in str(never.value)
    assert never.value.hint.startswith("push it first: envctl push pytorch-2.13-cpu --registry R")
    Records(records).add_push(image="pytorch-2.13-cpu", ref=f"{registry}/old/pytorch-2.13-cpu@sha256:" + "0" * 64,
                              registry=f"{registry}/old", image_id="sha256:x", lock_hash="sha256:another-lock")
    with pytest.raises(EnvctlError, match="was last pushed from another lock"):
        plan_verify(project, "pytorch-2.13-cpu", executor=RegistryNode(), target="node-a")
    pushed = run_envctl("push", "pytorch-2.13-cpu", "--registry", f"{registry}/targets", "--json",
                        env={**engine_env, "ENVCTL_RECORDS": str(records)})
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    ref = json.loads(pushed.stdout)["ref"]
    plan = plan_verify(project, "pytorch-2.13-cpu", executor=RegistryNode(), target="node-a", checks_only=True)
    assert plan.image_id == ref and plan.config["expect"]["env_tree"]  # the labels came from the registry
    [v] = run_verifications([plan])
    assert v.ok, v.error or [c for c in v.report.checks if c["status"] == "fail"]
    v.record()
    [run] = Records(records).runs(kind="verify")
    assert run.target == "node-a" and run.image_id == ref and run.ok
    assert run.where == {"executor": "registry-node", "node": "node-a", "runtime": "docker", "job_id": "1",
                         "host": run.where["host"]}
    docker_client.images.remove(ref, force=True)

