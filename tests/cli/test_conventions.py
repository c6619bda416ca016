"""Exit codes, --json errors, -h, completion, smoke's interpreter, lock --all (issue #15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

try:
    from tests.fixtures.conda_channel import build_channel
except ImportError:  # pragma: no cover
    from fixtures.conda_channel import build_channel


def envctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", **(env or {})}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=full,
                          timeout=120)


@pytest.mark.parametrize("args, first_line", [
    (["history", "--kind", "bogus"], "error: --kind bogus is not a kind of run"),
    (["lock", "pytorch-2.13-cpu", "--upgrade", "nosuchpkg"],
     "error: cannot upgrade nosuchpkg: not in the lock of pytorch-2.13-cpu"),
    (["smoke", "--python", "/nonexistent"], "error: --python /nonexistent: no such file"),
    (["smoke", "--python", "no-such-python-here"], "error: --python no-such-python-here: no such command on PATH"),
    (["lock", "--check", "--upgrade", "numpy", "pytorch-2.13-cpu"],
     "error: --check only reads the locks: it cannot take --upgrade"),
    (["export", "pytorch-2.13-cpu", "--format", "bogus"], "error: --format bogus is not a format"),
    (["lock", "--check", "--upgrade-all", "pytorch-2.13-cpu"],
     "error: --check only reads the locks: it cannot take --upgrade-all"),
    (["lock", "pytorch-2.13-cpu", "--upgrade-all", "--upgrade", "numpy"],
     "error: --upgrade-all already re-resolves every package"),
])
def test_bad_input_exits_2_with_one_line(project, args, first_line):
    result = envctl(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-2] == first_line and lines[-1].startswith("hint: ")
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_format_hint_lists_the_formats(project):
    assert "hint: use one of: environment.yml, explicit, requirements" in \
        envctl("export", "pytorch-2.13-cpu", "--format", "bogus").stderr


@pytest.mark.parametrize("args, code", [
    (["show", "pytorch-2.8-cu118", "--json"], 2),
    (["history", "--kind", "bogus", "--json"], 2),
    (["lock", "--check", "--upgrade", "numpy", "pytorch-2.13-cpu", "--json"], 2),
])
def test_json_errors_are_a_json_object_on_stdout(project, args, code):
    result = envctl(*args)
    assert result.returncode == code
    doc = json.loads(result.stdout)
    assert set(doc) == {"error", "hint", "exit_code"} and doc["exit_code"] == code
    assert result.stderr.splitlines()[0] == "error: " + doc["error"]


def test_catalog_json_with_a_broken_spec_stays_one_document(project):
    (project / "images" / "pytorch-2.7-cu118.yaml").write_text("version: 1\nname: [unclosed\n")
    result = envctl("catalog", "--json")
    assert result.returncode == 2
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows if r["error"]] == ["pytorch-2.7-cu118"]


def test_short_help_and_completion():
    for args in (["-h"], ["lock", "-h"], ["catalog", "-h"]):
        result = envctl(*args)
        assert result.returncode == 0 and "Usage: " in result.stdout, result.stderr
    # typer otherwise detects the shell from the process's ancestors (shellingham) and ignores the
    # argument: under a CI whose ancestors hold no shell that fails; this is typer's own test switch
    shown = envctl("--show-completion", "bash",
                   env={"SHELL": "/bin/bash", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert shown.returncode == 0 and "complete " in shown.stdout and "_ENVCTL_COMPLETE" in shown.stdout.upper()
    assert "--install-completion" in envctl("--help").stdout


def test_smoke_defaults_to_python3_on_path_and_says_why_it_cannot_work(tmp_path):
    # A python3 on PATH without torch: named, with the reason, before any probe runs.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.base_prefix + "/bin/python3")
    result = envctl("smoke", env={"PATH": f"{bindir}:/usr/bin:/bin"})
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {bindir}/python3 (python3 on PATH, Python ")
    assert first.endswith("cannot import torch, which the probe needs")


@pytest.mark.torch
def test_smoke_takes_a_command_on_path(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "torchpython"  # this venv's python, which has torch
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    result = envctl("smoke", "--python", "torchpython", "--json", "--gpus", "none",
                    env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert f"probing {bindir}/torchpython (torchpython on PATH, Python " in result.stderr
    assert json.loads(result.stdout)["env"]["torch"]["version"].startswith("2.")


def test_lock_all_groups_failures_and_counts(tmp_path):
    channel = build_channel(tmp_path / "fixture")
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    good = {"version": 1, "name": "fixture-conda", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
            "torch_source": "base", "python_source": "base", "channels": [str(channel)], "conda": ["footools"]}
    (root / "images" / "fixture-conda.yaml").write_text(yaml.safe_dump(good))
    for n in ("a", "b", "c"):  # one dead channel, three images
        bad = good | {"name": f"fixture-dead-{n}", "channels": ["http://127.0.0.1:9/conda"]}
        (root / "images" / f"fixture-dead-{n}.yaml").write_text(yaml.safe_dump(bad))
    env = {"ENVCTL_PROJECT": str(root), "ENVCTL_CACHE": str(tmp_path / "cache")}
    first = envctl("lock", "--all", env=env)
    assert first.returncode == 1
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, first.stderr
    assert errors[0].startswith("error: 3 images (fixture-dead-a, fixture-dead-b, fixture-dead-c): ")
    assert "unreachable" in errors[0]
    assert first.stderr.splitlines()[-1] == "1 locked, 0 unchanged, 3 failed"
    again = envctl("lock", "--all", env=env)
    assert again.stderr.splitlines()[-1] == "0 locked, 1 unchanged, 3 failed"
