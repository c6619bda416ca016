"""envctl.smoke: the probe in an interpreter, planned then run through the host executor (real
processes: a stand-in interpreter that reports what it was given, and this venv's python with
torch), recorded with where it ran; bad input settled in the plan, before anything runs."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from envctl.errors import UsageError
from envctl.executors import HostExecutor
from envctl.probe import PROBE_DIR
from envctl.records import Records
from envctl.smoke import plan_smoke, run_smoke

# Answers as the probe would, with what it was asked: the script it was given and the config read.
STAND_IN = f"""#!{sys.executable}
import json, os, sys
config = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
print(json.dumps({{"schema": "envctl.probe/1", "ok": True, "env": {{}}, "benchmarks": [],
                  "checks": [{{"name": "args", "status": "pass", "message": " ".join(sys.argv[1:])}}],
                  "config": config, "probe_exists": os.path.isfile(sys.argv[1])}}))
"""


@pytest.fixture
def stand_in(tmp_path):
    path = tmp_path / "python"
    path.write_text(STAND_IN)
    path.chmod(0o755)
    return path


def test_the_probe_runs_on_the_host_with_its_files_where_they_are_and_is_recorded(stand_in):
    plan = plan_smoke(None, python=str(stand_in), gpus="none", checks_only=True)
    assert isinstance(plan.executor, HostExecutor) and plan.target is None
    assert (plan.python, plan.why, plan.level) == (str(stand_in), "given by --python", "quick")
    run = run_smoke(plan)
    doc = run.report.document
    assert doc["checks"][0]["message"].startswith(f"{PROBE_DIR}/smoke.py --config ")
    assert doc["checks"][0]["message"].endswith("/config.json --level quick --checks-only")
    assert doc["probe_exists"] is True and doc["config"] == {"gpus": "none", "level": "quick"}
    assert run.ok and run.title == str(stand_in)
    assert run.where == {"executor": "host", "host": socket.gethostname(), "runtime": "native"}
    run.record()
    [row] = Records().runs(kind="smoke")
    assert (row.image, row.image_id, row.target, row.ok) == ("local", str(stand_in), None, True)
    assert row.where == {"executor": "host", "host": socket.gethostname(), "runtime": "native"}


@pytest.mark.torch
def test_the_real_probe_with_this_interpreter(project):
    plan = plan_smoke(None, python=sys.executable, image="pytorch-2.13-cpu", gpus="none", checks_only=True)
    assert plan.why.startswith("given by --python, Python ") and plan.spec.name == "pytorch-2.13-cpu"
    run = run_smoke(plan)
    checks = {c["name"]: c["status"] for c in run.report.checks}
    assert checks["torch import"] == "pass" and checks["pip drift"] == "fail"  # pytest is not in the lock
    assert run.report.exit_code == 1 and not run.ok


@pytest.mark.parametrize("kwargs, message", [
    (dict(on="kubernetes"), "--on kubernetes: smoke probes an interpreter on the host or on a Slurm node"),
    (dict(on="host", options={"partition": "debug"}), "--partition needs --on slurm"),
    (dict(options={"wait": 10.0}), "--wait needs --on slurm"),
    (dict(on="slurm", options={"gres": "gpu 1"}), "--gres: 'gpu 1' is not a GRES such as gpu:1 or gpu:h100:2"),
    (dict(gpus="several"), "--gpus several: expected all, none or a GPU count"),
    (dict(python="/nonexistent/python"), "--python /nonexistent/python: no such file"),
])
def test_bad_input_is_one_line_before_anything_runs(kwargs, message):
    with pytest.raises(UsageError) as err:
        plan_smoke(None, **kwargs)
    assert str(err.value) == message and err.value.exit_code == 2


def test_on_slurm_the_interpreter_is_the_node_s_to_find(tmp_path):
    plan = plan_smoke(None, on="slurm", options={"partition": "debug"}, gpus="none")
    assert (plan.python, plan.why, plan.target, plan.executor.kind) == (
        "python3", "python3 on the node's PATH", "slurm", "slurm")
    assert plan.executor.options.partition == "debug"
