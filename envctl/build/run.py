"""Build with the engine: assemble the context, run the builder, stamp the tree hash.

``build_image`` returns at once when an image with the same spec and lock hashes
exists (a no-op rebuild); otherwise it builds, then reads the layer manifests the
build wrote and stamps their content hash on the image as ``io.envctl.env-tree``
(a label-only step: the layers stay as built).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from envctl.build.context import assemble_context
from envctl.build.layers import MANIFEST_DIR, layer_sizes, merge_manifests, parse_manifests, tree_hash
from envctl.build.plan import LABEL_LOCK_HASH, LABEL_SPEC, LABEL_SPEC_HASH, LABEL_TREE, BuildPlan, default_tag
from envctl.cache import PackageCache
from envctl.engine import Engine, ImageInfo
from envctl.errors import BuildError, EngineError, EnvctlError
from envctl.lock import LockedEnv
from envctl.spec import ImageSpec


@dataclass
class BuildResult:
    image: ImageInfo
    tag: str
    built: bool
    seconds: float
    log_path: Path | None = None
    context_bytes: int = 0
    layers: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"image_id": self.image.id, "tag": self.tag, "built": self.built, "seconds": round(self.seconds, 2),
                "size": self.image.size, "env_tree": self.image.labels.get(LABEL_TREE), "layers": self.layers,
                "labels": self.image.labels, "log": str(self.log_path) if self.log_path else None}


def find_built(engine: Engine, spec: ImageSpec, lock: LockedEnv) -> ImageInfo | None:
    """An existing image built from this spec and lock: the one the last build tagged, else any."""
    tagged = engine.image(default_tag(spec, lock))
    candidates = ([tagged] if tagged else []) + sorted(
        engine.images(f"{LABEL_SPEC}={spec.name}"), key=lambda i: i.created, reverse=True)
    for img in candidates:
        if (img.labels.get(LABEL_SPEC_HASH) == spec.content_hash()
                and img.labels.get(LABEL_LOCK_HASH) == lock.lock_hash):
            return img
    return None


def require_built(engine: Engine, spec: ImageSpec, lock: LockedEnv) -> ImageInfo:
    """``find_built``, or the error that says to build it (verify, bench and compat need one)."""
    image = find_built(engine, spec, lock)
    if image is None:
        raise EnvctlError(f"no image of {spec.name} built from the current spec and lock",
                          hint=f"run: envctl build {spec.name}")
    return image


def image_layers(engine: Engine, image_id: str) -> list[dict]:
    """The environment's layers of a built image with their sizes (empty for other images)."""
    return layer_sizes(engine.history(image_id))


def build_image(engine: Engine, plan: BuildPlan, *, cache: PackageCache, log_dir: Path, rebuild: bool = False,
                no_cache: bool = False, platform: str | None = None, progress: Callable[[str], None] = lambda _m: None,
                on_line: Callable[[str], None] = lambda _l: None) -> BuildResult:
    start = time.monotonic()
    if not rebuild:
        existing = find_built(engine, plan.spec, plan.lock)
        if existing:
            if plan.tag not in existing.tags:
                engine.tag(existing.id, plan.tag)
            return BuildResult(existing, plan.tag, False, time.monotonic() - start,
                               layers=image_layers(engine, existing.id))
    base = engine.image(plan.spec.base)
    if base is None:
        raise EngineError(f"base image {plan.spec.base} not found in the engine",
                          hint="make it with: envctl base" if plan.spec.base.startswith("envctl/")
                          else f"docker pull {plan.spec.base} (or envctl base for the local Debian base)")
    if plan.labels["org.opencontainers.image.base.digest"] not in ("", base.id):
        raise EngineError(f"base image {plan.spec.base} is {base.id}, not the planned "
                          f"{plan.labels['org.opencontainers.image.base.digest']}", hint="plan the build again")
    # The one label that differs between identical builds; passed at build time, not in the Dockerfile.
    labels = {"org.opencontainers.image.created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{plan.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with _context_dir(cache, plan.spec.name) as context:
        size = assemble_context(plan, cache, context, progress=progress)
        progress(f"building {plan.tag} ({size / 1e6:.0f} MB of packages)")
        with log_path.open("w") as log:
            def line(text: str) -> None:
                log.write(text + "\n")
                on_line(text)

            try:
                output = engine.build(context, tag=plan.tag, labels=labels, platform=platform, on_line=line,
                                      no_cache=no_cache)
            except BuildError as exc:
                exc.log_path = str(log_path)
                if "no space left on device" in str(exc).lower() or any(
                        "no space left" in t.lower() for t in exc.tail):
                    exc.hint = "the disk is full: free space (docker system prune) and build again"
                else:
                    exc.hint = f"full log: {log_path}"
                raise
    image_id = output.image_id
    if plan.layers:
        progress("stamping the environment's content hash")
        image_id = stamp_tree(engine, image_id, plan, labels=labels, platform=platform)
    image = engine.image(image_id)  # tagged plan.tag alone: --tag X leaves the default tag where it was
    return BuildResult(image, plan.tag, True, time.monotonic() - start, log_path, size,
                       layers=image_layers(engine, image_id))


@contextmanager
def _context_dir(cache: PackageCache, name: str) -> Iterator[Path]:
    """The image's build context folder, the same path on every build and held by one build at a time.

    BuildKit keeps what it received from a context folder by the folder's path and sends only
    files whose name, size or time changed: the context holds hard links into the package
    cache, so a rebuild after a small pin sends that pin, not the GBs of CUDA libraries.
    """
    import fcntl
    import shutil

    root = cache.root / "contexts"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        context = root / name
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir()
        yield context


def drop_context(cache: PackageCache, name: str) -> None:
    """Remove the image's build context (a sweep never builds the same name twice): its hard
    links would keep on disk the cached files a sweep under --max-disk evicts."""
    import fcntl
    import shutil

    root = cache.root / "contexts"
    if not (root / name).exists():
        return
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(root / name, ignore_errors=True)


def stamp_tree(engine: Engine, image_id: str, plan: BuildPlan, *, labels: dict[str, str],
               platform: str | None) -> str:
    """Label the image with the content hash of its environment tree; returns the new image id."""
    blobs = engine.read_folder(image_id, f"{plan.spec.env_prefix}/{MANIFEST_DIR}")
    try:
        manifests = parse_manifests(blobs)
    except ValueError as exc:
        raise BuildError(f"the build of {plan.tag} wrote a damaged layer manifest: {exc}") from None
    if not manifests:
        raise BuildError(f"the build of {plan.tag} wrote no layer manifests under {MANIFEST_DIR}",
                         hint="was the Dockerfile template changed? (templates/Dockerfile.j2)")
    digest = tree_hash(merge_manifests(manifests))
    # The builder takes FROM by name: give the unstamped image a short-lived one.
    unstamped = f"envctl-unstamped/{plan.spec.name}:{image_id.split(':')[-1][:12]}"
    engine.tag(image_id, unstamped)
    try:
        with tempfile.TemporaryDirectory(prefix="envctl-stamp-") as tmp:
            (Path(tmp) / "Dockerfile").write_text(f"FROM {unstamped}\n")
            stamped = engine.build(Path(tmp), tag=plan.tag, labels={**labels, LABEL_TREE: digest},
                                   platform=platform).image_id
    finally:
        engine.untag(unstamped)
    return stamped
