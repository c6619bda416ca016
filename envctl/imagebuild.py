"""An image built from its lock, and recorded: the one build workflow behind `envctl build` and
`envctl matrix verify`.  The plan is pure (``envctl.build.plan_build``); this runs it on the
engine and writes the run to the records, a failed build included (at its start time)."""

from __future__ import annotations

import time
from typing import Callable

from envctl.build import BuildResult, build_image, plan_build, rattler_tool
from envctl.cache import PackageCache
from envctl.catalog import Project
from envctl.errors import BuildError
from envctl.fsio import default_root
from envctl.lock import LockedEnv
from envctl.records import record_run
from envctl.spec import ImageSpec


def build_recorded(project: Project, spec: ImageSpec, lock: LockedEnv, engine, *, cache: PackageCache,
                   tag: str | None = None, rebuild: bool = False, no_cache: bool = False,
                   platform: str | None = None, progress: Callable[[str], None] = lambda _m: None,
                   on_line: Callable[[str], None] = lambda _l: None) -> BuildResult:
    """Build ``spec`` from ``lock`` (an identical image already there is reused unless ``rebuild``)
    and record it; a BuildError is recorded as a failed build, then raised as it was."""
    base = engine.image(spec.base)
    plan = plan_build(spec, lock, project=project, tag=tag, source=str(project.root), base_id=base.id if base else "",
                      rattler=rattler_tool(cache, lock.platform) if lock.conda else ("", "", ""),
                      builder=engine.builder())
    started = time.time()
    try:
        result = build_image(engine, plan, cache=cache, log_dir=default_root() / "logs", rebuild=rebuild,
                             no_cache=no_cache, platform=platform, progress=progress, on_line=on_line)
    except BuildError as exc:
        record_run(kind="build", image=spec.name, ok=False, spec_hash=spec.content_hash(), lock_hash=lock.lock_hash,
                   started=started, duration_s=time.time() - started, summary=str(exc))
        raise
    if result.built:
        record_run(kind="build", image=spec.name, ok=True, image_id=result.image.id, started=started,
                   spec_hash=spec.content_hash(), lock_hash=lock.lock_hash, duration_s=result.seconds,
                   summary=f"{result.tag} {result.image.size} bytes", document=result.to_dict())
    return result
