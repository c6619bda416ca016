"""A pip pin and what every resolver of a lock shares: names (PEP 503), platform tags, the
isolated pip environment, file sizes and local digests, Requires-Dist as locked dependencies.

``envctl.lock.pip`` (pip's resolver) and ``envctl.lock.uv`` (uv) both build on this module.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl.errors import LockError

_MANYLINUX_OLD = {"x86_64": ["manylinux2014", "manylinux2010", "manylinux1"], "aarch64": ["manylinux2014"]}


ARCH = {"linux-64": "x86_64", "linux-aarch64": "aarch64"}


@dataclass(frozen=True)
class PipPackage:
    name: str  # normalized (PEP 503)
    version: str
    url: str
    sha256: str
    filename: str
    requested: bool
    dependencies: dict[str, str] = field(default_factory=dict)
    size: int | None = None


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def platform_tags(platform: str, glibc: str) -> list[str]:
    """Every manylinux tag a glibc of this version can run, newest first."""
    arch = ARCH[platform]
    major, minor = (int(p) for p in glibc.split(".")[:2])
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return tags + [f"{old}_{arch}" for old in _MANYLINUX_OLD[arch]]


# The host's pip settings that say *how* to reach an index (network, TLS), never *what* resolves.


_PIP_KEEP = ("PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TRUSTED_HOST", "PIP_TIMEOUT",
             "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_CACHE_DIR", "PIP_NO_CACHE_DIR")


def isolated_pip_env() -> dict[str, str]:
    """The environment for every pip envctl runs (lock's resolver, setup's installer): the host's
    config files (pip.conf in every location: PIP_CONFIG_FILE=os.devnull makes pip skip them all)
    and resolution settings (PIP_CONSTRAINT, PIP_INDEX_URL, PIP_FIND_LINKS...) left out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _PIP_KEEP}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def file_sizes(urls: list[str]) -> dict[str, int]:
    """Download sizes for the lock summary: stat for local files, HEAD requests (in parallel)
    for remote ones; a size that cannot be had is left out, never guessed."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from envctl.net import ssl_context

    def size(url: str) -> tuple[str, int | None]:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            path = Path(unquote(parsed.path))
            return url, path.stat().st_size if path.exists() else None
        try:
            req = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(req, timeout=10, context=ssl_context()) as resp:
                length = resp.headers.get("Content-Length")
                return url, int(length) if length else None
        except (OSError, ValueError):
            return url, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return {url: n for url, n in pool.map(size, urls) if n is not None}


def source_args(extra_index_urls, find_links, constraints: list[str] | None, folder: Path) -> list[str]:
    """The index, find-links and constraints options pip and uv both take (constraints as a file
    written into ``folder``)."""
    args: list[str] = []
    for url in extra_index_urls:
        args += ["--extra-index-url", url]
    for link in find_links:
        args += ["--find-links", link]
    if constraints:
        cfile = folder / "constraints.txt"
        cfile.write_text("\n".join(constraints) + "\n")
        args += ["--constraint", str(cfile)]
    return args


def sha256_of_local(url: str, *, tool: str) -> str:
    """The sha256 of a find-links file the resolver (``tool``) gave no hash for; remote files need one."""
    from envctl.fsio import sha256_of

    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise LockError(f"{tool} gave no sha256 for {url}", hint="use an index that publishes hashes")
    return sha256_of(Path(unquote(parsed.path)))


_LEADING_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _names_extra(marker: str) -> bool:
    """Whether a PEP 508 marker tests the ``extra`` variable (not a quoted value like "extra-kernel")."""
    return "extra" in marker and re.search(r"\bextra\b", _QUOTED.sub("", marker)) is not None


def dependencies(requires_dist, names: set[str]) -> dict[str, str]:
    """As pip's report gives them: every requirement on a locked package, extras left out."""
    from packaging.requirements import InvalidRequirement, Requirement

    deps: dict[str, str] = {}
    for text in requires_dist:
        lead = _LEADING_NAME.match(text)
        if lead is None or normalize(lead.group(1)) not in names:
            continue  # on no locked package (torch's extras, other platforms): not worth parsing
        head, _, marker = text.partition(";")
        if not _names_extra(marker) and "@" not in head:
            text = head  # only a marker naming an extra drops a requirement: parse no other (2/3 of the time)
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and _names_extra(str(req.marker)):
            continue
        dep = normalize(req.name)
        if dep in names:
            deps[dep] = str(req.specifier) or "*"
    return dict(sorted(deps.items()))
