"""The smoke workflow: the probe in an interpreter rather than an image -- the host's python3, a
prefix made by ``envctl setup``, or a Slurm node's own Python (nodes without a container
runtime) -- as a task without an image for an executor, its report, and its record with where it
ran.

Plan, then run: ``plan_smoke`` settles every error (a bad ``--gpus``, a stale lock, an
interpreter that cannot import torch, a Slurm option that is no Slurm value) before anything
runs; ``run_smoke`` runs the probe through the plan's executor.  ``envctl smoke`` and ``envctl
setup`` call this module; the CLI only parses its options and renders what it returns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.catalog import Project
from envctl.errors import UsageError
from envctl.lock import LockedEnv
from envctl.probe import ProbeReport
from envctl.spec import ImageSpec

ON = ("host", "slurm")  # where an interpreter can be probed; an image's probe is envctl verify's


@dataclass(frozen=True)
class SmokePlan:
    """What a smoke run will probe, where, against what (a spec and its lock, or nothing)."""

    python: str  # a path on this host; on Slurm, as given: the node resolves it
    why: str  # why that interpreter: "python3 on PATH, Python 3.11.2"
    spec: ImageSpec | None
    lock: LockedEnv | None
    level: str
    gpus: str
    checks_only: bool
    config: dict[str, Any]
    executor: Any
    target: str | None = None  # "slurm" when it runs there (kept in the record); None on this host

    @property
    def image(self) -> str:
        """The name the record keeps: the spec it was checked against, or "local"."""
        return self.spec.name if self.spec is not None else "local"


@dataclass
class SmokeRun:
    """A finished probe run: its report and where it ran (host, or node and job id)."""

    plan: SmokePlan
    report: ProbeReport
    started: float
    where: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def title(self) -> str:
        """The interpreter, and on Slurm the node that ran it."""
        if self.plan.target is None:
            return self.plan.python
        node = self.where.get("node")
        return f"{self.plan.python} on {self.plan.target}" + (f" ({node})" if node else "")

    def record(self) -> int:
        """Add the run to the records (after it was shown: a refused record costs no run)."""
        from envctl.records import record_run
        from envctl.verify import summarize

        r = self.report
        return record_run(kind="smoke", image=self.plan.image, ok=r.ok, image_id=self.plan.python, gpu=r.gpu,
                          driver=r.driver, summary=summarize(r), started=self.started, duration_s=r.seconds,
                          document=r.document, target=self.plan.target,
                          where={k: v for k, v in self.where.items() if v not in (None, "")} or None)


def plan_smoke(project: Project | None, *, python: str | None = None, image: str | None = None,
               on: str | None = None, options: Mapping[str, Any] | None = None, gpus: str = "all",
               level: str | None = None, checks_only: bool = False) -> SmokePlan:
    """The interpreter, where it runs and what the probe expects.

    ``image``: check against that spec and its current lock (``project`` found when None).
    ``on``: "host" (default) or "slurm" with verify's Slurm ``options`` (partition, gres, ...,
    wait), checked as verify checks them.  ``level`` defaults to the spec's, else quick.
    """
    from envctl.probe import check_gpus, probe_config

    check_gpus(gpus)
    target, executor = smoke_executor(on=on, options=options or {})
    spec = lock = None
    if image is not None:
        from envctl.catalog import find_project
        from envctl.lock import require_current_lock

        project = project or find_project()
        spec = project.resolve(image)
        lock = require_current_lock(spec, project.lock_path(spec.name))
    level = level or (spec.smoke.level if spec is not None else "quick")
    if target is None:
        python, why = find_interpreter(python)
    elif python:  # the node's interpreter: nothing on this host can say whether it has torch
        python, why = os.path.expanduser(python), "given by --python"  # a home the nodes share
    else:
        python, why = "python3", "python3 on the node's PATH"
    return SmokePlan(python, why, spec, lock, level, gpus, checks_only,
                     probe_config(spec, lock, gpus=gpus, level=level), executor, target)


def smoke_executor(*, on: str | None, options: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The target's name (None on this host) and the executor for ``--on``; Slurm's options go
    through the fleet's checks, as ``verify --on slurm`` takes them."""
    from envctl.executors import HostExecutor
    from envctl.fleet import executor_for, target_from_options

    if on is not None and on not in ON:
        raise UsageError(f"--on {on}: smoke probes an interpreter on the host or on a Slurm node",
                         hint="use --on host or --on slurm; the probe in an image: envctl verify NAME --on " + on)
    if on == "slurm":
        target = target_from_options("slurm", options)
        return target.name, executor_for(target)
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} needs --on slurm")
    return None, HostExecutor()


def run_smoke(plan: SmokePlan, *, progress: Callable[[str], None] = lambda _m: None) -> SmokeRun:
    """Run the planned probe where the plan's executor runs it; ProbeError when it did not run."""
    from envctl.executors import run_tasks
    from envctl.probe import probe_task, report_from

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="envctl-probe-") as tmp:  # the config travels from here
        task = probe_task(None, plan.config, Path(tmp), python=plan.python, gpus=plan.gpus, level=plan.level,
                          checks_only=plan.checks_only)
        [result] = run_tasks(plan.executor, [task], progress=progress)
    return SmokeRun(plan, report_from(result, plan.python), started, dict(result.where))


def find_interpreter(python: str | None) -> tuple[str, str]:
    """The interpreter on this host to probe and why that one; a usage error naming it when it
    cannot work (no such file, no torch)."""
    if python is None:
        found, why = shutil.which("python3"), "python3 on PATH"
        if found is None:
            raise UsageError("no --python given and no python3 on PATH",
                             hint="give the interpreter to probe: --python /path/to/bin/python")
    elif os.sep in python or python.startswith("~"):
        found, why = str(Path(python).expanduser()), "given by --python"
        if not Path(found).is_file() or not os.access(found, os.X_OK):
            raise UsageError(f"--python {python}: " + ("no such file" if not Path(found).exists()
                                                       else "not an executable file"),
                             hint="give the path of a python executable, or a command on PATH such as python3")
    else:
        found, why = shutil.which(python), f"{python} on PATH"
        if found is None:
            raise UsageError(f"--python {python}: no such command on PATH",
                             hint="give the path of a python executable, or a command on PATH such as python3")
    try:
        probe = subprocess.run([found, "-c", "import importlib.util, sys; "
                                "print(sys.version.split()[0], importlib.util.find_spec('torch') is not None)"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = getattr(exc, "strerror", None) or "it did not answer within 60s"
        raise UsageError(f"{found} ({why}) cannot run: {reason}",
                         hint="give --python the path of a python executable") from None
    answer = probe.stdout.split()
    if len(answer) != 2 or answer[1] not in ("True", "False"):
        return found, why  # not a plain answer (a wrapper, a stand-in): the probe itself will tell
    version, has_torch = answer
    if has_torch != "True":
        raise UsageError(f"{found} ({why}, Python {version}) cannot import torch, which the probe needs",
                         hint="give --python an interpreter with torch, e.g. a prefix made by envctl setup: "
                              "--python ~/envs/NAME/bin/python")
    return found, f"{why}, Python {version}"
