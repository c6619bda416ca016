"""fleet.yaml, read strictly: each bad key is one line naming the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from envctl.catalog import Project
from envctl.errors import SpecError, UsageError
from envctl.executors import LocalEngine
from envctl.fleet import executor_for, load_fleet, select_targets, target_from_options

GOOD = """version: 1
targets:
  h100: {on: slurm, partition: gpu, gres: "gpu:h100:1", time: "00:20:00", wait: 120}
  gke: {on: kubernetes, context: gke, gpu_product: NVIDIA-L4, gpus: 1}
  here: {on: local}
"""


def _project(tmp_path: Path, text: str) -> Project:
    (tmp_path / "fleet.yaml").write_text(text)
    return Project(tmp_path)


def test_a_fleet_reads_into_targets_with_executor_options(tmp_path):
    fleet = load_fleet(_project(tmp_path, GOOD))
    assert list(fleet.targets) == ["h100", "gke", "here"]
    h100 = fleet.targets["h100"]
    assert h100.on == "slurm" and dict(h100.options) == {"partition": "gpu", "gres": "gpu:h100:1",
                                                         "time": "00:20:00", "wait_s": 120.0}
    assert dict(fleet.targets["gke"].options) == {"context": "gke", "gpu_product": "NVIDIA-L4", "gpus": 1}
    assert isinstance(executor_for(fleet.targets["here"]), LocalEngine)
    chosen = select_targets(Project(tmp_path), on=None, options={}, names=["here", "h100", "here"])
    assert [t.name for t in chosen] == ["here", "h100"]


@pytest.mark.parametrize("text, where", [
    ("version: 2\ntargets: {a: {on: local}}\n", "version: 2 is not a fleet format"),
    ("version: 1\ntargets: {a: {on: slurm, partitoin: gpu}}\n", "targets.a.partitoin: unknown key; allowed keys: on,"),
    ("version: 1\ntargets: {a: {on: pbs}}\n", "targets.a.on: 'pbs' is not allowed; allowed: local, slurm, kubernetes"),
    ("version: 1\ntargets: {a: {partition: gpu}}\n", "targets.a.on: required key is missing"),
    ("version: 1\ntargets: {a: {on: slurm, gres: 'gpu h100'}}\n", "targets.a.gres: 'gpu h100' is not a GRES"),
    ("version: 1\ntargets: {a: {on: slurm, time: soon}}\n", "targets.a.time: 'soon' is not a Slurm time"),
    ("version: 1\ntargets: {a: {on: slurm, wait: -1}}\n", "targets.a.wait: expected seconds"),
    ("version: 1\ntargets: {a: {on: local, gres: 'gpu:1'}}\n", "targets.a.gres: unknown key; allowed keys: on"),
    ("version: 1\ntargets: {A!: {on: local}}\n", "targets.A!: not a target name"),
    ("version: 1\ntargets: {}\nextra: 1\n", "targets: expected a mapping of target names"),
    ("version: 1\ntargets: {a: {on: local}}\nextra: 1\n", "extra: unknown key; allowed keys: version, targets"),
    ("version: 1\ntargets: {a: {on: local}, a: {on: slurm}}\n", "duplicate key 'a'"),
])
def test_each_bad_key_is_one_line_naming_file_and_key(tmp_path, text, where):
    with pytest.raises(SpecError) as exc:
        load_fleet(_project(tmp_path, text))
    assert str(exc.value).startswith(str(tmp_path / "fleet.yaml") + ": ") and where in str(exc.value)
    assert "\n" not in str(exc.value) and exc.value.exit_code == 2


def test_command_line_targets_are_checked_like_the_file(tmp_path):
    target = target_from_options("slurm", {"partition": "gpu", "gres": "gpu:a100:2", "wait": 30.0, "time": None})
    assert target.name == "slurm" and dict(target.options) == {"partition": "gpu", "gres": "gpu:a100:2",
                                                              "wait_s": 30.0}
    with pytest.raises(UsageError, match=r"^--time: 'tomorrow' is not a Slurm time"):
        target_from_options("slurm", {"time": "tomorrow"})
    with pytest.raises(UsageError, match="--partition does not apply to --on local"):
        target_from_options("local", {"partition": "gpu"})
    with pytest.raises(UsageError, match="no fleet.yaml in"):
        select_targets(Project(tmp_path), on=None, options={}, all_targets=True)
    with pytest.raises(UsageError, match="--gres needs --on slurm"):
        select_targets(Project(tmp_path), on=None, options={"gres": "gpu:1"})


def test_a_dry_run_with_a_registry_pushes_nothing(tmp_path, monkeypatch):
    """--dry-run --registry R plans the last push of the lock; with none, one line says to push
    first, and nothing was pushed (the records hold no push)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "ENVCTL_RECORDS": str(tmp_path / "records.db"), "NO_COLOR": "1",
           "ENVCTL_PROJECT": str(repo)}
    result = subprocess.run([sys.executable, "-m", "envctl", "verify", "pytorch-2.13-cpu", "--on", "kubernetes",
                             "--registry", "127.0.0.1:9/none", "--dry-run"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "a dry run pushes nothing: envctl push pytorch-2.13-cpu --registry 127.0.0.1:9/none" in result.stderr
    from envctl.records import Records

    assert Records(tmp_path / "records.db").last_push("pytorch-2.13-cpu") is None


@pytest.mark.parametrize("ref", ["--privileged@sha256:" + "0" * 64, "reg.io/ml/x@sha256:0; touch /tmp/pwned",
                                 "-evil.io/ml/x@sha256:" + "0" * 64])
def test_a_recorded_push_that_is_no_reference_by_digest_never_reaches_a_job(ref, tmp_path):
    """The records are untrusted too: a push row's ref becomes a job's command line."""
    import os
    import subprocess
    import sys

    from envctl.lock import load_lock
    from envctl.records import Records

    repo = Path(__file__).resolve().parent.parent
    lock = load_lock(repo / "locks" / "pytorch-2.13-cpu.conda-lock.yml")
    Records(tmp_path / "records.db").add_push(image="pytorch-2.13-cpu", ref=ref, registry="reg.io/ml",
                                              image_id="sha256:" + "1" * 64, lock_hash=lock.lock_hash)
    env = {**os.environ, "ENVCTL_RECORDS": str(tmp_path / "records.db"), "NO_COLOR": "1", "ENVCTL_PROJECT": str(repo)}
    result = subprocess.run([sys.executable, "-m", "envctl", "verify", "pytorch-2.13-cpu", "--on", "kubernetes",
                             "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "not HOST/REPO@sha256:DIGEST" in result.stderr and "privileged" not in result.stdout
