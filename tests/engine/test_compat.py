"""envctl compat against the real CPU image: every outcome class, isolation, the gate."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .conftest import run_envctl

try:
    from tests.fixtures.artifacts import make_artifacts
except ImportError:  # pragma: no cover
    from fixtures.artifacts import make_artifacts


@pytest.fixture(scope="module")
def registry_env(tmp_path_factory, engine_env, cpu_image):
    root = tmp_path_factory.mktemp("compat")
    env = {**engine_env, "ENVCTL_RECORDS": str(root / "records.db"), "ENVCTL_ARTIFACTS": str(root / "store")}
    arts = make_artifacts(root / "made")
    for name, (path, inputs) in arts.items():
        args = ["artifacts", "add", str(path), "--name", name]
        if inputs is not None and name not in ("truncated", "altered", "gpu_only"):
            args += ["--inputs", str(inputs), "--python", sys.executable]
        if name == "altered":  # reference outputs that the model does not produce
            wrong = root / "wrong-outputs.pt"
            torch.save([torch.full((2, 4), 7.0)], wrong)
            args += ["--inputs", str(inputs), "--outputs", str(wrong)]
        if name == "gpu_only":  # no reference: it cannot run on a CPU
            args += ["--inputs", str(inputs)]
        result = run_envctl(*args, env=env)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return env


def test_adding_the_same_file_twice_is_a_noop_and_non_archives_are_refused(registry_env, tmp_path):
    listing = json.loads(run_envctl("artifacts", "list", "--json", env=registry_env).stdout)
    scripted = next(a for a in listing if a["name"] == "scripted")
    again = run_envctl("artifacts", "add", scripted["info"]["source"], "--json", env=registry_env)
    assert json.loads(again.stdout)["added"] is False
    exported = next(a for a in listing if a["name"] == "exported")
    assert exported["kind"] == "export" and exported["info"]["torch_version"] == torch.__version__
    assert exported["info"]["schema_version"] and exported["info"]["opset_version"]
    assert scripted["info"]["format_version"]  # read from the archive without loading it
    junk = tmp_path / "notes.pt"
    junk.write_text("not a model")
    bad = run_envctl("artifacts", "add", str(junk), env=registry_env)
    assert bad.returncode == 2 and "is not a TorchScript or torch.export archive" in bad.stderr


def test_compat_run_classifies_every_artifact_in_one_container(registry_env):
    result = run_envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--json", env=registry_env)
    assert result.returncode == 1, result.stderr  # cells that are not ok fail the run, as in its JUnit
    status = {r["artifact"]: r for r in json.loads(result.stdout)}
    for name in ("scripted", "traced", "method", "bf16", "exported"):
        assert status[name]["status"] == "ok", status[name]
    assert status["truncated"]["status"] == "load-error"
    # The informative line, not "The following operation failed in the TorchScript interpreter."
    assert status["gpu_only"]["status"] == "run-error" and "CUDA" in status["gpu_only"]["detail"]
    assert "TorchScript interpreter" in status["gpu_only"]["message"] and "\n" not in status["gpu_only"]["detail"]
    assert {r["device"] for r in status.values()} == {"cpu"}  # auto on a host without GPUs
    assert status["altered"]["status"] == "mismatch" and "max abs error" in status["altered"]["detail"]
    # The hog is killed for memory while loading; the others' results above are intact.
    assert status["hog"]["status"] == "crash" and "SIGKILL" in status["hog"]["detail"]
    matrix = json.loads(run_envctl("compat", "matrix", "--json", env=registry_env).stdout)
    cell = matrix["cells"]["scripted"]["pytorch-2.13-cpu python/cpu"]
    assert cell["status"] == "ok" and cell["device"] == "cpu" and cell["runtime"] == "python"


def test_matrix_html_is_self_contained(registry_env, tmp_path):
    page = tmp_path / "matrix.html"
    assert run_envctl("compat", "matrix", "--html", str(page), env=registry_env).returncode == 0
    text = page.read_text()
    assert "<table>" in text and "pytorch-2.13-cpu" in text and "http" not in text.split("<body>")[1]


def test_gate_passes_without_regressions_and_fails_on_a_planted_one(registry_env, tmp_path):
    ok_names = ["--artifact", "scripted", "--artifact", "exported", "--artifact", "bf16"]
    same = run_envctl("compat", "check", "--from", "pytorch-2.13-cpu", "--to", f"python:{sys.executable}",
                      *ok_names, env=registry_env)
    assert same.returncode == 0, same.stdout + same.stderr
    # Planted regression: an interpreter whose torch cannot load torch.export archives.
    folder = tmp_path / "bin"  # a folder the sandbox user may enter
    broken = folder / "python-broken-export"
    (folder / "site").mkdir(parents=True)
    broken.write_text(f"#!/bin/sh\nPYTHONPATH={folder / 'site'} exec {sys.executable} \"$@\"\n")
    broken.chmod(0o755)
    (folder / "site" / "sitecustomize.py").write_text(
        "import torch.export\n"
        "def _gone(*a, **k):\n    raise RuntimeError('torch.export.load is not supported in this build')\n"
        "torch.export.load = _gone\n")
    regressed = run_envctl("compat", "check", "--from", "pytorch-2.13-cpu", "--to", f"python:{broken}",
                           *ok_names, "--json", env=registry_env)
    assert regressed.returncode == 1
    report = json.loads(regressed.stdout)
    assert [r["artifact"] for r in report["regressions"]] == ["exported"]
    assert report["regressions"][0]["to"] == "load-error"


@pytest.fixture(scope="module")
def torch_2_14(tmp_path_factory) -> Iterator[Path]:
    """A second environment with another torch: a venv with torch 2.14.1 (from the local index).
    It is a CUDA build (5.5 GB installed): removed once the module is done, not at the session's
    end, so that it does not add to the suite's peak disk use."""
    import shutil
    import subprocess

    venv = tmp_path_factory.mktemp("torch-2.14") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    try:
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir",
                               "torch==2.14.1"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        yield venv / "bin" / "python"
    finally:
        shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.slow
def test_cross_version_matrix_shows_both_torches(registry_env, torch_2_14):
    import subprocess

    version = subprocess.run([str(torch_2_14), "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("2.14.1")
    names = ["scripted", "traced", "method", "bf16", "exported", "altered", "truncated"]
    label = f"python:{torch_2_14}"
    selection = [arg for n in names for arg in ("--artifact", n)]
    run = run_envctl("compat", "run", "--image", "pytorch-2.13-cpu", "--python", str(torch_2_14), *selection,
                     "--json", env=registry_env)
    assert run.returncode == 1, run.stderr  # truncated and altered are not ok
    newer = {r["artifact"]: r["status"] for r in json.loads(run.stdout) if r["target"].startswith("python:")}
    # Artifacts saved by torch 2.13 load and agree under 2.14.1 (backward compatibility);
    # the damaged and the altered ones fail there as they do under 2.13.
    for name in ("scripted", "traced", "method", "bf16", "exported"):
        assert newer[name] == "ok", (name, newer[name])
    assert newer["truncated"] == "load-error" and newer["altered"] == "mismatch"
    matrix = json.loads(run_envctl("compat", "matrix", "--json", env=registry_env).stdout)
    assert {"pytorch-2.13-cpu python/cpu", f"{label} python/cpu"} <= set(matrix["targets"])
    for name in names:
        assert matrix["cells"][name][f"{label} python/cpu"]["status"] == newer[name]
    gate = run_envctl("compat", "check", "--from", "pytorch-2.13-cpu", "--to", label, *selection, "--json",
                      env=registry_env)
    assert gate.returncode == 0, gate.stdout  # nothing that works under 2.13 breaks under 2.14.1
    assert json.loads(gate.stdout)["regressions"] == []
