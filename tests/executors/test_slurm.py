"""The Slurm executor against the real one-node cluster (scripts/slurm-up.sh): tasks run as jobs
through the engine, files travel with them, arrays run side by side, GRES is scheduled, and
every way a job can fail to run is one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envctl.errors import FleetError
from envctl.executors import Mount, Task, run_tasks
from envctl.executors.slurm import SlurmExecutor, SlurmOptions

from .conftest import IMAGE, REPO, slurm_up, squeue

pytestmark = [pytest.mark.slurm, pytest.mark.engine]


def py_task(name: str, code: str, *, mounts: tuple[Mount, ...] = (), timeout_s: float = 120) -> Task:
    return Task(name=name, image=IMAGE, command=("python3", "-c", code), mounts=mounts, timeout_s=timeout_s)


def until(predicate, *, timeout: float = 30, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout}s"
        time.sleep(0.2)


def test_a_task_reads_the_files_that_travelled_with_it(slurm_cluster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "msg.txt").write_text("hello from the submit host")
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path / "spool"))
    code = "import sys; print(open('/data/msg.txt').read()); print('to stderr', file=sys.stderr); sys.exit(3)"
    submission = ex.submit([py_task("reader", code, mounts=(Mount(data, "/data"),))])
    (data / "msg.txt").unlink()  # the job reads the copy in its submission folder, not this one
    [result] = ex.wait(submission)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "hello from the submit host\n", "to stderr\n")
    assert result.error is None and not result.timed_out
    assert result.where == {"executor": "slurm", "job_id": submission.id, "node": slurm_cluster, "gpu": None,
                            "driver": None, "runtime": "docker"}
    assert (submission.folder / "job.sbatch").read_text().startswith("#!/bin/bash")
    assert (submission.folder / "job_id").read_text().strip() == submission.id


def test_a_task_without_an_image_runs_natively_on_the_node(slurm_cluster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "msg.txt").write_text("hello from the submit host")
    code = "import sys; print(open(sys.argv[1]).read(), sys.executable); sys.exit(4)"
    task = Task(name="native", image=None, command=(sys.executable, "-c", code, "/data/msg.txt"),
                mounts=(Mount(data, "/data"),), timeout_s=60)
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path / "spool"))
    submission = ex.submit([task])
    (data / "msg.txt").unlink()  # the node reads the copy in the submission folder
    [result] = ex.wait(submission)
    assert (result.exit_code, result.stdout) == (4, f"hello from the submit host {sys.executable}\n")
    assert result.error is None
    assert result.where == {"executor": "slurm", "job_id": submission.id, "node": slurm_cluster, "gpu": None,
                            "driver": None, "runtime": "native"}
    assert f"{submission.folder}/mounts/0/msg.txt" in (submission.folder / "job.sbatch").read_text()


def test_three_tasks_run_as_one_array_side_by_side(slurm_cluster, tmp_path):
    code = "import time; start = time.time(); time.sleep(3); print(start, time.time())"
    tasks = [py_task(f"t{i}", code) for i in range(3)]
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path))
    seen: list[str] = []
    results = run_tasks(ex, tasks, progress=seen.append)
    job = results[0].where["job_id"].split("_")[0]
    assert [r.where["job_id"] for r in results] == [f"{job}_0", f"{job}_1", f"{job}_2"]
    assert [r.exit_code for r in results] == [0, 0, 0]
    spans = [tuple(map(float, r.stdout.split())) for r in results]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the tasks ran one after another: {spans}"
    assert f"slurm job {job}_2 (t2) completed on {slurm_cluster}" in seen


def test_gres_within_the_node_runs_beyond_it_is_refused(slurm_cluster, tmp_path):
    [ok] = run_tasks(SlurmExecutor(SlurmOptions(gres="gpu:1", spool=tmp_path / "one")), [py_task("gpu1", "print(1)")])
    assert (ok.exit_code, ok.stdout, ok.error) == (0, "1\n", None)
    with pytest.raises(FleetError) as err:
        SlurmExecutor(SlurmOptions(gres="gpu:3", spool=tmp_path / "three")).submit([py_task("gpu3", "print(3)")])
    assert str(err.value) == "sbatch refused envctl-gpu3: Requested node configuration is not available"
    assert list((tmp_path / "three").iterdir()) == []  # a refused job leaves no folder behind


SUBMITTER = """
import signal, sys
from pathlib import Path
from envctl.cli.main import _on_sigterm
from envctl.errors import Terminated
from envctl.executors import Task, run_tasks
from envctl.executors.slurm import SlurmExecutor, SlurmOptions

signal.signal(signal.SIGTERM, _on_sigterm)  # as `envctl` does: SIGTERM unwinds like Ctrl-C
task = Task(name="sleeper", image=sys.argv[2], command=("sleep", "300"))
try:
    run_tasks(SlurmExecutor(SlurmOptions(spool=Path(sys.argv[1]))), [task], progress=lambda m: print(m, file=sys.stderr))
except Terminated:
    print("terminated", file=sys.stderr)
    sys.exit(143)
"""


def test_sigterm_while_waiting_cancels_the_job_and_its_container(slurm_cluster, tmp_path, docker_client):
    proc = subprocess.Popen([sys.executable, "-c", SUBMITTER, str(tmp_path), IMAGE], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        until(lambda: any(tmp_path.glob("*/task-0/where.json")), what="the job starting")
        folder = next(tmp_path.glob("*/job_id")).parent
        job = (folder / "job_id").read_text().strip()
        container = f"envctl-{folder.name}-0"
        until(lambda: docker_client.containers.list(filters={"name": container}), what="the container starting")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert f"cancelled sleeper (slurm {job})" in stderr
    until(lambda: squeue(f"--jobs={job}") == "", what="the job leaving the queue")  # CG: completing first
    until(lambda: not docker_client.containers.list(all=True, filters={"name": container}), what="container removal")


def test_a_job_past_its_time_limit_is_one_line(slurm_cluster, tmp_path):
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path, time="5"))
    submission = ex.submit([py_task("slow", "import time; print('started', flush=True); time.sleep(300)")])
    until(lambda: (submission.folder / "task-0" / "where.json").exists(), what="the job starting")
    # Slurm's limits are whole minutes: a limit of 0 set on a running job is enforced at the
    # controller's next check (every 30 s at most), as a real time limit is.
    subprocess.run(["scontrol", "update", f"JobId={submission.id}", "TimeLimit=0"], check=True)
    [result] = ex.wait(submission, timeout=90)
    assert result.timed_out
    assert result.error == f"slurm job {submission.id} (slow) was killed by its time limit (0:00) on {slurm_cluster}"
    assert result.stdout == "started\n"  # what it printed before is kept
    assert (submission.folder / "task-0" / "signal").read_text().strip() == "TERM"


@pytest.fixture
def node_down(slurm_cluster):
    subprocess.run(["scontrol", "update", f"NodeName={slurm_cluster}", "State=DOWN", "Reason=envctl-test"], check=True)
    yield slurm_cluster
    assert slurm_up().returncode == 0  # resumes the node and sets its GRES again


def test_a_job_pending_on_a_down_node_past_the_wait_is_one_line_and_cancelled(node_down, tmp_path):
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path, wait_s=2))
    submission = ex.submit([py_task("stuck", "print('never')")])
    with pytest.raises(FleetError) as err:
        ex.wait(submission)
    message = str(err.value)
    assert message.startswith(f"slurm job {submission.id} still pending after 2s: ")
    assert message.endswith(f"; node {node_down} down: envctl-test; cancelled it")
    assert "\n" not in message and err.value.results == []
    assert squeue(f"--jobs={submission.id}") == ""


def test_no_sbatch_on_path_is_one_line(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FleetError) as err:
        SlurmExecutor(SlurmOptions(spool=tmp_path / "spool")).submit([py_task("t", "print(1)")])
    assert str(err.value) == "sbatch is not on PATH: this machine cannot submit to Slurm"
    assert "slurm-client" in err.value.hint and not (tmp_path / "spool").exists()


def test_an_unreachable_controller_is_one_line(slurm_cluster, tmp_path, monkeypatch):
    # This cluster's configuration with the controller on a port nobody listens on.
    conf = Path("/etc/slurm/slurm.conf").read_text()
    (tmp_path / "slurm.conf").write_text(conf + "\nSlurmctldPort=9\nMessageTimeout=1\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    with pytest.raises(FleetError) as err:
        SlurmExecutor(SlurmOptions(spool=tmp_path / "spool")).submit([py_task("t", "print(1)")])
    assert str(err.value) == ("the Slurm controller does not answer "
                              "(sbatch: Unable to contact slurm controller (connect failure))")
    assert list((tmp_path / "spool").iterdir()) == []


def test_results_collected_before_a_task_pends_past_the_wait_are_kept(node_down, tmp_path):
    ex = SlurmExecutor(SlurmOptions(spool=tmp_path, wait_s=8))
    submission = ex.submit([py_task("quick", "print('done')"), py_task("held", "print('never')")])
    # Both wait for the node; task 1 is held, then the node comes back: task 0 runs, task 1 pends.
    subprocess.run(["scontrol", "hold", f"{submission.id}_1"], check=True)
    assert slurm_up().returncode == 0
    with pytest.raises(FleetError) as err:
        ex.wait(submission)
    assert str(err.value) == f"slurm job {submission.id} still pending after 8s: JobHeldAdmin; cancelled it"
    [kept] = err.value.results
    assert (kept.task.name, kept.exit_code, kept.stdout) == ("quick", 0, "done\n")
    assert squeue(f"--jobs={submission.id}") == ""
