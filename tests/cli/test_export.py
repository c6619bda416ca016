"""Exports stand on their own: each installs the locked set with its own consumer (issue #15)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envctl.lock import load_lock


def envctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _conda_lock_env_render(lock_path: Path) -> list[str]:
    """What conda-lock's own renderer makes of the same lockfile (`conda-lock render --kind env`)."""
    from conda_lock.conda_lock import render_lockfile_for_platform
    from conda_lock.lockfile import parse_conda_lock_file

    lines = render_lockfile_for_platform(lockfile=parse_conda_lock_file(lock_path), include_dev_dependencies=False,
                                         extras=None, kind="env", platform="linux-64")
    return yaml.safe_load("\n".join(lines))["dependencies"]


def test_environment_yml_is_conda_locks_render_plus_what_makes_it_work(project):
    result = envctl("export", "pytorch-2.13-cpu", "--format", "environment.yml")
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load(result.stdout)
    # conda's environment.yml schema: name, channels, dependencies (strings, and one {pip: [...]})
    assert set(doc) == {"name", "channels", "dependencies"} and doc["name"] == "pytorch-2.13-cpu"
    assert doc["channels"] and all(isinstance(c, str) for c in doc["channels"])
    conda = [d for d in doc["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in doc["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in conda and "pip" in conda  # conda can create the env and run its pip section
    assert "--find-links /opt/wheels" in pip and "--index-url https://pypi.org/simple" in pip

    theirs = _conda_lock_env_render(project / "locks" / "pytorch-2.13-cpu.conda-lock.yml")
    their_conda = [d for d in theirs if isinstance(d, str)]
    their_pip = next(d["pip"] for d in theirs if isinstance(d, dict))
    assert set(their_conda) <= set(conda)
    ours = [p.replace("==", " == ", 1) for p in pip if not p.startswith("--")]
    assert sorted(ours) == sorted(their_pip)  # same packages, same versions, same hashes
    assert all("--hash=sha256:" in p for p in ours)


def test_explicit_of_a_pip_only_lock_refuses(project):
    result = envctl("export", "pytorch-2.13-cpu", "--format", "explicit")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: the lock of pytorch-2.13-cpu has no conda packages (12 pip packages)")
    assert "--format requirements" in result.stderr


def test_unknown_format_lists_the_formats(project):
    result = envctl("export", "pytorch-2.13-cpu", "--format", "bogus")
    assert result.returncode == 2
    assert "hint: use one of: environment.yml, explicit, requirements" in result.stderr


@pytest.mark.slow
def test_requirements_install_alone_with_isolated_pip(project, tmp_path):
    """pip install --isolated: no pip config, no envctl; the file names /opt/wheels itself."""
    req = tmp_path / "requirements.txt"
    result = envctl("export", "pytorch-2.13-cpu", "--format", "requirements", "-o", str(req))
    assert result.returncode == 0, result.stderr
    assert "--find-links /opt/wheels" in req.read_text().splitlines()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--isolated",
         "--no-cache-dir", "--require-hashes", "-r", str(req)],
        capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    freeze = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import importlib.metadata as m; print('\\n'.join(sorted("
                             "f'{d.metadata[\"Name\"].lower().replace(\"_\", \"-\")}=={d.version}' "
                             "for d in m.distributions())))"],
                            capture_output=True, text=True, check=True).stdout.split()
    lock = load_lock(project / "locks" / "pytorch-2.13-cpu.conda-lock.yml", platform="linux-64")
    assert sorted(freeze) == sorted(f"{p.name}=={p.version}" for p in lock.pip)
