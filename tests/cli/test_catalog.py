"""The CLI as users run it: a real subprocess, exact exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def envctl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def test_version():
    from envctl import __version__

    result = envctl("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"envctl {__version__}"


def test_catalog_table_and_json(project):
    table = envctl("catalog")
    assert table.returncode == 0, table.stderr
    assert "pytorch-2.13-cpu" in table.stdout and "pytorch-2.8-cu126" in table.stdout
    rows = json.loads(envctl("catalog", "--json").stdout)
    names = [r["name"] for r in rows]
    assert names.index("pytorch-2.3-cu118") < names.index("pytorch-2.13-cpu")  # sorted by torch version
    row = next(r for r in rows if r["name"] == "pytorch-2.7-cu118")
    assert (row["torch"], row["cuda"], row["python"]) == ("2.7.1", "cu118", "3.11")
    assert row["lock"] == "not locked"  # its index cannot be reached here: no lock is invented
    assert next(r for r in rows if r["name"] == "pytorch-2.13-cpu")["lock"] == "locked"


def test_never_released_combination_answers_with_neighbours(project):
    result = envctl("show", "pytorch-2.8-cu118")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: torch 2.8 was never released for CUDA 11.8; torch 2.8 has cpu, cu126")
    # each neighbour says whether it works here (which depends on what this machine reaches)
    assert "pytorch-2.8-cu126 (same torch, other CUDA; " in lines[0]
    assert "pytorch-2.7-cu118 (same CUDA, older torch; " in lines[0]
    first = lines[0].split("nearest real images: ", 1)[1].split(" (", 1)[0]
    assert lines[1].startswith("hint: try: envctl ") and lines[1].endswith(f" {first}")
    assert "Traceback" not in result.stderr


def test_show_json_carries_matrix_facts(project):
    info = json.loads(envctl("show", "pytorch-2.11-cu128", "--json").stdout)
    assert info["matrix"]["status"] == "stable"
    assert info["matrix"]["cudnn"] == "9.17.1.4"
    assert "7.0" not in info["matrix"]["arch_list"]
    assert info["matrix"]["min_driver"] == "525.60.13"
    assert info["pip_requirements"] == ["torch==2.11.0", "torchvision==0.26.*"]


def test_bad_spec_is_one_line_exit_2(project):
    path = project / "images" / "pytorch-2.3-cu118.yaml"
    data = yaml.safe_load(path.read_text())
    data["python"] = "3.13"
    path.write_text(yaml.safe_dump(data))
    for args in (["show", "pytorch-2.3-cu118"], ["catalog"]):
        result = envctl(*args)
        assert result.returncode == 2
        first = result.stderr.splitlines()[0]
        assert first.endswith("pytorch-2.3-cu118.yaml: python: torch 2.3 supports Python 3.8 - 3.12, not 3.13")
        assert "Traceback" not in result.stderr


def test_unknown_name_and_missing_project(project, tmp_path):
    unknown = envctl("show", "team-vision")
    assert unknown.returncode == 2
    assert "no image named 'team-vision'" in unknown.stderr and "pytorch-2.13-cpu" in unknown.stderr
    for bad in ("../images/pytorch-2.13-cpu", "/etc/passwd"):
        result = envctl("show", bad)
        assert result.returncode == 2 and "is not an image name" in result.stderr


def test_missing_project_is_bad_input(tmp_path, monkeypatch):
    # Where envctl runs (or ENVCTL_PROJECT points) is input: exit 2, as the README says of bad input.
    monkeypatch.delenv("ENVCTL_PROJECT", raising=False)
    result = envctl("show", "pytorch-2.8-cu126", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no envctl project found from {tmp_path.resolve()}")
    assert "Traceback" not in result.stderr
    monkeypatch.setenv("ENVCTL_PROJECT", str(tmp_path))
    result = envctl("catalog", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: ENVCTL_PROJECT={tmp_path} has no images/ folder")


def test_real_combination_with_a_flavour_missing_from_catalog(project):
    # pytorch-X.Y-VARIANT alone is derived from the matrix (tests/cli/test_names.py); a flavour is a
    # hand-written spec's, so a missing one is still an error
    result = envctl("show", "pytorch-2.9-cu128-dev")
    assert result.returncode == 2
    assert "real PyTorch combination (stable) but the catalog has no images/pytorch-2.9-cu128-dev.yaml" in result.stderr


import pytest  # noqa: E402


@pytest.mark.parametrize("args", [
    ["show"], ["lock"], ["build"], ["build", "--dry-run"], ["verify"], ["setup"], ["export"], ["doctor"],
    ["compat", "run", "--image"], ["smoke", "--image"],
])
def test_every_image_command_answers_an_impossible_name_before_docker(project, args, monkeypatch):
    # An engine that cannot be reached: the answer must come from the matrix, not from a timeout.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    result = envctl(*args, "pytorch-2.8-cu118")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: torch 2.8 was never released for CUDA 11.8")
    assert "not reachable" not in result.stderr and "Traceback" not in result.stderr
