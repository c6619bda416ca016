"""envctl setup: the lock materialized in a local prefix without Docker; export formats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envctl.catalog import Project
from envctl.lock import load_lock
from tests.faults.conftest import pip_project  # noqa: F401 - the fixture: a pip prefix made in seconds

try:
    from tests.fixtures.conda_channel import build_channel
except ImportError:  # pragma: no cover
    from fixtures.conda_channel import build_channel

REPO = Path(__file__).resolve().parent.parent


def envctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=900)


@pytest.fixture(scope="module")
def cpu_prefix(tmp_path_factory):
    base = tmp_path_factory.mktemp("setup")
    env = {"ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(base / "cache"),
           "ENVCTL_RECORDS": str(base / "records.db")}
    prefix = base / "P"
    first = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(prefix), "--json", env=env)
    yield env, prefix, first
    shutil.rmtree(base, ignore_errors=True)  # a 1 GB prefix: gone with its module, not at the session's end


@pytest.mark.slow
def test_setup_builds_a_working_prefix_and_the_probe_passes(cpu_prefix):
    env, prefix, first = cpu_prefix
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert report["changed"] is True and report["probe_ok"] is True
    version = subprocess.run([str(prefix / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "2.13.0+cpu"
    assert f'export PATH={prefix}/bin:"$PATH"' in (prefix / "envctl-activate.sh").read_text()
    history = json.loads(envctl("history", "--kind", "setup", "--json", env=env).stdout)
    assert history[0]["image_id"] == str(prefix) and history[0]["ok"]


@pytest.mark.slow
def test_second_run_is_a_noop_and_drift_is_named_then_repaired(cpu_prefix):
    env, prefix, _ = cpu_prefix
    again = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(prefix), "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
    subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "mpmath"], check=True)
    drifted = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(prefix), env=env)
    assert drifted.returncode == 1
    assert "has drifted from the lock of pytorch-2.13-cpu: pip: missing mpmath==1.3.0" in drifted.stderr
    assert "--repair" in drifted.stderr
    repaired = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(prefix), "--repair", "--no-probe", env=env)
    assert repaired.returncode == 0, repaired.stderr
    check = subprocess.run([str(prefix / "bin" / "python"), "-c", "import mpmath; print(mpmath.__version__)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "1.3.0"


def test_conda_path_installs_exactly_the_locked_conda_packages(tmp_path):
    channel = build_channel(tmp_path / "fixture")
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    spec = {"version": 1, "name": "fixture-conda", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
            "torch_source": "base", "python_source": "base", "channels": [str(channel)],
            "conda": ["footools", "pyshim"]}
    (root / "images" / "fixture-conda.yaml").write_text(yaml.safe_dump(spec))
    env = {"ENVCTL_PROJECT": str(root), "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    assert envctl("lock", "fixture-conda", env=env).returncode == 0
    prefix = tmp_path / "P"
    result = envctl("setup", "fixture-conda", "--prefix", str(prefix), "--no-probe", env=env)
    assert result.returncode == 0, result.stderr
    lock = load_lock(root / "locks" / "fixture-conda.conda-lock.yml")
    metas = sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))
    assert metas == sorted(p.filename.replace(".conda", ".json") for p in lock.conda)
    assert str(prefix) in (prefix / "bin" / "footools").read_text()  # prefix placeholder replaced
    again = envctl("setup", "fixture-conda", "--prefix", str(prefix), "--no-probe", env=env)
    assert "up to date" in again.stderr
    explicit = envctl("export", "fixture-conda", "--format", "explicit", env=env).stdout
    assert "@EXPLICIT" in explicit
    assert sum(1 for line in explicit.splitlines() if line.startswith("file://")) == len(lock.conda)


def test_export_requirements_carries_every_hash():
    project = Project(REPO)
    spec = project.resolve("pytorch-2.13-cpu")
    from envctl.export import export

    lock = load_lock(project.lock_path(spec.name))
    text = export(spec, lock, "requirements")
    lines = [ln for ln in text.splitlines() if not ln.startswith(("#", "--"))]
    assert len(lines) == len(lock.pip) and all("--hash=sha256:" in ln for ln in lines)
    env_yml = yaml.safe_load(export(spec, lock, "environment.yml").split("\n", 1)[1])
    pip = env_yml["dependencies"][-1]["pip"]
    assert pip[:2] == ["--index-url https://pypi.org/simple", "--find-links /opt/wheels"]
    assert pip[2].startswith("filelock==")


@pytest.mark.slow
def test_repair_runs_the_probe_checks_only_and_says_so(cpu_prefix):
    env, prefix, _ = cpu_prefix
    subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "uninstall", "-y", "-q", "sympy"], check=True)
    repaired = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(prefix), "--repair", env=env)
    assert repaired.returncode == 0, repaired.stderr[-3000:]
    assert f"running the probe's checks (no benchmarks) in {prefix}; the full probe: envctl smoke --python " \
           f"{prefix}/bin/python" in repaired.stderr
    assert "benchmarks on" not in repaired.stdout + repaired.stderr


def test_setup_refuses_a_foreign_non_empty_folder_unless_forced(tmp_path):
    from envctl.errors import UsageError
    from envctl.setup import check_target

    folder = tmp_path / "home-stuff"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    env = {"ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    result = envctl("setup", "pytorch-2.13-cpu", "--prefix", str(folder), env=env)
    assert result.returncode == 2
    assert "is a non-empty folder that envctl did not make" in result.stderr and "--force" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    with pytest.raises(UsageError):
        check_target(folder)
    check_target(folder, force=True)  # the user said so


@pytest.mark.parametrize("venv", [True, False])
def test_activation_script_is_idempotent_and_deactivates(tmp_path, venv):
    from envctl.activate import activation_script

    prefix = tmp_path / "P"
    script = tmp_path / "activate.sh"
    script.write_text(activation_script("pytorch-2.13-cpu", prefix, venv=venv))
    var, other = ("VIRTUAL_ENV", "CONDA_PREFIX") if venv else ("CONDA_PREFIX", "VIRTUAL_ENV")
    for shell in ("bash", "sh"):
        out = subprocess.run(
            [shell, "-c", f'. {script}; . {script}; echo "$PATH"; echo "${{{var}-unset}}"; echo "${{{other}-unset}}";'
                          f' deactivate; echo "$PATH"; echo "${{{var}-unset}}"; command -v deactivate || echo gone'],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=True).stdout.splitlines()
        assert out[0] == f"{prefix}/bin:/usr/bin:/bin"  # prepended once, though sourced twice
        assert out[1] == str(prefix) and out[2] == "unset"
        assert out[3:] == ["/usr/bin:/bin", "unset", "gone"]


@pytest.mark.parametrize("shell", ["bash", "sh"])
def test_activation_leaves_a_venv_but_never_runs_a_deactivate_program_on_path(tmp_path, shell):
    from envctl.activate import activation_script

    prefix = tmp_path / "P"
    script = tmp_path / "activate.sh"
    script.write_text(activation_script("pytorch-2.13-cpu", prefix, venv=True))
    shims = tmp_path / "shims"  # as pyenv puts one on PATH: a program that belongs to no environment
    shims.mkdir()
    (shims / "deactivate").write_text(f"#!/bin/sh\ntouch {tmp_path}/shim-ran\necho 'pyenv: deactivate: command "
                                      f"not found' >&2\nexit 127\n")
    (shims / "deactivate").chmod(0o755)
    base = f"{shims}:/usr/bin:/bin"
    out = subprocess.run([shell, "-c", f'. {script}; echo "$PATH"; deactivate; echo "$PATH"'],
                         capture_output=True, text=True, env={"PATH": base}, check=True)
    assert out.stdout.splitlines() == [f"{prefix}/bin:{base}", base] and out.stderr == ""
    assert not (tmp_path / "shim-ran").exists()
    # A venv's own deactivate (a shell function) is still called first, as venv's activate does.
    venv_first = f'deactivate() {{ echo left the venv; unset -f deactivate; }}; . {script}; echo "$PATH"'
    venv = subprocess.run([shell, "-c", venv_first], capture_output=True, text=True, env={"PATH": base}, check=True)
    assert venv.stdout.splitlines() == ["left the venv", f"{prefix}/bin:{base}"]


def test_the_setup_workflow_says_its_steps_returns_what_changed_and_records_it(pip_project, tmp_path, monkeypatch):
    from contextlib import contextmanager

    from envctl.records import Records
    from envctl.setup import plan_setup, run_setup

    for key, value in {**pip_project, "ENVCTL_RECORDS": str(tmp_path / "records.db")}.items():
        monkeypatch.setenv(key, value)
    said: list[str] = []

    @contextmanager
    def stage(title):
        said.append(title)
        yield lambda message: said.append("  " + message)

    plan = plan_setup(None, "fixture-pip", prefix=str(tmp_path / "P"), probe=True)
    assert (plan.spec.name, plan.prefix, plan.repair) == ("fixture-pip", tmp_path / "P", False)
    done = run_setup(plan, stage=stage, say=said.append)
    assert said[0] == f"setting up fixture-pip in {tmp_path / 'P'}" and "installing pip packages" in said[1]
    assert done.result.changed and done.smoke is None and done.ok  # no torch in the lock: no probe to run
    assert done.to_dict() == {"image": "fixture-pip", "prefix": str(tmp_path / "P"), "changed": True,
                              "activate": str(tmp_path / "P" / "envctl-activate.sh"), "probe_ok": None,
                              "drift_before": {"pip": done.result.before.pip_drift.describe(), "conda": "none"}}
    done.record()
    [row] = Records().runs(kind="setup")
    assert (row.image, row.image_id, row.ok, row.summary) == ("fixture-pip", str(tmp_path / "P"), True, "created")
    again = run_setup(plan)
    assert not again.result.changed and again.record() is None and len(Records().runs(kind="setup")) == 1
