"""#21 item 5: an artifact registered with the wrong file, inputs or outputs can be replaced
(``artifacts add --replace``, all or nothing) or removed (``artifacts remove``), through the real CLI,
a real SQLite database and real TorchScript and torch.export files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.faults.conftest import assert_one_line_error, envctl


def _listing(env) -> list:
    return json.loads(envctl("artifacts", "list", "--json", env=env).stdout)


def _store(env) -> list:
    return sorted(p.name for p in Path(env["ENVCTL_ARTIFACTS"]).iterdir())


def _add(env, *args) -> dict:
    result = envctl("artifacts", "add", *map(str, args), "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _compat(env) -> list:
    result = envctl("compat", "run", "--python", sys.executable, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _inputs(tmp_path, name: str, *shape: int) -> Path:
    import torch

    path = tmp_path / f"{name}.pt"
    torch.save((torch.randn(*shape),), path)
    return path


def test_remove_forgets_the_registration_its_files_and_its_compat_results(made_artifacts, artifact_env):
    art = _add(artifact_env, made_artifacts["pt"], "--inputs", made_artifacts["inputs"], "--python", sys.executable)
    assert _compat(artifact_env)[0]["status"] == "ok"
    result = envctl("artifacts", "remove", "double", "--json", env=artifact_env)
    assert result.returncode == 0, result.stderr
    removal = json.loads(result.stdout)
    assert removal["removed"]["sha256"] == art["sha256"]
    assert removal["compat_results"] == 1 and removal["files_left"] is False
    assert _listing(artifact_env) == [] and _store(artifact_env) == []
    assert json.loads(envctl("compat", "matrix", "--json", env=artifact_env).stdout)["cells"] == {}
    assert_one_line_error(envctl("artifacts", "remove", "double", env=artifact_env), 2, "no artifact named 'double'")
    again = _add(artifact_env, made_artifacts["pt"])  # the same file registers afresh
    assert again["added"] is True


def test_remove_says_what_it_removed(made_artifacts, artifact_env):
    _add(artifact_env, made_artifacts["pt"])
    result = envctl("artifacts", "remove", "double", env=artifact_env)
    assert result.returncode == 0 and result.stdout == ""
    assert "removed double (torchscript" in result.stderr and "0 compat results" in result.stderr


def test_replace_swaps_the_inputs_of_the_same_file_and_recomputes_its_outputs(made_artifacts, artifact_env,
                                                                            tmp_path):
    before = _add(artifact_env, made_artifacts["pt"], "--inputs", made_artifacts["inputs"],
                  "--python", sys.executable)
    _compat(artifact_env)
    wide = _inputs(tmp_path, "wide", 3, 16)
    note = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(wide), env=artifact_env)
    assert "add --replace to replace them" in note.stderr  # without --replace: unchanged, and it says how
    after = _add(artifact_env, made_artifacts["pt"], "--inputs", wide, "--python", sys.executable, "--replace")
    assert after["replaced"] is True and after["sha256"] == before["sha256"]
    assert after["info"]["hashes"] != before["info"]["hashes"]
    folder = Path(artifact_env["ENVCTL_ARTIFACTS"]) / after["sha256"]
    assert (folder / "inputs.pt").read_bytes() == wide.read_bytes()
    assert [a["name"] for a in _listing(artifact_env)] == ["double"] and _store(artifact_env) == [after["sha256"]]
    assert json.loads(envctl("compat", "matrix", "--json", env=artifact_env).stdout)["cells"] == {}
    assert _compat(artifact_env)[0]["status"] == "ok"  # the new outputs match the new inputs


def test_replace_swaps_the_file_of_a_name(made_artifacts, artifact_env):
    old = _add(artifact_env, made_artifacts["pt"], "--inputs", made_artifacts["inputs"])
    refused = envctl("artifacts", "add", str(made_artifacts["pt2"]), "--name", "double", env=artifact_env)
    assert_one_line_error(refused, 2, "exists with other content")
    assert "--replace" in refused.stderr
    new = _add(artifact_env, made_artifacts["pt2"], "--name", "double", "--inputs", made_artifacts["inputs"],
               "--replace")
    assert new["kind"] == "export" and new["sha256"] != old["sha256"]
    assert [(a["name"], a["sha256"]) for a in _listing(artifact_env)] == [("double", new["sha256"])]
    assert _store(artifact_env) == [new["sha256"]]
    assert _compat(artifact_env)[0]["status"] == "ok"


def test_a_failed_replace_leaves_the_old_artifact(made_artifacts, artifact_env, tmp_path):
    import torch

    _add(artifact_env, made_artifacts["pt"], "--inputs", made_artifacts["inputs"], "--python", sys.executable)
    before, files = _listing(artifact_env), _store(artifact_env)
    folder = Path(artifact_env["ENVCTL_ARTIFACTS"]) / before[0]["sha256"]
    stored = {p.name: p.read_bytes() for p in folder.iterdir()}
    (x,) = torch.load(made_artifacts["inputs"])
    two = tmp_path / "two.pt"
    torch.save((x, x), two)  # forward takes one tensor: the reference run fails
    for artifact in (made_artifacts["pt"], made_artifacts["pt2"]):  # the same file, and another one
        result = envctl("artifacts", "add", str(artifact), "--name", "double", "--inputs", str(two),
                        "--python", sys.executable, "--replace", env=artifact_env)
        assert_one_line_error(result, 1, "cannot compute reference outputs of double")
        assert _listing(artifact_env) == before and _store(artifact_env) == files
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == stored
    assert _compat(artifact_env)[0]["status"] == "ok"


def test_replace_will_not_take_a_file_registered_under_another_name(made_artifacts, artifact_env):
    _add(artifact_env, made_artifacts["pt"], "--name", "first")
    _add(artifact_env, made_artifacts["pt2"], "--name", "second")
    result = envctl("artifacts", "add", str(made_artifacts["pt"]), "--name", "second", "--replace", env=artifact_env)
    assert_one_line_error(result, 2, "is registered as 'first'", "cannot replace 'second'")
    assert [a["name"] for a in _listing(artifact_env)] == ["first", "second"]


def test_a_replace_the_database_refuses_restores_the_old_files(made_artifacts, artifact_env, tmp_path):
    import subprocess

    _add(artifact_env, made_artifacts["pt"], "--inputs", made_artifacts["inputs"], "--python", sys.executable)
    before, files = _listing(artifact_env), _store(artifact_env)
    folder = Path(artifact_env["ENVCTL_ARTIFACTS"]) / before[0]["sha256"]
    stored = {p.name: p.read_bytes() for p in folder.iterdir()}
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "db.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(120)"), artifact_env["ENVCTL_RECORDS"]],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # another process writes: the database is locked
        wide = _inputs(tmp_path, "wide", 3, 16)
        for artifact in (made_artifacts["pt"], made_artifacts["pt2"]):  # the same file, and another one
            result = envctl("artifacts", "add", str(artifact), "--name", "double", "--inputs", str(wide),
                            "--replace", env={**artifact_env, "ENVCTL_RECORDS_WAIT": "0"})
            assert_one_line_error(result, 1, "cannot record the replacement of double")
            assert {p.name: p.read_bytes() for p in folder.iterdir()} == stored
            assert _store(artifact_env) == files
    finally:
        holder.kill()
        holder.wait()
    assert _listing(artifact_env) == before
    assert _compat(artifact_env)[0]["status"] == "ok"
