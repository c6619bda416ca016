"""The sbatch script, rendered purely: directives from the options, one array for several tasks,
mounts pointing into the submission folder, a pull only for registry references."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from envctl.executors import Mount, Task
from envctl.executors.sbatch import is_registry_ref, mount_dirs, render_sbatch, time_limit
from envctl.executors.slurm import SlurmExecutor, SlurmOptions

FOLDER = Path("/spool/20261206-120000-abcd1234")
REF = "127.0.0.1:5000/envctl/pytorch-2.13-cpu@sha256:" + "a" * 64


def task(name: str = "probe", image: str = "envctl/debian:bookworm-minimal", **kw) -> Task:
    return Task(name=name, image=image, command=("python3", "-c", "print('it ran')"), **kw)


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_one_task_is_one_job_with_every_option():
    opts = SlurmOptions(partition="gpu", gres="gpu:h100:1", constraint="h100", nodelist="n[1-2]", time="0:30:00",
                        account="ml")
    script = render_sbatch([task()], opts, FOLDER, job_name="envctl-probe")
    assert directives(script) == [
        "--job-name=envctl-probe", f"--output={FOLDER}/slurm-%j.out", f"--error={FOLDER}/slurm-%j.err",
        "--time=0:30:00", "--signal=B:USR1@60", "--ntasks=1", "--partition=gpu", "--gres=gpu:h100:1",
        "--constraint=h100", "--nodelist=n[1-2]", "--account=ml"]


def test_several_tasks_are_one_array_with_a_branch_each():
    tasks = [task(f"t{i}") for i in range(3)]
    script = render_sbatch(tasks, SlurmOptions(), FOLDER, job_name="envctl-3-tasks")
    assert "--array=0-2" in directives(script)
    assert f"--output={FOLDER}/slurm-%A_%a.out" in directives(script)
    for i in range(3):
        assert f"  {i})  # t{i}\n" in script
        assert f"--name envctl-{FOLDER.name}-{i} " in script


def test_mounts_point_into_the_folder_and_a_shared_source_travels_once():
    probe, config = Path("/opt/probes"), Path("/tmp/cfg")
    tasks = [task("a", mounts=(Mount(probe, "/opt/envctl"), Mount(config, "/opt/cfg"))),
             task("b", mounts=(Mount(probe, "/opt/envctl"),))]
    assert mount_dirs(tasks) == {probe: "mounts/0", config: "mounts/1"}
    script = render_sbatch(tasks, SlurmOptions(), FOLDER, job_name="x")
    assert script.count(f"source={FOLDER}/mounts/0,target=/opt/envctl,readonly") == 2
    assert f"source={FOLDER}/mounts/1,target=/opt/cfg,readonly" in script
    assert "/opt/probes" not in script  # nothing of the submitting host is named on the node


def test_a_registry_reference_is_pulled_a_local_image_is_not():
    assert f"PULL={REF}\n" in render_sbatch([task(image=REF)], SlurmOptions(), FOLDER, job_name="x")
    assert "PULL=''\n" in render_sbatch([task()], SlurmOptions(), FOLDER, job_name="x")


@pytest.mark.parametrize("image, expected", [
    (REF, True), ("registry.example.com/team/img@sha256:" + "0" * 64, True),
    ("localhost/img@sha256:" + "0" * 64, True), ("envctl/pytorch-2.13-cpu:abc", False),
    ("sha256:" + "0" * 64, False), ("127.0.0.1:5000/img:latest", False), ("envctl/img@sha256:" + "0" * 64, False)])
def test_registry_references(image, expected):
    assert is_registry_ref(image) is expected


def test_time_limit_is_the_users_or_the_longest_task_plus_the_pull():
    tasks = [task(timeout_s=600), task("b", timeout_s=90)]
    assert time_limit(SlurmOptions(), tasks) == "12"  # (600 + 120) / 60
    assert time_limit(SlurmOptions(time="5"), tasks) == "5"


def test_the_script_is_valid_bash(tmp_path):
    tasks = [task("a", mounts=(Mount(tmp_path, "/data"),), environment={"A": "it's"}), task("b", image=REF)]
    path = tmp_path / "job.sbatch"
    path.write_text(render_sbatch(tasks, SlurmOptions(gres="gpu:1"), FOLDER, job_name="x"))
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_plan_needs_no_cluster_and_names_no_real_folder(tmp_path):
    plan = SlurmExecutor(SlurmOptions(spool=tmp_path, partition="debug")).plan([task()])
    assert f"FOLDER={tmp_path}/SUBMISSION" in plan and "--partition=debug" in plan
    assert list(tmp_path.iterdir()) == []


def test_no_tasks_is_a_bug_of_the_caller():
    with pytest.raises(ValueError):
        render_sbatch([], SlurmOptions(), FOLDER, job_name="x")


@pytest.mark.parametrize("key, value", [("partition", "gpu\n#SBATCH --uid=0"), ("gres", "gpu:1 --x"),
                                        ("account", "a'b"), ("time", ""), ("nodelist", "n1;reboot")])
def test_an_option_that_would_change_the_script_is_refused(key, value):
    from envctl.errors import UsageError

    with pytest.raises(UsageError) as err:
        SlurmOptions(**{key: value})
    assert f"slurm {key}" in str(err.value) and "\n" not in str(err.value) and err.value.exit_code == 2


def test_a_wait_that_is_no_positive_number_is_refused():
    from envctl.errors import UsageError

    with pytest.raises(UsageError, match="slurm wait"):
        SlurmOptions(wait_s=0)


def test_a_task_without_an_image_runs_natively_on_the_node_with_the_copies_of_its_files():
    probes, config = Path("/home/me/envctl/probes"), Path("/tmp/cfg")
    native = Task(name="probe", image=None, mounts=(Mount(probes, "/opt/envctl-probe"), Mount(config, "/opt/cfg")),
                  command=("python3", "/opt/envctl-probe/smoke.py", "--config", "/opt/cfg/config.json"),
                  environment={"A": "it's"})
    script = render_sbatch([native], SlurmOptions(), FOLDER, job_name="x")
    assert (f"    set -- env 'A=it'\"'\"'s' python3 {FOLDER}/mounts/0/smoke.py --config "
            f"{FOLDER}/mounts/1/config.json ;;\n") in script
    assert "    NAME=''\n    PULL=''\n    RUNTIME=native\n" in script
    assert "docker run" not in script and str(probes) not in script
    assert "RUNTIME=docker\n" in render_sbatch([task()], SlurmOptions(), FOLDER, job_name="x")


def test_a_native_task_that_asks_for_a_sandbox_is_refused_before_anything_is_written(tmp_path):
    """A node would run it with its own interpreter, without the sandbox it asked for (the host
    executor refuses the same task)."""
    from envctl.errors import UsageError
    from envctl.executors import Sandbox

    boxed = Task(name="boxed", image=None, command=("python3", "-c", "1"), sandbox=Sandbox())
    executor = SlurmExecutor(SlurmOptions(spool=tmp_path / "spool"))
    for act in (executor.plan, executor.submit):
        with pytest.raises(UsageError, match="task boxed asks for a sandbox: a Slurm node would run it natively"):
            act([boxed])
    assert not (tmp_path / "spool").exists()
