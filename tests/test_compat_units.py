"""compat without an engine: error summaries, --python by command name, JUnit, the records migration."""

from __future__ import annotations

import importlib.util
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envctl.artifacts import Artifact
from envctl.compat import Outcome, Target, matrix, python_target, render_junit
from envctl.errors import EnvctlError
from envctl.records import SCHEMA_VERSION, Records

RUNNER = Path(__file__).resolve().parents[1] / "envctl" / "probes" / "compat_runner.py"
spec = importlib.util.spec_from_file_location("compat_runner", RUNNER)
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)

INTERPRETER_ERROR = """The following operation failed in the TorchScript interpreter.
Traceback of TorchScript, serialized code (most recent call last):
  File "code/__torch__.py", line 10, in forward
    _0 = (lin).forward(torch.to(x, torch.device("cuda")), )
                       ~~~~~~~~ <--- HERE
Traceback of TorchScript, original code (most recent call last):
RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!
"""


def test_the_detail_is_the_line_after_the_op_trace():
    assert runner.summary("RuntimeError: " + INTERPRETER_ERROR) == (
        "RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!")
    assert runner.summary("RuntimeError: PytorchStreamReader failed\nmore") == "RuntimeError: PytorchStreamReader failed"


def test_python_takes_a_command_on_path(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "mypython"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(exe.parent))
    assert python_target("mypython").ref == str(exe)
    with pytest.raises(EnvctlError, match="no interpreter nosuchpython on PATH"):
        python_target("nosuchpython")


def _outcome(name: str, status: str, runtime: str) -> Outcome:
    art = Artifact(sha256=name * 8, name=name, kind="torchscript", size=1, info={}, added=0)
    return Outcome(art, Target("img", "image", "sha256:1"), status, f"{status} detail", 0.1, runtime=runtime,
                   device="cpu", message=f"{status}\nwhole message")


def test_junit_has_a_testcase_per_cell_and_a_failure_per_bad_one():
    outcomes = [_outcome(n, s, r) for r in ("python", "libtorch") for n, s in (("a", "ok"), ("b", "load-error"))]
    root = ET.fromstring(render_junit(outcomes, name="t"))
    assert len(root.findall("./testsuite/testcase")) == 4 and root.get("tests") == "4"
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == 2 and failures[0].get("message") == "load-error: load-error detail"
    assert failures[0].text == "load-error\nwhole message"


def test_records_of_schema_1_are_migrated(tmp_path):
    path = tmp_path / "r.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE artifacts (sha256 TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
            size INTEGER NOT NULL, info TEXT NOT NULL, added REAL NOT NULL);
        CREATE TABLE compat (artifact_sha256 TEXT NOT NULL, image TEXT NOT NULL, image_id TEXT NOT NULL,
            status TEXT NOT NULL, detail TEXT, checked REAL NOT NULL, PRIMARY KEY (artifact_sha256, image_id));
        INSERT INTO artifacts VALUES ('abc', 'm', 'torchscript', 1, '{}', 0);
        INSERT INTO compat VALUES ('abc', 'img', 'sha256:1', 'ok', 'fine', 1);
    """)
    db.commit()
    db.close()
    data = matrix(Records(path))
    cell = data["cells"]["m"]["img python/cpu"]
    assert cell["status"] == "ok" and cell["runtime"] == "python" and cell["device"] == "cpu"
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 4


def test_an_aoti_package_for_another_device_is_unsupported_without_loading_it(tmp_path):
    # Loading a CUDA package where the target runs the CPU can crash the loader: refuse by its metadata.
    from envctl.probes import compat_runner

    entry = {"id": "x", "kind": "aoti", "artifact": str(tmp_path / "never-read.pt2"), "inputs": None,
             "outputs": None, "compiled_for": "cuda"}
    res = compat_runner.aoti(entry, "cpu", 30)
    assert res["status"] == "unsupported" and "compiled for cuda cannot run on cpu" in res["detail"]


def test_an_aoti_package_runs_in_a_fresh_process_whose_failure_is_a_verdict(tmp_path):
    from envctl.probes import compat_runner

    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip: not a package
    res = compat_runner.aoti({"id": "x", "kind": "aoti", "artifact": str(broken), "inputs": None,
                              "outputs": None, "compiled_for": "cpu"}, "cpu", 120)
    assert res["status"] == "load-error", res
