"""envctl.executors.base: the loops every executor shares (unit tests with recording executors;
the real engine, cluster and API are tested in their own files)."""

from __future__ import annotations

import pytest

from envctl.errors import FleetError
from envctl.executors import Submission, Task, TaskResult, run_each, run_tasks


class Recording:
    kind = "fake"

    def __init__(self, *, wait_error: BaseException | None = None, cancel_error: Exception | None = None):
        self.wait_error, self.cancel_error, self.cancelled = wait_error, cancel_error, []

    def describe(self) -> str:
        return "a fake"

    def plan(self, tasks) -> str:
        return ""

    def submit(self, tasks) -> Submission:
        return Submission(self.kind, f"s{id(self) % 1000}", list(tasks))

    def wait(self, submission, *, timeout=None, progress=lambda _m: None):
        if self.wait_error is not None:
            raise self.wait_error
        return [TaskResult(t, 0, "{}", "") for t in submission.tasks]

    def cancel(self, submission) -> list[str]:
        if self.cancel_error is not None:
            raise self.cancel_error
        self.cancelled.append(submission.id)
        return [t.name for t in submission.tasks]


def _task(name: str) -> Task:
    return Task(name=name, image="img@sha256:" + "0" * 64, command=("true",))


def test_one_target_that_cannot_follow_its_task_does_not_end_the_others():
    ok, stuck = Recording(), Recording(wait_error=FleetError("slurm job 7 still pending after 60s: (Resources)"))
    results = run_each([(ok, _task("a")), (stuck, _task("b")), (ok, _task("c"))])
    assert [r.error for r in results] == [None, "slurm job 7 still pending after 60s: (Resources)", None]
    assert ok.cancelled == stuck.cancelled == []


def test_an_interrupt_cancels_every_submission_even_when_one_cancel_fails():
    said = []
    broken = Recording(cancel_error=RuntimeError("connection refused"))
    interrupted = Recording(wait_error=KeyboardInterrupt())
    last = Recording()
    with pytest.raises(KeyboardInterrupt):
        run_each([(broken, _task("a")), (interrupted, _task("b")), (last, _task("c"))], progress=said.append)
    assert interrupted.cancelled and last.cancelled  # the failed cancel did not stop the rest
    assert any(m.startswith("could not cancel fake") and "connection refused" in m for m in said)
    with pytest.raises(KeyboardInterrupt):  # run_tasks: the interrupt, not the cancel's error, propagates
        run_tasks(Recording(wait_error=KeyboardInterrupt(), cancel_error=RuntimeError("gone")), [_task("d")])


@pytest.mark.parametrize("gpus, shm", [("all", "--shm-size=2g"), ("8", "--shm-size=2g"), ("2", "--shm-size=2g"),
                                       ("1", None), ("none", None), (None, None)])
def test_a_container_that_may_see_several_gpus_gets_room_in_dev_shm_for_nccl(gpus, shm):
    # Docker's /dev/shm is 64 MiB; NCCL between GPUs of one node keeps its buffers there
    from envctl.engine.runline import docker_run_argv

    argv = docker_run_argv(Task(name="probe", image="img", command=("python",), gpus=gpus))
    assert [a for a in argv if a.startswith("--shm-size")] == ([shm] if shm else [])
