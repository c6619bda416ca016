"""The compat run workflow, written once for every place it runs: the artifacts and the targets
they run under (built images, local interpreters), each image's runner as a task for an executor
(the local engine, a Slurm or Kubernetes target of the fleet), the outcomes, and their record
with the target and where it ran.

``plan_compat`` settles every error before anything runs (a bad option, an unknown artifact or
target, a stale lock, an image never built or never pushed).  On a fleet target the image runs
by its registry reference by digest, as verify's do (``envctl.verify.pushed_image``), and the
runner, the manifest and the selected artifacts travel with the job: nothing of envctl is
installed where it runs.  All targets are submitted before any is waited for (``run_compat``).
``envctl compat run`` and ``compat check`` call this module; the CLI only parses and renders.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.artifacts import Artifact, Registry
from envctl.compat.loader import Loader
from envctl.compat.results import Outcome
from envctl.compat.targets import Target


@dataclass(frozen=True)
class Placement:
    """One target and where it runs: an image on an executor, or a local interpreter (no executor)."""

    target: Target  # an image by id (local) or by registry reference (a fleet target), or python:PATH
    executor: Any | None = None
    on: str | None = None  # the fleet target's name; None for this machine
    lock_hash: str | None = None  # the image's lock (labels of a remote job)

    @property
    def where(self) -> str:
        return f"{self.target.label} on {self.on}" if self.on else self.target.label


@dataclass(frozen=True)
class CompatPlan:
    """What a compat run will do, settled before anything runs."""

    placements: tuple[Placement, ...]
    artifacts: tuple[Artifact, ...]
    store: Registry
    timeout: float
    device: str
    runtimes: tuple[str, ...]
    trust: bool = False

    @property
    def remote(self) -> bool:
        return any(p.on is not None for p in self.placements)


@dataclass
class CompatRun:
    """A run's outcomes (target by target, runtime by runtime, artifact by artifact), the libtorch
    loaders it compiled, and a line for each fleet target whose runner did not run."""

    outcomes: list[Outcome]
    loaders: list[tuple[str, Loader]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def resolve_targets(images: Sequence[str], pythons: Sequence[str]) -> tuple[list[Target], Any]:
    """Targets on this machine from image names (built images; ``python:PATH`` accepted too) and
    interpreters, and the engine they need (None when no image is named)."""
    from envctl.compat.targets import image_target, python_target

    out, engine, project = [], None, None
    names = [n for n in images if not n.startswith("python:")]
    if names:
        from envctl.catalog import find_project

        project = find_project()
        for name in names:
            project.resolve(name)  # an impossible name is answered before any engine is asked
    for name in images:
        if name.startswith("python:"):
            out.append(python_target(name.split(":", 1)[1]))
            continue
        if engine is None:
            from envctl.engine import Engine

            engine = Engine.connect()
        out.append(image_target(project, engine, name))
    out += [python_target(p) for p in pythons]
    return out, engine


def plan_compat(store: Registry, *, images: Sequence[str] = (), pythons: Sequence[str] = (),
                artifacts: Sequence[str] = (), timeout: float = 60.0, device: str = "auto",
                runtimes: Sequence[str] = ("python",), trust: bool = False, targets: Sequence[Any] = (),
                registry: str | None = None, push: bool = True, gate: bool = False,
                progress: Callable[[str], None] = lambda _m: None) -> CompatPlan:
    """The artifacts of ``store`` (all, or those named) under each image and interpreter.

    ``targets``: fleet targets (``envctl.fleet.Target``) to run the images on, from the lock's last
    push (with ``registry``: pushed there first; ``push`` False, for a dry run: never); none for
    this machine as ever.  ``gate``: the upgrade gate, which refuses to check no artifact."""
    from envctl.compat.targets import DEVICES, RUNTIMES, check_choice, check_timeout
    from envctl.errors import UsageError

    check_timeout(timeout)
    if not images and not pythons:
        raise UsageError("name at least one --image or --python")
    check_choice("--device", device, DEVICES)
    for runtime in runtimes:
        check_choice("--runtime", runtime, RUNTIMES)
    runtimes = tuple(dict.fromkeys(runtimes))
    arts = store.select(list(artifacts))
    if gate and not arts:
        raise UsageError("no artifacts registered: the gate would check nothing",
                         hint="register them first: envctl artifacts add FILE.pt --inputs SAMPLE.pt")
    if targets:
        placements = _fleet_placements(images, pythons, runtimes, targets, registry=registry, push=push,
                                       progress=progress)
    else:
        found, engine = resolve_targets(images, pythons)
        executor = None
        if engine is not None:
            from envctl.executors import LocalEngine

            executor = LocalEngine(engine)
        placements = tuple(Placement(t, executor if t.kind == "image" else None) for t in found)
    return CompatPlan(placements, tuple(arts), store, timeout, device, runtimes, trust)


def _fleet_placements(images: Sequence[str], pythons: Sequence[str], runtimes: tuple[str, ...],
                      targets: Sequence[Any], *, registry: str | None, push: bool,
                      progress: Callable[[str], None]) -> tuple[Placement, ...]:
    """Each image (by its push) on each fleet target; what only this machine can run is refused."""
    from envctl.catalog import find_project
    from envctl.errors import UsageError
    from envctl.fleet import executor_for
    from envctl.lock import require_current_lock
    from envctl.verify import pushed_image

    local = list(pythons) + [n for n in images if n.startswith("python:")]
    if local:
        raise UsageError(f"--python {local[0].removeprefix('python:')} runs on this machine; --on, --target and "
                         f"--all-targets run images elsewhere",
                         hint="check local interpreters in a run of their own, without --on/--target")
    if "libtorch" in runtimes:
        raise UsageError("--runtime libtorch runs only on this machine's engine (its loader is compiled "
                         "in a local container)", hint="use --runtime python with --on/--target")
    project = find_project()
    executors = [(t, executor_for(t)) for t in targets]
    remote = any(executor.kind != "local" for _, executor in executors)
    here = next((executor for _, executor in executors if executor.kind == "local"), None)
    images_of: dict[str, list[tuple[Target, str]]] = {"local": [], "remote": []}
    for name in dict.fromkeys(images):
        spec = project.resolve(name)
        lock = require_current_lock(spec, project.lock_path(spec.name))
        if remote:
            ref, _ = pushed_image(project, spec.name, lock.lock_hash, registry=registry, push=push, labels=False,
                                  progress=progress)
            images_of["remote"].append((Target(label=spec.name, kind="image", ref=ref), lock.lock_hash))
        if here is not None:  # a target `on: local` runs the image built here, as verify's does
            from envctl.compat.targets import image_target

            images_of["local"].append((image_target(project, here.engine, spec.name), lock.lock_hash))
    return tuple(Placement(target, executor, t.name, lock_hash) for t, executor in executors
                 for target, lock_hash in images_of["local" if executor.kind == "local" else "remote"])


def run_compat(plan: CompatPlan, *, progress: Callable[[str], None] = lambda _m: None) -> CompatRun:
    """Every artifact under every placement and runtime.  On this machine a target whose runner
    fails raises its error (ProbeError); on the fleet, its line is kept in ``errors`` and the
    other targets' outcomes stand."""
    if plan.remote:
        return _run_on_fleet(plan, progress)
    from envctl.compat.execute import run
    from envctl.compat.loader import ensure_loader

    arts = list(plan.artifacts)
    done = CompatRun([])
    for p in plan.placements:
        engine = p.executor.engine if p.executor is not None else None
        for runtime in plan.runtimes:
            loader = None
            if runtime == "libtorch" and arts:
                progress(f"preparing the libtorch loader of {p.target.label}")
                loader = ensure_loader(p.target, engine=engine)
                if loader.built:
                    done.loaders.append((p.target.label, loader))
            progress(f"checking {len(arts)} artifacts under {p.target.label} ({runtime})")
            done.outcomes += run(p.target, arts, plan.store, engine=engine, timeout=plan.timeout,
                                 device=plan.device, runtime=runtime, loader=loader, trust=plan.trust)
    return done


def _run_on_fleet(plan: CompatPlan, progress: Callable[[str], None]) -> CompatRun:
    """One runner task per placement, all submitted before any is waited for."""
    from envctl.compat.execute import outcomes_from
    from envctl.errors import ProbeError
    from envctl.executors import run_each

    arts = list(plan.artifacts)
    done = CompatRun([])
    if not arts:
        return done
    for art in arts:  # a swapped or missing stored file must not earn a verdict under the good hash
        plan.store.verify(art)
    with tempfile.TemporaryDirectory(prefix="envctl-compat-") as tmp:
        pairs = [(p.executor, task) for p, task in _tasks(plan, Path(tmp))]
        for p in plan.placements:
            progress(f"running the compat runner ({p.where})")
        results = run_each(pairs, progress=progress)
    for p, result in zip(plan.placements, results):
        try:
            done.outcomes += outcomes_from(result, p.target, arts, runtime="python", device=plan.device,
                                           where=p.where, on=p.on)
        except ProbeError as exc:
            done.errors.append(exc.message)
    return done


def _tasks(plan: CompatPlan, tmp: Path) -> list[tuple[Placement, Any]]:
    """The runner task of each placement: the selected artifacts staged once under ``tmp``, each
    task's manifest in a folder of its own (each travels with its job)."""
    from envctl.compat.execute import compat_task, stage
    from envctl.executors import workflow_labels

    arts = list(plan.artifacts)
    root = stage(plan.store, arts, tmp / "artifacts")
    out = []
    for i, p in enumerate(plan.placements):
        folder = tmp / f"task-{i}"
        folder.mkdir()
        labels = workflow_labels(image=p.target.label, lock_hash=p.lock_hash or "", target=p.on or "local")
        out.append((p, compat_task(p.target, arts, plan.store, folder, artifacts_root=root, timeout=plan.timeout,
                                   device=plan.device, runtime="python", gpus=fleet_gpus(p.executor, plan.device),
                                   labels=labels)))
    return out


def fleet_gpus(executor: Any, device: str) -> str | None:
    """The GPUs a runner task asks a fleet target for: none on the CPU; with ``--device cuda``
    always; with ``auto``, when the target is a GPU pool (a Slurm GRES of GPUs, a Kubernetes GPU
    count or product), where the runner then finds them."""
    if device == "cpu":
        return None
    if executor.kind == "local":
        from envctl.compat.execute import gpus_for

        return gpus_for(executor.engine, device)
    options = executor.options
    if executor.kind == "slurm":
        return "all" if device == "cuda" or (options.gres or "").startswith("gpu") else None
    if executor.kind == "kubernetes":
        if options.gpus:
            return str(options.gpus)
        return "1" if device == "cuda" or options.gpu_product else None
    return "all" if device == "cuda" else None


def dry_run(plan: CompatPlan) -> str:
    """What ``--dry-run`` prints: each executor's plan of its runner task (the ``docker run`` line,
    the sbatch script, the Job manifests), nothing submitted; a local interpreter is named."""
    if not plan.artifacts:
        return "# no artifacts registered: nothing would run\n"
    with tempfile.TemporaryDirectory(prefix="envctl-compat-") as tmp:
        if plan.remote:
            return "".join(p.executor.plan([task]) for p, task in _tasks(plan, Path(tmp)))
        from envctl.compat.execute import compat_task, gpus_for

        out = []
        for i, p in enumerate(plan.placements):
            if p.executor is None:
                out.append(f"# {p.target.label}: the runner runs in this machine's sandbox (bubblewrap or unshare)\n")
                continue
            for runtime in plan.runtimes:
                folder = Path(tmp) / f"task-{i}-{runtime}"
                folder.mkdir()
                task = compat_task(p.target, list(plan.artifacts), plan.store, folder,
                                   artifacts_root=plan.store.root, timeout=plan.timeout, device=plan.device,
                                   runtime=runtime, gpus=gpus_for(p.executor.engine, plan.device))
                out.append(p.executor.plan([task]))
        return "".join(out)
