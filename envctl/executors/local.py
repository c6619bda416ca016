"""The local Docker engine as an executor: each task a fresh container, one after another
(tasks of one submission share the host's GPUs, so running them side by side would time them
against each other). ``docker_run_argv`` (in the engine package, the one seam to Docker) is the
same run as a command line: the plan shown, and what a Slurm job runs on a node."""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable, Sequence

from envctl.engine.runline import docker_run_argv
from envctl.executors.base import Submission, Task, TaskResult, require_images


class LocalEngine:
    kind = "local"

    def __init__(self, engine=None) -> None:
        self._engine = engine  # connected on first use: planning needs no engine

    @property
    def engine(self):
        if self._engine is None:
            from envctl.engine import Engine

            self._engine = Engine.connect()
        return self._engine

    def describe(self) -> str:
        return "the local Docker engine"

    def plan(self, tasks: Sequence[Task]) -> str:
        """The ``docker run`` line of each task (what the SDK call amounts to)."""
        require_images(tasks, where=self.describe())
        return "\n".join(shlex.join(docker_run_argv(t)) for t in tasks) + "\n"

    def submit(self, tasks: Sequence[Task]) -> Submission:
        require_images(tasks, where=self.describe())
        return Submission(self.kind, uuid.uuid4().hex[:12], list(tasks))

    def wait(self, submission: Submission, *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
        results = []
        for task in submission.tasks:
            progress(f"running {task.name} in {task.image[:19]}")
            start = time.monotonic()
            sb = task.sandbox
            result = self.engine.run(
                task.image, list(task.command), mounts=[(str(m.source), m.target, True) for m in task.mounts],
                gpus=task.gpus, network=task.network, timeout=task.timeout_s,
                environment=dict(task.environment) or None, sandbox=sb is not None,
                mem_limit=sb.mem_limit if sb else None, nano_cpus=sb.nano_cpus if sb else None,
                pids_limit=sb.pids_limit if sb else None, exec_tmp=bool(sb and sb.exec_tmp))
            results.append(TaskResult(task, result.exit_code, result.stdout, result.stderr,
                                      timed_out=result.timed_out, oom_killed=result.oom_killed,
                                      seconds=time.monotonic() - start, where=self.where()))
        return results

    def cancel(self, submission: Submission) -> list[str]:
        return []  # the engine call that was interrupted removes its own container

    def where(self) -> dict[str, str]:
        import socket

        return {"executor": self.kind, "host": socket.gethostname()}
