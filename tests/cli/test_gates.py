"""The commands CI uses as gates agree: 0 all ok, 1 a check or cell failed or regressed, 2 bad input.

verify, smoke, compat run, compat check here with real interpreters and artifacts; verify's
failing checks in a real image are in tests/engine/test_verify.py, bench compare's in
tests/test_bench.py (issue #21).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest


def envctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80", **(env or {})}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=full,
                          timeout=300)


def _help(*command: str) -> str:
    text = envctl(*command, "-h").stdout
    return " ".join(text.replace("│", " ").split())


@pytest.fixture
def registry(tmp_path) -> dict:
    """Two TorchScript models registered: one with its true reference outputs, one with wrong ones."""
    import torch

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 + 1

    class Halve(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / 2

    env = {"ENVCTL_RECORDS": str(tmp_path / "records.db"), "ENVCTL_ARTIFACTS": str(tmp_path / "store")}
    inputs, wrong = tmp_path / "inputs.pt", tmp_path / "wrong.pt"
    torch.save((torch.ones(2, 4),), inputs)
    torch.save([torch.full((2, 4), 7.0)], wrong)
    torch.jit.script(Double()).save(tmp_path / "double.pt")
    torch.jit.script(Halve()).save(tmp_path / "halve.pt")
    for args in (["double.pt", "--python", sys.executable], ["halve.pt", "--outputs", str(wrong)]):
        added = envctl("artifacts", "add", str(tmp_path / args[0]), "--inputs", str(inputs), *args[1:], env=env)
        assert added.returncode == 0, added.stderr
    return env


@pytest.mark.torch
def test_compat_run_exits_1_on_the_mismatch_its_junit_counts(registry, tmp_path):
    junit = tmp_path / "compat.xml"
    result = envctl("compat", "run", "--python", sys.executable, "--junit", str(junit), env=registry)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mismatch    halve under python:" in result.stdout and "max abs error" in result.stdout
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert result.stderr.splitlines()[-1] == "1 of 2 cells not ok"
    ok = envctl("compat", "run", "--python", sys.executable, "--artifact", "double", "--json", env=registry)
    assert ok.returncode == 0, ok.stderr
    assert [r["status"] for r in json.loads(ok.stdout)] == ["ok"]
    bad = envctl("compat", "run", "--python", sys.executable, "--device", "tpu", env=registry)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --device tpu")
    assert "Exit 0 when every cell is ok, 1 when any is not" in _help("compat", "run")


@pytest.mark.torch
def test_compat_check_exits_1_on_a_regression_only(registry, tmp_path):
    # An interpreter whose torch cannot load TorchScript archives: a planted regression.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import torch.jit\n"
        "def _gone(*a, **k):\n    raise RuntimeError('torch.jit.load is not supported in this build')\n"
        "torch.jit.load = _gone\n")
    broken = tmp_path / "bin" / "python-broken"  # in a folder the sandbox user may enter
    broken.parent.mkdir(mode=0o755)
    broken.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    broken.chmod(0o755)
    same = envctl("compat", "check", "--from", f"python:{sys.executable}", "--to", f"python:{sys.executable}",
                  env=registry)
    assert same.returncode == 0, same.stdout + same.stderr  # halve is not ok under --from: no baseline
    regressed = envctl("compat", "check", "--from", f"python:{sys.executable}", "--to", f"python:{broken}",
                       "--json", env=registry)
    assert regressed.returncode == 1, regressed.stderr
    assert [r["artifact"] for r in json.loads(regressed.stdout)["regressions"]] == ["double"]
    empty = envctl("compat", "check", "--from", f"python:{sys.executable}", "--to", f"python:{broken}",
                   env={"ENVCTL_RECORDS": str(tmp_path / "empty.db"), "ENVCTL_ARTIFACTS": str(tmp_path / "none")})
    assert empty.returncode == 2 and empty.stderr.startswith("error: no artifacts registered")
    assert "Exit 0 when nothing regresses" in _help("compat", "check")


@pytest.mark.torch
@pytest.mark.parametrize("python", ["/nonexistent/python", "nosuchpython"])
def test_an_interpreter_that_is_not_there_is_bad_input_for_every_gate(registry, python):
    # The caller's mistake (2), not a cell or check that failed (1): compat run and check said 1.
    for argv in (["compat", "run", "--python", python], ["smoke", "--python", python],
                 ["compat", "check", "--from", f"python:{python}", "--to", f"python:{sys.executable}"],
                 ["compat", "check", "--from", f"python:{sys.executable}", "--to", f"python:{python}"]):
        result = envctl(*argv, env=registry)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stderr.startswith("error: ") and python in result.stderr.splitlines()[0], result.stderr


@pytest.mark.torch
def test_smoke_exits_1_on_a_failed_check(project):
    # The test interpreter holds packages the lock of pytorch-2.13-cpu does not (pytest, at least).
    drift = envctl("smoke", "--python", sys.executable, "--image", "pytorch-2.13-cpu", "--checks-only",
                   "--gpus", "none", "--json")
    assert drift.returncode == 1, drift.stderr
    failed = [c["name"] for c in json.loads(drift.stdout)["checks"] if c["status"] == "fail"]
    assert "pip drift" in failed
    clean = envctl("smoke", "--python", sys.executable, "--checks-only", "--gpus", "none", "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["ok"] is True
    assert envctl("smoke", "--python", sys.executable, "--gpus", "several").returncode == 2
    assert "Exit 0 when every check passes, 1 when one fails, 2 on bad input." in _help("smoke")


def test_verify_states_its_exit_codes_and_refuses_bad_input_with_2(project):
    assert "Exit 0 when every check passes, 1 when one fails, 2 on bad input." in _help("verify")
    result = envctl("verify", "pytorch-2.8-cu118")  # never released: answered before any engine
    assert result.returncode == 2 and result.stderr.startswith("error: torch 2.8 was never released")
