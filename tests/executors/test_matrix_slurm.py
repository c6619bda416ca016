"""`envctl matrix verify --on slurm --registry R` against the real one-node Slurm cluster
(scripts/slurm-up.sh) and the real registry (scripts/registry-up.sh): each image the sweep builds
is pushed, then verified by a Slurm job that pulls it by digest; the cell is recorded with its
target and the node it ran on, a rerun resumes from the records for that target, and the
dashboard's cell says where it ran.

The image is the sweep's small stand-in (tests/fixtures/torch_builds.sweep_index): it builds,
and its probe fails on the node as an import error, which is enough to show it ran there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envctl.records import Records

try:
    from tests.fixtures.pypi_index import serve
    from tests.fixtures.torch_builds import sweep_index
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import serve
    from fixtures.torch_builds import sweep_index

pytestmark = [pytest.mark.slurm, pytest.mark.engine, pytest.mark.network]
RANGE = ("--since", "2.10", "--until", "2.10")


def envctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **env}, timeout=1200)


def test_each_image_is_pushed_verified_on_slurm_and_recorded_with_its_target(slurm_cluster, registry, project,
                                                                             tmp_path, docker_client):
    served, shutdown = serve(sweep_index(tmp_path / "index"))
    env = {"ENVCTL_PROJECT": str(project), "ENVCTL_INDEX_URL": served.simple, "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    records = Records(tmp_path / "records.db")
    try:
        result = envctl("matrix", "verify", *RANGE, "--on", "slurm", "--registry", f"{registry}/matrix",
                        "--time", "10", "--wait", "300", "--html", str(tmp_path / "page"), "--json", env=env)
        again = envctl("matrix", "verify", *RANGE, "--on", "slurm", "--registry", f"{registry}/matrix", env=env)
        report = envctl("matrix", "report", *RANGE, "--on", "slurm", env=env)
    finally:
        shutdown()
        pushes = [records.last_push("pytorch-2.10-cu128")]
        for run in records.runs(kind="build"):
            if run.image_id:
                _remove(docker_client, run.image_id)
        for push in pushes:
            if push:
                _remove(docker_client, push["ref"])  # what the job pulled
    assert result.returncode == 1, result.stderr[-3000:]  # the stand-in torch imports nothing, on the node
    assert "1 combinations: pytorch-2.10-cu128 on slurm" in result.stderr
    assert f"pushing pytorch-2.10-cu128 to {registry}/matrix" in result.stderr
    [cell] = json.loads(result.stdout)["cells"]
    assert (cell["target"], cell["node"], cell["failure"]) == ("slurm", slurm_cluster, "import error"), cell
    assert cell["reason"].startswith("torch import: cannot import torch")

    [verify] = records.runs(kind="verify")
    assert verify.target == "slurm" and verify.where["executor"] == "slurm" and verify.where["job_id"].isdigit()
    assert verify.where["node"] == slurm_cluster and verify.image_id == pushes[0]["ref"]
    [matrix] = records.runs(kind="matrix")
    assert matrix.target == "slurm" and not matrix.ok

    assert again.returncode == 1 and "pytorch-2.10-cu128 on slurm: already failed for lock " in again.stderr
    assert "running the probe" not in again.stderr and "pushing" not in again.stderr
    assert report.stdout.startswith("pytorch-2.10-cu128 on slurm: failed: torch import: cannot import torch")
    page = (tmp_path / "page" / "index.html").read_text()
    assert f"on slurm ({slurm_cluster})" in page


def _remove(client, ref: str) -> None:
    from docker.errors import ImageNotFound

    try:
        client.images.remove(ref, force=True)
    except ImageNotFound:
        pass
