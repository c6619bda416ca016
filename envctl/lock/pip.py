"""Resolve an image's pip packages for the image's Python and platform, not the host's.

uv does the work where it can (``envctl.lock.uv``); otherwise pip's own resolver
(``pip install --dry-run --report`` with ``--python-version``/``--platform``/
``--only-binary=:all:``); its report gives
every file's URL and sha256.  The host's pip configuration is ignored: the
spec names its indexes and find-links, so two machines lock the same way.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl import children
from envctl.errors import LockError
from envctl.lock.pins import (PipPackage, dependencies, file_sizes, isolated_pip_env, normalize, platform_tags,
                               sha256_of_local, source_args)
from envctl.net import check_reachable

def resolve(requirements: list[str], *, python: str, platform: str, glibc: str, index_url: str,
            extra_index_urls: list[str] | tuple[str, ...] = (), find_links: list[str] | tuple[str, ...] = (),
            constraints: list[str] | None = None, check_network: bool = True,
            prefetch: tuple[PipPackage, ...] = (), prefer: tuple[str, ...] = ()) -> list[PipPackage]:
    """Resolve ``requirements`` to exact files with hashes for the target interpreter.
    ``prefetch``: the packages of the lock on disk, whose index pages and metadata are read
    while the resolver runs (most of a re-lock's network time).  ``prefer``: ``name==version`` pins
    kept where the requirements still allow them (uv only; pip's resolver has no preferences)."""
    if not requirements:
        return []
    from envctl.lock import uv as uvresolve

    def probe() -> None:
        check_reachable(index_url, what="package index")
        for url in extra_index_urls:
            check_reachable(url, what="package index")
        for link in find_links:
            check_reachable(link, what="find-links location")

    if os.environ.get("ENVCTL_RESOLVER", "uv") != "pip" and uvresolve.can_serve(platform, glibc):
        from envctl.fsio import default_root
        # The probe runs only when uv fails (then it names the unreachable URL): probing first
        # costs a round trip per index on every lock.
        return uvresolve.resolve(requirements, python=python, platform=platform, glibc=glibc,
                                 index_url=index_url, extra_index_urls=extra_index_urls, find_links=find_links,
                                 constraints=constraints, cache_root=default_root(),
                                 on_failure=probe if check_network else None, prefetch=prefetch,
                                 prefer=prefer)
    # pip's resolver only where uv cannot serve: no uv binary for this host, or a target glibc
    # outside the manylinux_2_17 .. 2_40 that uv's --python-platform names (ENVCTL_RESOLVER=pip forces it)
    if check_network:
        probe()
    pyver = python.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="envctl-pip-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--target", str(Path(tmp) / "never-written"), "--report", str(report), "--quiet",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
               "--abi", f"cp{pyver}", "--abi", "abi3", "--abi", "none",
               "--index-url", index_url]
        for tag in platform_tags(platform, glibc):
            cmd += ["--platform", tag]
        cmd += source_args(extra_index_urls, find_links, constraints, Path(tmp))
        cmd += list(requirements)
        proc = children.run(cmd, text=True, env=isolated_pip_env())  # Ctrl-C, SIGTERM: pip stops with envctl
        if proc.returncode != 0:
            raise LockError(_explain_failure(proc.stderr, requirements, python, platform),
                            hint="check the pip requirements in the spec")
        data = json.loads(report.read_text())
    packages = _packages(data)
    sizes = file_sizes([p.url for p in packages])
    return [replace(p, size=sizes.get(p.url)) for p in packages]


def _packages(report: dict) -> list[PipPackage]:
    items = report.get("install", [])
    names = {normalize(i["metadata"]["name"]) for i in items}
    packages = []
    for item in items:
        meta, info = item["metadata"], item["download_info"]
        hashes = info.get("archive_info", {}).get("hashes", {})
        sha = hashes.get("sha256")
        if not sha:
            legacy = info.get("archive_info", {}).get("hash", "")
            sha = legacy.split("=", 1)[1] if legacy.startswith("sha256=") else None
        url = info["url"]
        if sha is None:
            sha = sha256_of_local(url, tool="pip")
        deps = dependencies(meta.get("requires_dist", []) or [], names)
        packages.append(PipPackage(
            name=normalize(meta["name"]), version=meta["version"], url=url, sha256=sha,
            filename=unquote(Path(urlparse(url).path).name), requested=bool(item.get("requested")),
            dependencies=dict(sorted(deps.items()))))
    return sorted(packages, key=lambda p: p.name)




def _explain_failure(stderr: str, requirements: list[str], python: str, platform: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    not_found = re.search(r"Could not find a version that satisfies the requirement (\S+)", stderr)
    if not_found:
        versions = re.search(r"\(from versions: ([^)]*)\)", stderr)
        seen = versions.group(1).split(", ") if versions else []
        avail = ", ".join(seen[-8:]) if seen and seen != ["none"] else "none"
        return (f"no wheel of {not_found.group(1)} for Python {python} on {platform} "
                f"(versions seen for this platform: {avail})")
    conflict = re.search(r"ResolutionImpossible|conflicting dependencies", stderr)
    if conflict:
        causes = [ln for ln in lines if ln.startswith(("The conflict is caused by", "The user requested"))
                  or " depends on " in ln]
        return "pip requirements conflict: " + "; ".join(causes or errors[:2])
    return "pip could not resolve " + " ".join(requirements) + ": " + (errors[-1] if errors else lines[-1]
                                                                       if lines else "no output")
