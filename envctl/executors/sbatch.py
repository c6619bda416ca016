"""The sbatch script of a Slurm submission, rendered purely (what ``envctl ... --dry-run`` shows).

One script per submission: a job array (``--array=0-N``) when several tasks go at once, each
array task running its ``Task`` through the node's container runtime. The node needs only that
runtime and the image: the files a task mounts were copied into the submission's folder
(``staged``), which the nodes see (a shared file system on a real cluster), so nothing of envctl
is installed there. Each array task writes into ``task-N/`` of the folder: the container's
``stdout`` and ``stderr``, its ``exit_code``, ``where.json`` (host, GPU, driver, runtime) and,
when Slurm signalled it, ``signal``.

Docker is the runtime here (the nodes of these machines have an engine): ``docker pull REF``
when the image is a registry reference, then the task's ``docker run`` line.  A task without an
image runs natively with the node's own interpreter (nodes with a Python and torch but no
container runtime), its mount targets replaced by the copies in the folder; ``where.json`` then
says ``"runtime": "native"``.  HPC sites without Docker would run an image's task with the same
mounts (designed, not installable here):

- Apptainer: ``apptainer exec --nv --containall --bind SRC:TARGET:ro ... docker://REF COMMAND``
  (``--nv`` only when the task wants GPUs; the image is converted to SIF on first pull).
- enroot + pyxis: ``srun --container-image=REF --container-mounts=SRC:TARGET:ro,...
  --no-container-mount-home COMMAND`` (the sbatch script's step runs in the container).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from envctl.executors.base import Mount, Task, host_command
from envctl.executors.local import docker_run_argv

if TYPE_CHECKING:
    from envctl.executors.slurm import SlurmOptions

# Slurm sends USR1 this long before the time limit: the task's folder then says it was cut
# short even when the controller has forgotten the job (squeue keeps ended jobs MinJobAge s).
WARN_BEFORE_LIMIT_S = 60
# With no --time, a task gets its own timeout plus this much for the pull and the start.
PULL_ALLOWANCE_S = 120

# HOST[:PORT]/PATH@sha256:HEX -- the host part has a dot or a port, or is localhost.
_REGISTRY_REF = re.compile(r"^(?:[\w-]+(?:\.[\w-]+)+(?::\d+)?|[\w-]+:\d+|localhost)/[^@\s]+@sha256:[0-9a-f]{64}$")


def is_registry_ref(image: str) -> bool:
    """Whether ``image`` names an image in a registry by digest (pulled on the node), rather than
    an image id or tag of the local engine."""
    return bool(_REGISTRY_REF.match(image))


def mount_dirs(tasks: Sequence[Task]) -> dict[Path, str]:
    """Each distinct mount source of the tasks -> its folder under ``mounts/`` of the submission
    (a source several tasks share travels once)."""
    dirs: dict[Path, str] = {}
    for task in tasks:
        for m in task.mounts:
            dirs.setdefault(m.source, f"mounts/{len(dirs)}")
    return dirs


def staged(tasks: Sequence[Task], folder: Path) -> list[Task]:
    """The tasks with their mounts pointing into ``folder``, where submit copies the sources."""
    dirs = mount_dirs(tasks)
    return [replace(t, mounts=tuple(Mount(folder / dirs[m.source], m.target) for m in t.mounts)) for t in tasks]


def time_limit(options: SlurmOptions, tasks: Sequence[Task]) -> str:
    """``--time``: the user's, or the longest task timeout plus the pull allowance, in minutes."""
    if options.time:
        return options.time
    return str(math.ceil((max(t.timeout_s for t in tasks) + PULL_ALLOWANCE_S) / 60))


def node_argv(task: Task) -> list[str]:
    """A native task's command on the node: its files at their copies in the folder (the task is
    ``staged``), its environment set by ``env`` (the job's own is the submitter's, as sbatch's
    default ``--export=ALL`` passes it)."""
    env = [f"{key}={value}" for key, value in sorted(task.environment.items())]
    return (["env", *env] if env else []) + list(host_command(task))


def container_name(folder: Path, index: int) -> str:
    """The container's name on the node: known before the job runs, so a cancel can remove it."""
    return f"envctl-{folder.name}-{index}"


def render_sbatch(tasks: Sequence[Task], options: SlurmOptions, folder: Path, *, job_name: str) -> str:
    """The whole script; ``folder`` is the submission's folder (outputs, copied mounts)."""
    if not tasks:
        raise ValueError("a submission needs at least one task")
    array = len(tasks) > 1
    log = f"{folder}/slurm-%A_%a" if array else f"{folder}/slurm-%j"
    directives = [f"--job-name={job_name}"]
    if array:
        directives.append(f"--array=0-{len(tasks) - 1}")
    directives += [f"--output={log}.out", f"--error={log}.err", f"--time={time_limit(options, tasks)}",
                   f"--signal=B:USR1@{WARN_BEFORE_LIMIT_S}", "--ntasks=1"]
    for key in ("partition", "gres", "constraint", "nodelist", "account"):
        value = getattr(options, key)
        if value:
            directives.append(f"--{key}={value}")
    lines = ["#!/bin/bash",
             f"# Written by envctl: {len(tasks)} task(s) of submission {folder.name}; DO NOT EDIT.",
             *(f"#SBATCH {d}" for d in directives),  # SlurmOptions holds no spaces or quotes
             "set -u",
             f"FOLDER={shlex.quote(str(folder))}",
             'INDEX="${SLURM_ARRAY_TASK_ID:-0}"',
             'OUT="$FOLDER/task-$INDEX"',
             'mkdir -p "$OUT"',
             "",
             "case \"$INDEX\" in"]
    for index, task in enumerate(staged(tasks, folder)):
        if task.image is None:  # natively, with the node's interpreter and the copies in the folder
            name = pull = ""
            runtime, argv = "native", node_argv(task)
        else:
            name = container_name(folder, index)
            pull = task.image if is_registry_ref(task.image) else ""
            runtime, argv = "docker", docker_run_argv(task)
            argv[3:3] = ["--name", name]  # after `docker run --rm`
        lines += [f"  {index})  # {task.name}",
                  f"    NAME={shlex.quote(name)}",
                  f"    PULL={shlex.quote(pull)}",
                  f"    RUNTIME={runtime}",
                  f"    set -- {shlex.join(argv)} ;;"]
    lines += ['  *) echo "no task $INDEX in this submission" >&2; exit 2 ;;',
              "esac",
              "",
              "# Where it runs: the node, its first GPU and driver (when nvidia-smi is there).",
              'gpu=""; driver=""',
              "if command -v nvidia-smi >/dev/null 2>&1; then",
              "  line=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null"
              " | head -n1 | tr -d '\"\\\\')",
              '  gpu="${line%%,*}"; driver="${line##*, }"',
              "fi",
              "host=$(hostname | tr -d '\"\\\\')",
              "printf '{\"host\": \"%s\", \"gpu\": \"%s\", \"driver\": \"%s\", \"runtime\": \"%s\"}\\n'"
              ' "$host" "$gpu" "$driver" "$RUNTIME" >"$OUT/where.json"',
              "",
              "# Cancelled or out of time (TERM), or the limit is near (USR1): say so, and remove the",
              "# container: the engine, not this job, runs it, so Slurm's kill would not reach it (a",
              "# native command is this job's own child: Slurm's kill reaches it).",
              'stop() { echo "$1" >"$OUT/signal"; [ -z "$NAME" ] || docker rm -f "$NAME" >/dev/null 2>&1; }',
              "trap 'stop TERM' TERM",
              "trap 'echo USR1 >\"$OUT/signal\"' USR1",
              'if [ -n "$PULL" ] && ! docker pull -q "$PULL" >&2; then',
              '  echo "docker pull $PULL failed on $host" >"$OUT/stderr"; echo 125 >"$OUT/exit_code"; exit 1',
              "fi",
              '"$@" >"$OUT/stdout" 2>"$OUT/stderr" &',
              "child=$!",
              "# A trapped signal interrupts wait; wait again until the client is gone, then read its code.",
              'while kill -0 "$child" 2>/dev/null; do wait "$child"; done',
              'wait "$child"; code=$?',
              'echo "$code" >"$OUT/exit_code.tmp" && mv "$OUT/exit_code.tmp" "$OUT/exit_code"',
              'exit "$code"']
    return "\n".join(lines) + "\n"
