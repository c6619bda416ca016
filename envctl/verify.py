"""The verify workflow, written once for every place it runs: the spec and its current lock,
the image built from them, the probe as a task for an executor (the local engine today; a
Slurm or Kubernetes executor the same way), the report, and its record.

``envctl verify`` and ``envctl bench compare --run`` call ``verify_image``; the CLI only parses
its options and renders the ``Verification`` this returns.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.catalog import Project
from envctl.lock import LockedEnv
from envctl.probe import ProbeReport
from envctl.spec import ImageSpec


@dataclass
class Verification:
    """One probe run of an image: what was asked, where it ran, what the probe said."""

    spec: ImageSpec
    lock: LockedEnv
    image_id: str
    level: str
    gpus: str
    report: ProbeReport
    started: float
    where: dict[str, Any] = field(default_factory=dict)

    def record(self, *, kind: str = "verify", summary: str | None = None) -> int:
        """Add the run to the records (the report is shown first: a refused record costs no run)."""
        from envctl.records import record_run

        r = self.report
        return record_run(kind=kind, image=self.spec.name, ok=r.ok, image_id=self.image_id,
                          spec_hash=self.spec.content_hash(), lock_hash=self.lock.lock_hash, gpu=r.gpu,
                          driver=r.driver, summary=summary if summary is not None else summarize(r),
                          started=self.started, duration_s=r.seconds, document=r.document)


@dataclass(frozen=True)
class VerifyPlan:
    """What a verification will run, settled before anything runs: every bad name, stale lock
    or missing image is an error here, before progress is shown."""

    spec: ImageSpec
    lock: LockedEnv
    image_id: str
    level: str
    gpus: str
    config: dict[str, Any]
    checks_only: bool
    executor: Any
    target: str = "local"  # the fleet target's name, or where it runs

    @property
    def short_id(self) -> str:
        return self.image_id.split(":")[-1][:12]


def plan_verify(project: Project, name: str, *, executor=None, image: str | None = None,
                gpus: str | None = None, level: str | None = None, checks_only: bool = False,
                target: str | None = None) -> VerifyPlan:
    """The spec, its current lock, the image built from them and the probe's config.

    ``executor``: where the probe's container will run (default: the local engine). ``image``: for
    a remote executor, the registry reference by digest of the pushed image (default: the image
    built locally from the lock). ``gpus`` and ``level`` default to the spec's smoke settings.
    """
    from envctl.build import LABEL_TREE, require_built
    from envctl.executors import LocalEngine
    from envctl.lock import require_current_lock
    from envctl.errors import UsageError
    from envctl.probe import check_gpus, probe_config
    from envctl.spec import LEVELS

    if level is not None and level not in LEVELS:  # before any engine or image: a typo starts no container
        raise UsageError(f"--level {level} is not a probe level", hint=f"use one of: {', '.join(LEVELS)}")
    spec = project.resolve(name)
    gpus = check_gpus(gpus or spec.smoke.gpus)
    level = level or spec.smoke.level
    lock = require_current_lock(spec, project.lock_path(spec.name))
    executor = executor or LocalEngine()
    if image is not None:  # pushed from this lock's build; its tree label stays with the local image
        config = probe_config(spec, lock, gpus=gpus, level=level)
        return VerifyPlan(spec, lock, image, level, gpus, config, checks_only, executor, target or executor.kind)
    built = require_built(executor.engine, spec, lock)
    config = probe_config(spec, lock, gpus=gpus, level=level, env_tree=built.labels.get(LABEL_TREE))
    return VerifyPlan(spec, lock, built.id, level, gpus, config, checks_only, executor, target or executor.kind)


def probe_task_of(plan: VerifyPlan, config_dir: Path):
    """The plan's probe as a task, labelled with the image, its lock and the target."""
    from envctl.executors import workflow_labels
    from envctl.probe import probe_task

    return probe_task(plan.image_id, plan.config, config_dir, gpus=plan.gpus, level=plan.level,
                      checks_only=plan.checks_only,
                      labels=workflow_labels(image=plan.spec.name, lock_hash=plan.lock.lock_hash, target=plan.target))


def dry_run(plan: VerifyPlan) -> str:
    """What ``--dry-run`` prints: the executor's plan for the probe task (the ``docker run`` line,
    the sbatch script, the Job manifests), nothing submitted."""
    with tempfile.TemporaryDirectory(prefix="envctl-probe-") as tmp:
        return plan.executor.plan([probe_task_of(plan, Path(tmp))])


def run_verify(plan: VerifyPlan, *, progress: Callable[[str], None] = lambda _m: None) -> Verification:
    """Run the planned probe where the plan's executor runs it."""
    from envctl.executors import run_tasks
    from envctl.probe import report_from

    started = time.time()
    progress(f"running the probe ({plan.executor.describe()})")
    with tempfile.TemporaryDirectory(prefix="envctl-probe-") as tmp:
        [result] = run_tasks(plan.executor, [probe_task_of(plan, Path(tmp))], progress=progress)
    report = report_from(result, plan.image_id)
    return Verification(plan.spec, plan.lock, plan.image_id, plan.level, plan.gpus, report, started, result.where)


def verify_image(project: Project, name: str, *, executor=None, gpus: str | None = None,
                 level: str | None = None, checks_only: bool = False,
                 progress: Callable[[str], None] = lambda _m: None) -> Verification:
    """``plan_verify`` then ``run_verify``."""
    plan = plan_verify(project, name, executor=executor, gpus=gpus, level=level, checks_only=checks_only)
    return run_verify(plan, progress=progress)


def summarize(report: ProbeReport) -> str:
    """The line a record keeps: the failed checks, or the tally."""
    failed = report.failed
    if not failed:
        return f"{len(report.checks)} checks passed, {len(report.benchmarks)} benchmark rows"
    return "; ".join(f"{c['name']}: {c['message']}" for c in failed)[:500]
