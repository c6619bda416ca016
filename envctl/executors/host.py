"""This host as an executor: a task without an image runs natively, as a child of envctl (the
host's python3, a prefix made by ``envctl setup``), one after another, reading its files where
they are (``host_command`` maps the mount targets to their sources).

There is no container here, so nothing to isolate the task: a task with an image belongs to the
engine, and one that asks for a sandbox (untrusted input) is refused rather than run bare.  The
host's GPUs are all visible; the task's network setting has no effect.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence

from envctl import children
from envctl.errors import UsageError
from envctl.executors.base import Submission, Task, TaskResult, host_command, refuse_unsandboxed


class HostExecutor:
    kind = "host"

    def describe(self) -> str:
        return f"this host ({socket.gethostname()})"

    def plan(self, tasks: Sequence[Task]) -> str:
        """Each task's command line as it will run here."""
        self._check(tasks)
        return "\n".join(shlex.join(host_command(t)) for t in tasks) + "\n"

    def submit(self, tasks: Sequence[Task]) -> Submission:
        self._check(tasks)
        return Submission(self.kind, uuid.uuid4().hex[:12], list(tasks))

    def wait(self, submission: Submission, *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
        """Run each task in turn (no queue here, so nothing to report through ``progress``)."""
        return [self._run(task) for task in submission.tasks]

    def cancel(self, submission: Submission) -> list[str]:
        return []  # the run that was interrupted kills its own process group on the way out

    def where(self) -> dict[str, str]:
        return {"executor": self.kind, "host": socket.gethostname(), "runtime": "native"}

    def _check(self, tasks: Sequence[Task]) -> None:
        refuse_unsandboxed(tasks, where="this host")
        for task in tasks:
            if task.image is not None:
                raise UsageError(f"task {task.name} names the image {task.image[:71]}: this host runs tasks "
                                 f"natively, not in containers",
                                 hint="run it on the local engine or a fleet target (envctl verify)")

    def _run(self, task: Task) -> TaskResult:
        argv = host_command(task)
        start = time.monotonic()
        try:
            # A session of its own: a timeout or an interrupt kills the task's children too (torch's
            # compile workers), not only the interpreter.
            proc = children.run(argv, timeout=task.timeout_s, group=True, stdin=subprocess.DEVNULL, text=True,
                                errors="replace", env={**os.environ, **task.environment})
        except OSError as exc:
            return TaskResult(task, None, "", "", where=self.where(),
                              error=f"cannot run {argv[0]}: {exc.strerror or exc}")
        except subprocess.TimeoutExpired as exc:  # what it printed until then says how far it came
            return TaskResult(task, -signal.SIGKILL, exc.stdout or "", exc.stderr or "", timed_out=True,
                              seconds=time.monotonic() - start, where=self.where())
        return TaskResult(task, proc.returncode, proc.stdout, proc.stderr,
                          seconds=time.monotonic() - start, where=self.where())
