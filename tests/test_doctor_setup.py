"""doctor checks the Docker-free path too, and says an engine is down in one line (issue #15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from envctl.catalog import Project
from envctl.doctor import HostFacts, SetupFacts, engine_cause, evaluate, evaluate_setup

REPO = Path(__file__).resolve().parent.parent


def test_engine_cause_is_a_few_words_not_the_nest():
    nested = ("Docker engine at unix:///x.sock not reachable: Error while fetching server API version: "
              "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))")
    os.environ["DOCKER_HOST"] = "unix:///x.sock"
    try:
        assert engine_cause(nested) == "no engine socket at unix:///x.sock"
        assert engine_cause("... ConnectionRefusedError(111, 'Connection refused')") == \
            "connection refused at unix:///x.sock"
    finally:
        del os.environ["DOCKER_HOST"]


def test_missing_engine_blocks_build_not_setup():
    spec = Project(REPO).resolve("pytorch-2.13-cpu")
    facts = HostFacts(engine_error="no engine socket at unix:///x.sock", free_bytes=10**11)
    build = next(f for f in evaluate(facts, spec) if f.check == "docker")
    setup = next(f for f in evaluate(facts, spec, use="setup") if f.check == "docker")
    assert build.blocking and not setup.blocking and setup.status == "warn"
    assert build.message.count("not reachable") == 1
    assert build.message == ("Docker engine not reachable: no engine socket at unix:///x.sock; start it "
                             "(scripts/engine-up.sh or systemctl start docker), or use envctl setup, which needs no engine")


def test_setup_checks_python_compiler_disk_and_sources():
    spec = Project(REPO).resolve("pytorch-2.13-cpu")
    facts = SetupFacts(python=None, compiler=None, free={"cache /c": 10**9, "prefix /p": 10**11},
                       sources=[("find-links folder", "/opt/wheels", None),
                                ("package index", "https://pypi.org/simple", "package index https://pypi.org/simple "
                                 "is unreachable: host name not resolved (DNS)")])
    found = evaluate_setup(facts, spec, use="setup")
    by = {(f.check, f.status) for f in found}
    assert ("setup python", "fail") in by and ("c++ compiler", "warn") in by
    assert [f.status for f in found if f.check == "setup disk"] == ["fail", "ok"]
    assert [f.status for f in found if f.check == "sources"] == ["ok", "fail"]
    assert {f.check for f in found if f.blocking} == {"setup python", "setup disk", "sources"}
    assert not any(f.blocking for f in evaluate_setup(facts, spec, use="build"))  # build path: warnings only


def test_doctor_for_setup_passes_without_an_engine(project):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    run = [sys.executable, "-m", "envctl", "doctor", "pytorch-2.13-cpu", "--json"]
    build = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)
    setup = subprocess.run(run + ["--for", "setup"], capture_output=True, text=True, env=env, timeout=120)
    assert build.returncode == 1 and setup.returncode == 0, setup.stdout
    checks = {f["check"] for f in json.loads(setup.stdout)["findings"]}
    assert {"setup python", "c++ compiler", "setup disk", "sources"} <= checks
    bogus = subprocess.run(run + ["--for", "bogus"], capture_output=True, text=True, env=env, timeout=60)
    assert bogus.returncode == 2 and "use one of: build, setup" in bogus.stderr
