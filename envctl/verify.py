"""The verify workflow, written once for every place it runs: the spec and its current lock,
the image built from them, the probe as a task for an executor (the local engine, a Slurm or
Kubernetes target of the fleet), the report, and its record with the target and where it ran.

A remote executor runs the image by its registry reference by digest: the last recorded push of
the current lock (``envctl push``), or a push made first when a registry is given; nothing of
the image need be in a local engine.  Several targets are submitted at once and collected
one by one (``run_verifications``).  ``envctl verify`` and ``envctl bench compare --run`` call
this module; the CLI only parses its options and renders what it returns.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.catalog import Project
from envctl.lock import LockedEnv
from envctl.probe import ProbeReport
from envctl.spec import ImageSpec


# A registry reference by digest as envctl push records it: HOST[:PORT]/REPO[/...]@sha256:64 hex.
PUSHED_REF = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?"
                        r"(/[a-z0-9]+([._-][a-z0-9]+)*)+@sha256:[0-9a-f]{64}")


@dataclass
class Verification:
    """One probe run of an image: what was asked, where it ran, what the probe said."""

    spec: ImageSpec
    lock: LockedEnv
    image_id: str
    level: str
    gpus: str
    report: ProbeReport | None  # None when the probe never ran or printed no document (``error``)
    started: float
    where: dict[str, Any] = field(default_factory=dict)
    target: str | None = None  # the fleet target; None for the local engine by default
    error: str | None = None  # the one line saying why there is no report

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def record(self, *, kind: str = "verify", summary: str | None = None) -> int:
        """Add the run to the records (the report is shown first: a refused record costs no run)."""
        from envctl.records import record_run

        r = self.report
        where = {k: v for k, v in self.where.items() if v not in (None, "")} or None
        common = dict(kind=kind, image=self.spec.name, image_id=self.image_id, spec_hash=self.spec.content_hash(),
                      lock_hash=self.lock.lock_hash, started=self.started, target=self.target, where=where)
        if r is None:
            return record_run(ok=False, summary=self.error, gpu=self.where.get("gpu"),
                              driver=self.where.get("driver"), duration_s=time.time() - self.started, **common)
        return record_run(ok=r.ok, gpu=r.gpu or self.where.get("gpu"), driver=r.driver or self.where.get("driver"),
                          summary=summary if summary is not None else summarize(r), duration_s=r.seconds,
                          document=r.document, **common)


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
    target: str | None = None

    @property
    def short_id(self) -> str:
        return self.image_id.split(":")[-1][:12]

    @property
    def where(self) -> str:
        """The target's name, or the executor's own description."""
        return self.target or self.executor.describe()


def plan_verify(project: Project, name: str, *, executor=None, image: str | None = None,
                gpus: str | None = None, level: str | None = None, checks_only: bool = False,
                target: str | None = None, registry: str | None = None, push: bool = True,
                progress: Callable[[str], None] = lambda _m: None) -> VerifyPlan:
    """The spec, its current lock, the image built from them and the probe's config.

    ``executor``: where the probe's container will run (default: the local engine); ``target``
    its fleet name, kept in the record.  ``gpus`` and ``level`` default to the spec's smoke
    settings.  A remote executor runs ``image`` (a registry reference by digest) when given, else
    the lock's last recorded push; with ``registry``, the image is pushed there first (``push``
    False, for a dry run: never; the last push of this lock is planned instead).
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
    if image is not None:  # a reference by digest given: its labels stay with the registry
        image_id, labels = image, {}
    elif executor.kind == "local":
        built = require_built(executor.engine, spec, lock)
        image_id, labels = built.id, built.labels
    else:
        image_id, labels = pushed_image(project, spec.name, lock.lock_hash, registry=registry, push=push,
                                        progress=progress)
    config = probe_config(spec, lock, gpus=gpus, level=level, env_tree=labels.get(LABEL_TREE))
    return VerifyPlan(spec, lock, image_id, level, gpus, config, checks_only, executor, target)


def probe_task_of(plan: VerifyPlan, config_dir: Path):
    """The plan's probe as a task, labelled with the image, its lock and the target."""
    from envctl.executors import workflow_labels
    from envctl.probe import probe_task

    return probe_task(plan.image_id, plan.config, config_dir, gpus=plan.gpus, level=plan.level,
                      checks_only=plan.checks_only,
                      labels=workflow_labels(image=plan.spec.name, lock_hash=plan.lock.lock_hash,
                                             target=plan.target or plan.executor.kind))


def dry_run(plan: VerifyPlan) -> str:
    """What ``--dry-run`` prints: the executor's plan for the probe task (the ``docker run`` line,
    the sbatch script, the Job manifests), nothing submitted."""
    with tempfile.TemporaryDirectory(prefix="envctl-probe-") as tmp:
        return plan.executor.plan([probe_task_of(plan, Path(tmp))])


def plan_verifications(project: Project, name: str, *, targets: Sequence[Any], registry: str | None = None,
                       gpus: str | None = None, level: str | None = None, checks_only: bool = False,
                       push: bool = True, progress: Callable[[str], None] = lambda _m: None) -> list[VerifyPlan]:
    """A plan per fleet target (``envctl.fleet.Target``); the local engine alone when none is named.
    ``push`` False (a dry run): nothing is pushed, the last push of the lock is planned."""
    from envctl.fleet import executor_for

    options = dict(gpus=gpus, level=level, checks_only=checks_only, registry=registry, push=push,
                   progress=progress)
    if not targets:
        return [plan_verify(project, name, **options)]
    return [plan_verify(project, name, executor=executor_for(t), target=t.name, **options) for t in targets]


def pushed_image(project: Project, name: str, lock_hash: str, *, registry: str | None, push: bool = True,
                 labels: bool = True, progress: Callable[[str], None] = lambda _m: None) -> tuple[str, dict[str, str]]:
    """``remote_image`` as a workflow plans it: with ``push`` False (a dry run) nothing is pushed to
    ``registry``, and the last push of the lock is planned instead; one line when there is none."""
    from envctl.errors import NotPushedError

    try:
        return remote_image(project, name, lock_hash, registry=registry if push else None, labels=labels,
                            progress=progress)
    except NotPushedError as exc:  # only "never pushed" gets the dry run's hint; the rest as raised
        if push or registry is None:
            raise
        raise NotPushedError(exc.message, hint=f"a dry run pushes nothing: envctl push {name} --registry "
                                               f"{registry}, then the dry run again") from None


def remote_image(project: Project, name: str, lock_hash: str, *, registry: str | None, labels: bool = True,
                 progress: Callable[[str], None] = lambda _m: None) -> tuple[str, dict[str, str]]:
    """The reference by digest a remote executor runs, and the image's labels (read from the
    registry: no local engine needed; ``labels`` False: not read, none returned).  With
    ``registry`` the image is pushed there first (a no-op when the registry has it); else the
    last recorded push must be of the current lock."""
    from envctl.errors import NotPushedError
    from envctl.records import Records
    from envctl.registry import Registry, RegistryClient

    if registry is not None:
        from envctl.push import plan_push, run_push

        progress(f"pushing {name} to {registry}")
        ref = run_push(plan_push(project, name, registry=registry), progress=progress).ref
    else:
        last = Records().last_push(name)
        if last is None or last["lock_hash"] != lock_hash:
            why = "was never pushed" if last is None else f"was last pushed from another lock ({last['ref']})"
            raise NotPushedError(f"{name} {why}: a remote target runs the image from a registry",
                              hint=f"push it first: envctl push {name} --registry R (or give --registry R)")
        ref = last["ref"]
    if not isinstance(ref, str) or not PUSHED_REF.fullmatch(ref):  # it becomes a job's command line
        from envctl.errors import DamagedRecordsError

        raise DamagedRecordsError(f"the recorded push of {name} is {str(ref)[:120]!r}, "
                                  f"not HOST/REPO@sha256:DIGEST",
                                  hint=f"the records database was altered; push again: envctl push {name} --registry R")
    if not labels:
        return ref, {}
    location, digest = ref.rsplit("@", 1)
    host, repo = location.split("/", 1)
    client = RegistryClient(Registry(host, ""))
    manifest = json.loads(client.manifest(repo, digest)[0])
    config = json.loads(client.blob(repo, manifest["config"]["digest"]))
    return ref, dict((config.get("config") or {}).get("Labels") or {})


def run_verify(plan: VerifyPlan, *, progress: Callable[[str], None] = lambda _m: None) -> Verification:
    """Run the planned probe where the plan's executor runs it; ProbeError when it did not run."""
    [v] = run_verifications([plan], progress=progress, strict=True)
    return v


def run_verifications(plans: Sequence[VerifyPlan], *, progress: Callable[[str], None] = lambda _m: None,
                      strict: bool = False) -> list[Verification]:
    """Each plan's probe on its own executor, all submitted before any is waited for (a queue
    on one target does not hold up the others); a result per plan, in order.  A probe that did
    not run is a Verification with its ``error`` (``strict``: its ProbeError is raised); an
    interrupt cancels every submission."""
    from envctl.errors import ProbeError
    from envctl.executors import run_each
    from envctl.probe import report_from

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="envctl-probe-") as tmp:
        pairs = []
        for i, plan in enumerate(plans):  # each task's config in its own folder: they travel separately
            folder = Path(tmp) / str(i)
            folder.mkdir()
            pairs.append((plan.executor, probe_task_of(plan, folder)))
            progress(f"running the probe ({plan.where})")
        results = run_each(pairs, progress=progress)
    out = []
    for plan, result in zip(plans, results):
        try:
            report, error = report_from(result, plan.image_id if plan.target is None else plan.target), None
            # the probe cannot see which image it runs in; a document saved with --json then names it
            report.document["image"] = {"name": plan.spec.name, "id": plan.image_id}
        except ProbeError as exc:
            if strict:
                raise
            report, error = None, exc.message
        out.append(Verification(plan.spec, plan.lock, plan.image_id, plan.level, plan.gpus, report, started,
                                dict(result.where), plan.target, error))
    return out


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
