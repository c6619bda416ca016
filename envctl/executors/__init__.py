"""Where a workflow's containers run: the local engine, a Slurm cluster, a Kubernetes cluster.

A workflow (verify, compat run) says *what* to run as ``Task`` objects: an image, a command,
the read-only folders it needs (the probe files travel with the task; nothing of envctl is
installed where it runs), GPUs, limits. An ``Executor`` says *where*: it renders its plan
purely (``plan``: the ``docker run`` lines, the sbatch script, the Job manifests), then
submits, waits, collects each task's output and where it ran, and cancels on Ctrl-C or
SIGTERM. The local engine is just another executor, so the workflows are tested locally.
"""

from envctl.executors.base import (Executor, Mount, Sandbox, Submission, Task, TaskResult, run_each,
                                   run_tasks, workflow_labels)
from envctl.executors.local import LocalEngine

__all__ = ["Executor", "LocalEngine", "Mount", "Sandbox", "Submission", "Task", "TaskResult", "run_each",
           "run_tasks", "workflow_labels"]
