"""``envctl push``: put a built image in a registry and record it by digest, the reference
remote executors (Slurm, Kubernetes) run.

The engine pushes the layers (with the engine's own login); the registry's API then gets the
image config with the build's clock set to SOURCE_DATE_EPOCH and a manifest naming it
(``envctl.registry``), so one lock pushes one digest whichever build of it is pushed.  A push
the records and the registry both already hold (same lock, same layers, same labels) is not
made again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from envctl.catalog import Project
from envctl.engine import Engine, ImageInfo
from envctl.errors import EnvctlError
from envctl.records import Records
from envctl.registry import LABEL_CREATED, MANIFEST_V2, OCI_MANIFEST, Registry, RegistryClient, normalize_config


_LAYER_DONE = ("Pushed", "Layer already exists", "Mounted from")  # the engine's last word on a layer


@dataclass(frozen=True)
class Pushed:
    """An image in a registry: by digest (``ref``), and whether this push uploaded anything."""

    image: str
    ref: str  # HOST/PREFIX/NAME@sha256:...
    registry: str
    image_id: str
    lock_hash: str
    uploaded: bool
    seconds: float

    @property
    def digest(self) -> str:
        return self.ref.rsplit("@", 1)[1]

    def to_dict(self) -> dict:
        return asdict(self) | {"digest": self.digest}


@dataclass(frozen=True)
class PushPlan:
    """What a push will do, settled before anything moves: a bad registry address, a stale lock or
    an image never built is an error here."""

    name: str
    registry: Registry
    image: ImageInfo
    tag: str  # the registry tag (the build's tag: the spec and lock hashes)
    lock_hash: str
    engine: Engine


def plan_push(project: Project, name: str, *, registry: str, engine: Engine | None = None) -> PushPlan:
    """The image built from ``name``'s current spec and lock, and where it goes."""
    from envctl.build import default_tag, require_built
    from envctl.lock import require_current_lock

    target = Registry.parse(registry)
    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    engine = engine or Engine.connect()
    image = require_built(engine, spec, lock)
    return PushPlan(spec.name, target, image, default_tag(spec, lock).rsplit(":", 1)[1], lock.lock_hash, engine)


def run_push(plan: PushPlan, *, records: Records | None = None,
             progress: Callable[[str], None] = lambda _m: None) -> Pushed:
    """Push the planned image with its config's times at SOURCE_DATE_EPOCH, and record it."""
    from envctl.spec import defaults

    return push_built(plan.engine, plan.image, name=plan.name, registry=plan.registry, tag=plan.tag,
                      lock_hash=plan.lock_hash, epoch=int(defaults()["source_date_epoch"]),
                      records=records or Records(), progress=progress)


def push_built(engine: Engine, image: ImageInfo, *, name: str, registry: Registry, tag: str, lock_hash: str,
               epoch: int, records: Records, progress: Callable[[str], None] = lambda _m: None) -> Pushed:
    """Push ``image`` as ``registry``/``name``:``tag`` with its config's times at ``epoch``; record it."""
    start = time.monotonic()
    client = RegistryClient(registry)
    repo = registry.repository(name)
    last = records.last_push(name, registry=str(registry))
    if last and last["lock_hash"] == lock_hash and _holds(client, repo, last["ref"], engine, image):
        progress(f"{last['ref']} is already in the registry")
        return Pushed(name, last["ref"], str(registry), image.id, lock_hash, False, time.monotonic() - start)
    by_tag = f"{registry.host}/{repo}:{tag}"
    engine.tag(image.id, by_tag)
    try:
        progress(f"pushing the layers of {image.short_id} to {registry.host}/{repo}")
        engine.push(by_tag, on_line=lambda line: progress(line) if any(w in line for w in _LAYER_DONE) else None)
    finally:
        engine.untag(by_tag)  # the engine's name for the unnormalized image must not pass for the pushed one
    progress("pushing the image config with SOURCE_DATE_EPOCH times")
    digest = republish(client, repo, tag, epoch=epoch)
    ref = f"{registry.host}/{repo}@{digest}"
    records.add_push(image=name, ref=ref, registry=str(registry), image_id=image.id, lock_hash=lock_hash)
    return Pushed(name, ref, str(registry), image.id, lock_hash, True, time.monotonic() - start)


def republish(client: RegistryClient, repo: str, tag: str, *, epoch: int) -> str:
    """Replace the config of ``repo``:``tag`` by its normalized form (same layers); the new digest."""
    body, _digest = client.manifest(repo, tag)
    manifest = json.loads(body)
    media_type = manifest.get("mediaType") or OCI_MANIFEST
    if media_type not in (MANIFEST_V2, OCI_MANIFEST):
        raise EnvctlError(f"registry {client.registry.host}: {repo}:{tag} is a {media_type}, not an image manifest",
                          hint="push a single-platform image (envctl build --platform linux/amd64)")
    config = json.loads(client.blob(repo, manifest["config"]["digest"]))
    normalized = normalize_config(config, epoch=epoch)
    manifest["config"] = {**manifest["config"], "digest": client.put_blob(repo, normalized),
                          "size": len(normalized)}
    data = json.dumps(manifest, indent=3, sort_keys=True).encode()
    return client.put_manifest(repo, tag, data, media_type)


def _holds(client: RegistryClient, repo: str, ref: str, engine: Engine, image: ImageInfo) -> bool:
    """Whether the registry still has ``ref`` and it is ``image``: the same layers and labels (the
    build time aside).  Three small requests: well under a second against a near registry."""
    digest = ref.rsplit("@", 1)[1]
    if not client.has_manifest(repo, digest):
        return False
    manifest = json.loads(client.manifest(repo, digest)[0])
    config = json.loads(client.blob(repo, manifest["config"]["digest"]))
    labels = {k: v for k, v in ((config.get("config") or {}).get("Labels") or {}).items() if k != LABEL_CREATED}
    ours = {k: v for k, v in image.labels.items() if k != LABEL_CREATED}
    return (config.get("rootfs") or {}).get("diff_ids") == engine.layer_ids(image.id) and labels == ours
