"""The host executor with real processes: a task without an image runs natively, its mount targets
mapped to their sources; output, exit code, environment, a timeout that kills the task's children
too; executors that run only containers refuse such a task in one line."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from envctl.errors import UsageError
from envctl.executors import HostExecutor, LocalEngine, Mount, Sandbox, Task, host_command, run_tasks
from envctl.executors.kubernetes import KubernetesExecutor, KubernetesOptions

READER = """import os, sys
print(open(sys.argv[1]).read(), os.environ["GREETING"])
print("to stderr", file=sys.stderr)
sys.exit(3)
"""


def native(name: str, *command: str, mounts: tuple[Mount, ...] = (), **kw) -> Task:
    return Task(name=name, image=None, command=(sys.executable, *command), mounts=mounts, **kw)


def test_a_native_task_reads_its_files_at_their_sources(tmp_path):
    code, data = tmp_path / "code", tmp_path / "data"
    code.mkdir()
    data.mkdir()
    (code / "read.py").write_text(READER)
    (data / "msg.txt").write_text("hello from the mount")
    task = native("reader", "/opt/code/read.py", "/opt/data/msg.txt",
                  mounts=(Mount(code, "/opt/code"), Mount(data, "/opt/data")), environment={"GREETING": "hi"})
    [result] = run_tasks(HostExecutor(), [task])
    assert (result.exit_code, result.stdout, result.stderr) == (3, "hello from the mount hi\n", "to stderr\n")
    assert result.error is None and not result.timed_out and result.seconds > 0
    assert result.where == {"executor": "host", "host": socket.gethostname(), "runtime": "native"}


def test_the_plan_is_the_command_line_that_runs(tmp_path):
    task = native("p", "/opt/envctl-probe/smoke.py", "--config", "/opt/cfg/config.json", "--level", "quick",
                  mounts=(Mount(tmp_path / "probes", "/opt/envctl-probe"), Mount(tmp_path / "c", "/opt/cfg/")))
    assert host_command(task) == (sys.executable, f"{tmp_path}/probes/smoke.py", "--config",
                                  f"{tmp_path}/c/config.json", "--level", "quick")
    assert HostExecutor().plan([task]) == (f"{sys.executable} {tmp_path}/probes/smoke.py --config "
                                           f"{tmp_path}/c/config.json --level quick\n")
    # A target names a path prefix only at a path boundary: /opt/envctl-probe-old is not under it.
    other = native("o", "/opt/envctl-probe-old/x.py", mounts=(Mount(tmp_path, "/opt/envctl-probe"),))
    assert host_command(other)[1] == "/opt/envctl-probe-old/x.py"


def test_a_timeout_kills_the_task_and_its_children(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    spawn = ("import subprocess, sys, time; "
             "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
             f"open({str(pidfile)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(120)")
    start = time.monotonic()
    [result] = run_tasks(HostExecutor(), [native("sleeper", "-c", spawn, timeout_s=2)])
    assert result.timed_out and result.stdout == "started\n" and time.monotonic() - start < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{grandchild}").exists() and time.monotonic() < deadline:
        state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":  # killed, waiting for its parent's init to reap it
            break
        time.sleep(0.1)
    else:
        assert not Path(f"/proc/{grandchild}").exists(), "the task's child outlived the timeout"


def test_an_interpreter_that_is_not_there_is_the_task_s_one_line(tmp_path):
    task = Task(name="probe", image=None, command=(str(tmp_path / "no-python"), "-V"))
    [result] = run_tasks(HostExecutor(), [task])
    assert result.exit_code is None
    assert result.error == f"cannot run {tmp_path}/no-python: No such file or directory"


@pytest.mark.parametrize("task, message", [
    (Task(name="boxed", image=None, command=("python3",), sandbox=Sandbox()),
     "task boxed asks for a sandbox: this host would run it natively, without one"),
    (Task(name="in-image", image="envctl/debian:bookworm-minimal", command=("python3",)),
     "task in-image names the image envctl/debian:bookworm-minimal: this host runs tasks natively, "
     "not in containers"),
])
def test_the_host_refuses_what_it_cannot_run_as_asked(task, message):
    with pytest.raises(UsageError) as err:
        run_tasks(HostExecutor(), [task])
    assert str(err.value) == message and err.value.exit_code == 2


@pytest.mark.parametrize("executor, where", [
    (LocalEngine(), "the local Docker engine"), (KubernetesExecutor(KubernetesOptions()), "a Kubernetes Job")])
def test_executors_of_containers_refuse_a_task_without_an_image_in_one_line(executor, where):
    task = native("probe", "-V")
    for act in (executor.plan, lambda tasks: run_tasks(executor, tasks)):
        with pytest.raises(UsageError) as err:
            act([task])
        assert str(err.value) == f"task probe has no image: {where} runs only containers"
        assert err.value.exit_code == 2 and "envctl smoke --on host|slurm" in err.value.hint


def test_the_host_runs_tasks_with_its_own_environment_too(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_TEST_INHERITED", "yes")
    code = "import os; print(os.environ['ENVCTL_TEST_INHERITED'], os.environ['OWN'])"
    [result] = run_tasks(HostExecutor(), [native("env", "-c", code, environment={"OWN": "set"})])
    assert (result.exit_code, result.stdout) == (0, "yes set\n")
    assert os.environ.get("OWN") is None  # the task's environment is its own, not envctl's
