"""``envctl smoke --on slurm`` against the real one-node cluster (scripts/slurm-up.sh): the probe
runs natively with the node's interpreter (no container, no image), its files travelling in the
submission folder, and the run is recorded with the job, the node and the runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envctl.records import Records

pytestmark = [pytest.mark.slurm, pytest.mark.engine, pytest.mark.torch]


def envctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=600)


def test_smoke_on_slurm_runs_the_probe_with_the_node_s_python3_and_records_where(slurm_cluster, tmp_path):
    # python3 as the node finds it on the job's PATH (sbatch passes the submitter's): here a python3
    # with torch, which this host's /usr/bin/python3 is not.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bindir / "python3").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    result = envctl("smoke", "--on", "slurm", "--python", "python3", "--checks-only", "--gpus", "none",
                    "--time", "10", "--wait", "300", "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["env"]["python"]["executable"] == sys.executable
    assert "probing python3 (given by --python, quick) on Slurm (default partition)" in result.stderr
    assert f"(probe) completed on {slurm_cluster}" in result.stderr

    [run] = Records(tmp_path / "records.db").runs(kind="smoke")
    assert (run.image, run.image_id, run.target, run.ok) == ("local", "python3", "slurm", True)
    assert run.where["executor"] == "slurm" and run.where["runtime"] == "native"
    assert run.where["node"] == slurm_cluster and run.where["job_id"].isdigit()
    folder = next((tmp_path / "cache" / "slurm").iterdir())  # the job's record: script, files, outputs
    assert (folder / "job_id").read_text().strip() == run.where["job_id"]
    assert "docker" not in (folder / "job.sbatch").read_text().split("case", 1)[1].split("esac")[0]
    assert (folder / "mounts" / "0" / "smoke.py").is_file()


def test_smoke_on_slurm_with_an_interpreter_without_torch_fails_its_check(slurm_cluster, tmp_path):
    env = {"ENVCTL_CACHE": str(tmp_path / "cache"), "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    result = envctl("smoke", "--on", "slurm", "--python", sys.base_prefix + "/bin/python3", "--checks-only",
                    "--gpus", "none", "--json", env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    failed = {c["name"]: c["message"] for c in json.loads(result.stdout)["checks"] if c["status"] == "fail"}
    assert failed["torch import"].startswith("cannot import torch")
    assert "Traceback" not in result.stderr
