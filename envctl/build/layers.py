"""The environment's image layers: which packages go in which, and what each one holds.

``plan_layers`` splits a lock's pip packages into layers that change at different
rates (the groups are data, in ``defaults.yaml``).  Inside the build each layer is
sealed by ``envctl/builder/seal_layer.py``, which writes a manifest of the files it
added (path -> sha256); ``tree_hash`` folds those manifests into one content hash of
the environment tree, recorded as the image label ``io.envctl.env-tree``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from envctl.lock import LockedEnv, layer_of
from envctl.lock.pins import PipPackage
from envctl.spec import defaults

MANIFEST_DIR = ".envctl/layers"  # under the environment's prefix
LAYER_MARK = re.compile(r"seal_layer\.py \S+ (\d+) ([a-z0-9_-]+) ")


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[PipPackage, ...]

    @property
    def bytes(self) -> int | None:
        sizes = [p.size for p in self.packages]
        return sum(sizes) if all(s is not None for s in sizes) else None


def plan_layers(lock: LockedEnv) -> list[Layer]:
    """The non-empty layers of the lock's pip packages, in install order."""
    groups = defaults()["layers"]
    members: dict[str, list[PipPackage]] = {g["name"]: [] for g in groups}
    for package in lock.pip:
        members[layer_of(package.name, groups)].append(package)
    return [Layer(g["name"], tuple(members[g["name"]])) for g in groups if members[g["name"]]]


def merge_manifests(manifests: list[dict]) -> dict[str, str]:
    """The environment's files (path -> sha256 or link:target): later layers win."""
    tree: dict[str, str] = {}
    for manifest in sorted(manifests, key=lambda m: m["index"]):
        tree.update(manifest["files"])
    return tree


def tree_hash(tree: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(tree):
        digest.update(f"{path}\0{tree[path]}\n".encode())
    return "sha256:" + digest.hexdigest()


def parse_manifests(blobs: dict[str, bytes]) -> list[dict]:
    """Manifests read out of an image (file name -> bytes)."""
    out = []
    for name, blob in sorted(blobs.items()):
        data = json.loads(blob)
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ValueError(f"{name} is not a layer manifest")
        out.append(data)
    return out


def layer_sizes(history: list[dict]) -> list[dict]:
    """Each sealed layer's name and size in bytes, from the image's history (base first)."""
    out = []
    for entry in reversed(history):  # the engine lists the newest layer first
        m = LAYER_MARK.search(entry.get("CreatedBy", ""))
        if m:
            out.append({"index": int(m.group(1)), "layer": m.group(2), "bytes": int(entry.get("Size", 0))})
    return out
