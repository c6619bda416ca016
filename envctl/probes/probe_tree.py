"""The environment tree check: every file of the environment against its layer manifests.

``envctl build`` seals each layer of the environment with a manifest of the files it
wrote (``PREFIX/.envctl/layers/NN-NAME.json``: path -> sha256, or ``link:TARGET``) and
stamps the content hash of their union on the image.  This check walks the prefix,
hashes every file, and names each one that changed, appeared or disappeared since the
build; with the expected hash from the label it also catches edited manifests.
Part of the in-image smoke probe (see smoke.py): standard library only, Python >= 3.9.
Runs before torch is imported, so nothing the probe does itself shows up as drift.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

from probe_report import check

MANIFESTS = os.path.join(".envctl", "layers")
SHOWN = 5  # paths named in the message; the details carry up to LISTED of each kind
LISTED = 200


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifests(prefix):
    folder = os.path.join(prefix, MANIFESTS)
    if not os.path.isdir(folder):
        return None
    manifests = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as fh:
                manifests.append(json.load(fh))
    tree = {}
    for manifest in sorted(manifests, key=lambda m: m["index"]):
        tree.update(manifest["files"])
    return tree


def tree_hash(tree):
    digest = hashlib.sha256()
    for path in sorted(tree):
        digest.update(f"{path}\0{tree[path]}\n".encode())
    return "sha256:" + digest.hexdigest()


def actual_tree(prefix):
    """path -> sha256 or link:TARGET for every file under the prefix (manifests excluded)."""
    links, files = {}, []
    for root, dirs, names in os.walk(prefix):
        dirs.sort()
        entries = sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in entries:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, prefix)
            if rel.startswith(MANIFESTS + os.sep):
                continue
            if os.path.islink(path):
                links[rel] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                files.append(rel)
    # hashlib releases the GIL on large buffers: threads read and hash GBs in parallel.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = pool.map(lambda rel: _sha256(os.path.join(prefix, rel)), files)
        tree = dict(zip(files, digests))
    tree.update(links)
    return tree


def tree_drift(expected, actual):
    changed = sorted(p for p in expected if p in actual and actual[p] != expected[p])
    removed = sorted(p for p in expected if p not in actual)
    added = sorted(p for p in actual if p not in expected)
    return changed, removed, added


def tree_check(prefix, expected_hash=None):
    """The "env tree" check of the environment at ``prefix``."""
    try:
        expected = read_manifests(prefix)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return check("env tree", "fail", f"layer manifests under {prefix}/{MANIFESTS} are unreadable: {exc}")
    if expected is None:
        return check("env tree", "skip", f"no layer manifests in {prefix} (not built by envctl's layered build)")
    recorded = tree_hash(expected)
    if expected_hash and recorded != expected_hash:
        return check("env tree", "fail", f"the layer manifests hash to {recorded[:19]}..., the image label "
                                         f"says {expected_hash[:19]}...: the manifests were changed")
    actual = actual_tree(prefix)
    changed, removed, added = tree_drift(expected, actual)
    details = {"files": len(actual), "hash": recorded, "changed": changed[:LISTED],
               "removed": removed[:LISTED], "added": added[:LISTED]}
    if not (changed or removed or added):
        return check("env tree", "pass", f"{len(actual)} files match the build's manifests ({recorded[:19]}...)",
                     details)
    parts = []
    for what, paths in (("changed", changed), ("removed", removed), ("added", added)):
        if paths:
            more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
            parts.append(f"{what} {', '.join(paths[:SHOWN])}{more}")
    return check("env tree", "fail", "files differ from the build: " + "; ".join(parts), details)
