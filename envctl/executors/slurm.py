"""A Slurm cluster as an executor: one sbatch script per submission (a job array for several
tasks), followed with ``squeue`` and collected from the submission's folder.

There is no slurmdbd on the clusters envctl is tested on, so no ``sacct``: ``squeue --states=all``
still lists an ended job for the controller's MinJobAge (300 s by default), and the script
records what Slurm does not keep (the container's exit code, its output, where it ran) in the
folder. The folder lives under ``SlurmOptions.spool`` (default ``<envctl cache>/slurm``), which
the nodes must see: a shared file system on a real cluster, the same disk on a one-node one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.errors import FleetError, UsageError
from envctl.executors.base import Submission, Task, TaskResult, refuse_unsandboxed
from envctl.executors.sbatch import mount_dirs, render_sbatch

# Job states after which nothing more happens (squeue's long names).
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
# How long a job may be missing from squeue right after sbatch (or after the controller forgot
# it) before its tasks are declared lost.
MISSING_GRACE_S = 10.0
# squeue polls start fast (a tiny task ends within a second) and back off to this, so a long
# job costs the controller one query per this many seconds (admins count them).
MAX_POLL_S = 5.0
SLURM_VALUE = re.compile(r"^[^\s'\"\\`$;]+$")
EXAMPLES = {"partition": "gpu", "gres": "gpu:h100:1", "constraint": "h100&ib", "nodelist": "node[01-04]",
            "time": "30 or 1:00:00", "account": "ml-team"}
UNREACHABLE = "Unable to contact slurm controller"
CLIENT_HINT = ("install Slurm's client commands (Debian: slurm-client) with the cluster's slurm.conf, "
               "or run scripts/slurm-up.sh for a one-node cluster")


@dataclass(frozen=True)
class SlurmOptions:
    """The sbatch options people expect; ``wait_s``: how long a job may stay pending."""

    partition: str | None = None
    gres: str | None = None  # gpu[:TYPE]:N
    constraint: str | None = None
    nodelist: str | None = None
    time: str | None = None  # Slurm's forms: MIN, MIN:SEC, H:M:S, D-H
    account: str | None = None
    wait_s: float | None = None
    spool: Path | None = None  # the submission folders' root (default <envctl cache>/slurm)

    def __post_init__(self) -> None:
        # Each value becomes an #SBATCH line: a space, quote or newline would change the script.
        for key in ("partition", "gres", "constraint", "nodelist", "time", "account"):
            value = getattr(self, key)
            if value is not None and (not value or not SLURM_VALUE.match(value)):
                raise UsageError(f"slurm {key} {value!r} is not a Slurm value (empty, or a space, quote or "
                                 f"control character in it)", hint=f"give {key} as Slurm writes it, e.g. "
                                 f"{EXAMPLES[key]}")
        if self.wait_s is not None and not self.wait_s > 0:
            raise UsageError(f"slurm wait {self.wait_s!r} is not a positive number of seconds",
                             hint="give --wait SECONDS, e.g. 600")


@dataclass(frozen=True)
class JobRow:
    """One array task as squeue shows it."""

    state: str
    reason: str
    node: str
    limit: str
    elapsed: str


class SlurmExecutor:
    """Tasks as one sbatch job (an array for several), run through the node's Docker engine (a
    task without an image: natively, by the node's interpreter).  Each result's ``where``: executor, job_id (``ID`` or ``ID_INDEX``), node, gpu, driver, runtime."""

    kind = "slurm"

    def __init__(self, options: SlurmOptions | None = None, *, poll_s: float = 0.25) -> None:
        self.options = options or SlurmOptions()
        self.poll_s = poll_s

    @property
    def spool(self) -> Path:
        if self.options.spool is not None:
            return self.options.spool
        from envctl.fsio import default_root

        return default_root() / "slurm"

    def describe(self) -> str:
        o = self.options
        parts = [f"{key} {value}" for key, value in (("partition", o.partition), ("gres", o.gres),
                                                      ("constraint", o.constraint), ("nodes", o.nodelist))
                 if value]
        return "Slurm" + (f" ({', '.join(parts)})" if parts else " (default partition)")

    def plan(self, tasks: Sequence[Task]) -> str:
        """The sbatch script ``submit`` would write (its folder named at submission)."""
        refuse_unsandboxed(tasks, where="a Slurm node")
        return render_sbatch(tasks, self.options, self.spool / "SUBMISSION", job_name=job_name(tasks))

    def submit(self, tasks: Sequence[Task]) -> Submission:
        """Copy the mounts into a new folder, write the script there and ``sbatch`` it."""
        refuse_unsandboxed(tasks, where="a Slurm node")
        sbatch = self._tool("sbatch")
        folder = self.spool / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)
        try:
            for source, rel in mount_dirs(tasks).items():
                if source.is_dir():
                    shutil.copytree(source, folder / rel)
                else:
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, folder / rel)
            script = folder / "job.sbatch"
            script.with_suffix(".tmp").write_text(render_sbatch(tasks, self.options, folder, job_name=job_name(tasks)))
            script.with_suffix(".tmp").rename(script)
            out = self._run([sbatch, "--parsable", str(script)], f"sbatch refused {job_name(tasks)}")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a refused job leaves no folder behind
            raise
        job_id = out.strip().split(";")[0]  # --parsable: ID or ID;CLUSTER
        (folder / "job_id").write_text(job_id + "\n")
        handles = {t.name: f"{job_id}_{i}" if len(tasks) > 1 else job_id for i, t in enumerate(tasks)}
        return Submission(self.kind, job_id, list(tasks), folder, handles)

    def wait(self, submission: Submission, *, timeout: float | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> list[TaskResult]:
        """Poll squeue until every task ended; then read each task's folder."""
        start = time.monotonic()
        results: dict[int, TaskResult] = {}
        seen: dict[int, str] = {}
        last_seen: dict[int, float] = {}  # when squeue last listed the task: a job may drop out late
        interval = self.poll_s
        while True:
            rows = self._rows(submission.id)
            now = time.monotonic()
            for index, task in enumerate(submission.tasks):
                if index in results:
                    continue
                row = rows.get(index)
                if row is None:
                    gone_for = now - last_seen.get(index, start)
                    if (submission.folder / f"task-{index}" / "exit_code").exists() or gone_for > MISSING_GRACE_S:
                        results[index] = self._collect(submission, index, JobRow("UNKNOWN", "", "", "", ""))
                    continue
                last_seen[index] = now
                if seen.get(index) != row.state:
                    seen[index] = row.state
                    on = f" on {row.node}" if row.node else f" ({row.reason})" if row.reason not in ("", "None") else ""
                    progress(f"slurm job {submission.handles[task.name]} ({task.name}) {row.state.lower()}{on}")
                if row.state in ENDED:
                    results[index] = self._collect(submission, index, row)
            if len(results) == len(submission.tasks):
                return [results[i] for i in range(len(submission.tasks))]
            waited = now - start
            pending = [rows[i] for i in range(len(submission.tasks)) if i not in results and i in rows
                       and rows[i].state == "PENDING"]
            wait_s = self.options.wait_s
            if pending and wait_s is not None and waited > wait_s:
                self.cancel(submission)
                raise FleetError(f"slurm job {submission.id} still pending after {wait_s:g}s: "
                                 f"{pending[0].reason}{self._unavailable_nodes()}; cancelled it",
                                 hint="free or resume the nodes, ask for another --partition/--gres/--nodelist, "
                                      "or wait longer with --wait",
                                 results=[results[i] for i in sorted(results)])
            if timeout is not None and waited > timeout:
                self.cancel(submission)
                raise FleetError(f"slurm job {submission.id} did not finish in {timeout:g}s; cancelled it",
                                 hint="give it more time (--time, --wait)",
                                 results=[results[i] for i in sorted(results)])
            time.sleep(interval)
            interval = min(interval * 1.3, MAX_POLL_S)

    def cancel(self, submission: Submission) -> list[str]:
        """``scancel`` the job; the names of its tasks that were pending or running. Never raises:
        it runs while another error or an interrupt unwinds."""
        try:
            rows = self._rows(submission.id)
            self._run([self._tool("scancel"), submission.id], f"scancel {submission.id} failed")
        except FleetError:
            return []
        return [t.name for i, t in enumerate(submission.tasks) if i in rows and rows[i].state in ACTIVE]

    # -- following and collecting ----------------------------------------------------------

    def _rows(self, job_id: str) -> dict[int, JobRow]:
        """The job's array tasks by index (a job that is no array: index 0), ended ones too."""
        squeue = self._tool("squeue")
        proc = self._call([squeue, "--noheader", "--array", "--states=all", f"--jobs={job_id}",
                           "--format=%K|%T|%r|%N|%l|%M"])
        if proc.returncode != 0:
            if "Invalid job id" in proc.stderr:  # forgotten by the controller (MinJobAge)
                return {}
            raise FleetError(f"squeue could not follow slurm job {job_id}: {last_line(proc.stderr)}",
                             hint="check the controller with `scontrol ping`")
        rows = {}
        for line in proc.stdout.splitlines():
            fields = line.split("|")
            if len(fields) != 6:
                continue
            index = int(fields[0]) if fields[0].isdigit() else 0  # N/A: a job that is no array
            rows[index] = JobRow(*(f.strip() for f in fields[1:]))
        return rows

    def _collect(self, submission: Submission, index: int, row: JobRow) -> TaskResult:
        """A task's result from its folder and its last squeue row."""
        task = submission.tasks[index]
        handle = submission.handles[task.name]
        out = submission.folder / f"task-{index}"
        text = {name: read_text(out / name) for name in ("stdout", "stderr", "exit_code", "where.json", "signal")}
        exit_code = int(text["exit_code"]) if text["exit_code"].strip().lstrip("-").isdigit() else None
        try:
            found: dict[str, Any] = json.loads(text["where.json"]) if text["where.json"] else {}
        except ValueError:
            found = {}
        node = found.get("host") or row.node
        where = {"executor": self.kind, "job_id": handle, "node": node, "gpu": found.get("gpu") or None,
                 "driver": found.get("driver") or None, "runtime": found.get("runtime", "docker")}
        error = None
        if row.state == "TIMEOUT":
            error = f"slurm job {handle} ({task.name}) was killed by its time limit ({row.limit}) on {node}"
        elif row.state == "NODE_FAIL":
            error = f"node {node} failed while running slurm job {handle} ({task.name})"
        elif row.state in ("CANCELLED", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY"):
            error = f"slurm job {handle} ({task.name}) ended {row.state}" + (f" on {node}" if node else "")
        elif exit_code is None:
            log = submission.folder / (f"slurm-{submission.id}_{index}.err" if len(submission.tasks) > 1
                                       else f"slurm-{submission.id}.err")
            error = f"slurm job {handle} ({task.name}) ended {row.state} without the container's exit code; see {log}"
        return TaskResult(task, exit_code, text["stdout"], text["stderr"], timed_out=row.state == "TIMEOUT",
                          oom_killed=row.state == "OUT_OF_MEMORY", seconds=elapsed_s(row.elapsed),
                          where=where, error=error)

    def _unavailable_nodes(self) -> str:
        """'; node vm down: Reason' for each down, drained or failing node of the partition."""
        args = [self._tool("sinfo"), "--noheader", "--Node", "--format=%N|%T|%E"]
        if self.options.partition:
            args.append(f"--partition={self.options.partition}")
        proc = self._call(args)
        notes = []
        for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
            node, state, reason = (line.split("|") + ["", ""])[:3]
            if state.startswith(("down", "drain", "fail", "inval")):
                notes.append(f"; node {node} {state}" + (f": {reason}" if reason and reason != "none" else ""))
        return "".join(dict.fromkeys(notes))

    # -- the client commands ---------------------------------------------------------------

    def _tool(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise FleetError(f"{name} is not on PATH: this machine cannot submit to Slurm", hint=CLIENT_HINT)
        return path

    def _call(self, argv: list[str]) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FleetError(f"{Path(argv[0]).name} got no answer from the Slurm controller in 120s",
                             hint="check the controller with `scontrol ping`") from None
        if proc.returncode != 0 and UNREACHABLE in proc.stderr:
            raise FleetError(f"the Slurm controller does not answer ({Path(argv[0]).name}: {last_line(proc.stderr)})",
                             hint="check that slurmctld runs (`scontrol ping`) and that SLURM_CONF names this cluster")
        return proc

    def _run(self, argv: list[str], what: str) -> str:
        proc = self._call(argv)
        if proc.returncode != 0:
            raise FleetError(f"{what}: {last_line(proc.stderr) or f'exit code {proc.returncode}'}",
                             hint="check the options against the cluster's nodes (sinfo -o '%P %N %G %f')")
        return proc.stdout


def job_name(tasks: Sequence[Task]) -> str:
    return f"envctl-{tasks[0].name}" if len(tasks) == 1 else f"envctl-{len(tasks)}-tasks"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("sbatch: error: ").removeprefix("Batch job submission failed: ") if lines else ""


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def elapsed_s(text: str) -> float:
    """squeue's elapsed time ([D-]H:MM:SS or M:SS) in seconds; 0 when it is not one."""
    days, _, clock = text.rpartition("-")
    try:
        parts = [int(p) for p in clock.split(":")]
        seconds = 0
        for p in parts:
            seconds = seconds * 60 + p
        return float(seconds + int(days or 0) * 86400)
    except ValueError:
        return 0.0

