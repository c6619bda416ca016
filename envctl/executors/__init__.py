"""Where a workflow's tasks run: the local engine, this host natively, a Slurm cluster, a Kubernetes cluster.

A workflow (verify, smoke, compat run) says *what* to run as ``Task`` objects: an image (or
none: natively, with an interpreter where it runs), a command, the read-only folders it needs
(the probe files travel with the task; nothing of envctl is installed where it runs), GPUs,
limits. An ``Executor`` says *where*: it renders its plan purely (``plan``: the ``docker run``
lines, the sbatch script, the Job manifests), then submits, waits, collects each task's output
and where it ran, and cancels on Ctrl-C or SIGTERM. The local engine is just another executor,
so the workflows are tested locally.
"""

from envctl.executors.base import (Executor, Mount, Sandbox, Submission, Task, TaskResult, host_command, run_each,
                                   run_tasks, workflow_labels)
from envctl.executors.host import HostExecutor
from envctl.executors.local import LocalEngine

__all__ = ["Executor", "HostExecutor", "LocalEngine", "Mount", "Sandbox", "Submission", "Task", "TaskResult",
           "host_command", "run_each", "run_tasks", "workflow_labels"]
