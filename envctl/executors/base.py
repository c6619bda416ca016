"""The "where it runs" seam: what a task is, what an executor does with it, and the one loop
that submits, waits and cancels on an interrupt (submitit's executor/job shape, with container
images and probe files in place of pickled functions).

A task without an image runs natively: its command names an interpreter where it runs (a
workstation's, a node's) and refers to its files by their mount targets, which the executor maps
to where the files are there (``host_command``): their sources on this host, their copies in a
Slurm job's folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from envctl.errors import UsageError


@dataclass(frozen=True)
class Mount:
    """A host folder a task reads (read-only) at ``target`` in its container. Remote executors
    copy it into the submission's folder, so the files travel with the job."""

    source: Path
    target: str


@dataclass(frozen=True)
class Sandbox:
    """Limits for untrusted input (artifacts): an unprivileged user, a read-only root, no
    capabilities, only /tmp writable (``exec_tmp``: AOTInductor packages dlopen from it)."""

    mem_limit: str = "2g"
    nano_cpus: int | None = 2_000_000_000
    pids_limit: int = 512
    exec_tmp: bool = False


@dataclass(frozen=True)
class Task:
    """One run: ``command`` in ``image`` (or natively, without one) with ``mounts`` and its limits."""

    name: str  # unique within a submission (an array task's label)
    # An image id or tag locally; a registry reference by digest elsewhere; None: no container, the
    # command runs natively (an executor that runs only containers refuses it: ``require_images``).
    image: str | None
    command: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    gpus: str | None = None  # "all", a count, or None
    network: str = "none"
    timeout_s: float = 600.0
    environment: Mapping[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


# A container's /dev/shm is 64 MiB (Docker's default, and a pod's without a memory volume); NCCL
# between GPUs of one node keeps its buffers there and fails or crashes in ncclShmOpen when it is
# short. PyTorch's CI runs its GPU containers with --shm-size=2gb for that reason.
MULTI_GPU_SHM_GIB = 2


def multi_gpu_shm_gib(gpus: str | int | None) -> int | None:
    """The /dev/shm (GiB) a container needs for ``gpus``: ``MULTI_GPU_SHM_GIB`` wherever it may
    see several GPUs ("all" or a count >= 2), else None (the runtime's default will do)."""
    if gpus == "all" or (str(gpus).isdigit() and int(gpus) >= 2):
        return MULTI_GPU_SHM_GIB
    return None


def host_command(task: Task) -> tuple[str, ...]:
    """A native task's command with each mount target (and any path under one) replaced by the
    mount's source: the same files, where they are on the machine that runs it (pure)."""
    def mapped(arg: str) -> str:
        for m in task.mounts:
            target = m.target.rstrip("/")
            if arg == target or arg.startswith(target + "/"):
                return str(m.source) + arg[len(target):]
        return arg

    return tuple(mapped(arg) for arg in task.command)


def require_images(tasks: Sequence[Task], *, where: str) -> None:
    """Refuse a task without an image where only containers run (one line naming the task)."""
    for task in tasks:
        if task.image is None:
            raise UsageError(f"task {task.name} has no image: {where} runs only containers",
                             hint="give the task an image, or run it natively: on this host or on a "
                                  "Slurm node (envctl smoke --on host|slurm)")


def refuse_unsandboxed(tasks: Sequence[Task], *, where: str) -> None:
    """Refuse a task that asks for a sandbox where it would run natively, without one (one line)."""
    for task in tasks:
        if task.image is None and task.sandbox is not None:
            raise UsageError(f"task {task.name} asks for a sandbox: {where} would run it natively, without one",
                             hint="run it in a container (the local engine, or a target with an image)")


@dataclass
class TaskResult:
    """What a task printed and how it ended, and where it ran (host, GPU, driver, job id)."""

    task: Task
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    seconds: float = 0.0
    where: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the executor's one line when the task never ran or was lost


@dataclass
class Submission:
    """Tasks handed to an executor: its id for them (a Slurm job id, Job names) and its state."""

    executor: str
    id: str
    tasks: list[Task]
    folder: Path | None = None  # where the plan, the travelling files and the outputs are kept
    handles: dict[str, Any] = field(default_factory=dict)  # task name -> the executor's handle


class Executor(Protocol):
    """Where tasks run. ``plan`` is pure (``--dry-run`` prints it); the rest act."""

    kind: str  # "local", "host", "slurm", "kubernetes"

    def describe(self) -> str:
        """One line: where this executor runs tasks (for progress and records)."""

    def plan(self, tasks: Sequence[Task]) -> str:
        """What ``submit`` would do, as text a user can review or run by hand."""

    def submit(self, tasks: Sequence[Task]) -> Submission:
        """Hand the tasks over; returns at once where the executor queues them."""

    def wait(self, submission: Submission, *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
        """Follow the tasks until each has ended; a result per task, in submission order."""

    def cancel(self, submission: Submission) -> list[str]:
        """Stop what is still running or queued; the names of the tasks it stopped."""


def run_tasks(executor: Executor, tasks: Sequence[Task], *, timeout: float | None = None,
              progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
    """Submit, wait and collect; an interrupt (Ctrl-C, SIGTERM) cancels what was submitted,
    says so through ``progress``, and propagates."""
    if not tasks:
        return []
    started = time.monotonic()
    submission = executor.submit(tasks)
    try:
        results = executor.wait(submission, timeout=timeout, progress=progress)
    except BaseException:
        _cancel(executor, submission, progress)
        raise
    for r in results:
        r.seconds = r.seconds or time.monotonic() - started
    return results


def run_each(pairs: Sequence[tuple[Executor, Task]], *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
    """``run_tasks`` for tasks bound for different executors (one per fleet target): every task
    submitted first, so the targets queue and run side by side, then each waited for in turn; an
    interrupt cancels every submission and says so.  A result per pair, in order."""
    if len(pairs) == 1:
        return run_tasks(pairs[0][0], [pairs[0][1]], timeout=timeout, progress=progress)
    started = time.monotonic()
    submitted: list[tuple[Executor, Submission]] = []
    try:
        for executor, task in pairs:
            submitted.append((executor, executor.submit([task])))
        results = [_wait_one(executor, submission, timeout, progress) for executor, submission in submitted]
    except BaseException:
        for executor, submission in submitted:
            _cancel(executor, submission, progress)
        raise
    for r in results:
        r.seconds = r.seconds or time.monotonic() - started
    return results


def _wait_one(executor: Executor, submission: Submission, timeout: float | None,
              progress: Callable[[str], None]) -> TaskResult:
    """One target's result; a target that cannot take or follow its task (a job pending past the
    wait, a lost controller) is that task's error, not the end of the other targets' runs."""
    from envctl.errors import FleetError

    try:
        return executor.wait(submission, timeout=timeout, progress=progress)[0]
    except FleetError as exc:
        collected = getattr(exc, "results", None) or []
        return collected[0] if collected else TaskResult(submission.tasks[0], None, "", "", error=exc.message)


def _cancel(executor: Executor, submission: Submission, progress: Callable[[str], None]) -> None:
    """Cancel a submission on the way out of an interrupt or failure: a cancel that fails itself
    is said, never raised over the interrupt that called it (the others are still cancelled)."""
    try:
        stopped = executor.cancel(submission)
    except Exception as exc:  # noqa: BLE001 - the original interrupt is the one to propagate
        progress(f"could not cancel {executor.kind} {submission.id}: {exc}")
        return
    if stopped:
        progress(f"cancelled {', '.join(stopped)} ({executor.kind} {submission.id})")


def workflow_labels(*, image: str, lock_hash: str, target: str) -> dict[str, str]:
    """The labels that let ``kubectl get jobs -l envctl.io/image=NAME`` find a workflow's Jobs (the
    lock hash as its first 12 hex digits, as image ids are shown: a label holds 63 characters)."""
    return {"envctl.io/image": image, "envctl.io/lock": lock_hash.split(":")[-1][:12], "envctl.io/target": target}
