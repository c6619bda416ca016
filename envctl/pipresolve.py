"""Resolve an image's pip packages for the image's Python and platform, not the host's.

uv does the work where it can (``envctl.uvresolve``); otherwise pip's own resolver
(``pip install --dry-run --report`` with ``--python-version``/``--platform``/
``--only-binary=:all:``); its report gives
every file's URL and sha256.  The host's pip configuration is ignored: the
spec names its indexes and find-links, so two machines lock the same way.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl.errors import LockError
from envctl.netcheck import check_reachable

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
    from envctl import uvresolve

    def probe() -> None:
        check_reachable(index_url, what="package index")
        for url in extra_index_urls:
            check_reachable(url, what="package index")
        for link in find_links:
            check_reachable(link, what="find-links location")

    if os.environ.get("ENVCTL_RESOLVER", "uv") != "pip" and uvresolve.can_serve(platform, glibc):
        from envctl.cache import default_root

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
        proc = subprocess.run(cmd, capture_output=True, text=True, env=isolated_pip_env())
        if proc.returncode != 0:
            raise LockError(_explain_failure(proc.stderr, requirements, python, platform),
                            hint="check the pip requirements in the spec")
        data = json.loads(report.read_text())
    packages = _packages(data)
    sizes = file_sizes([p.url for p in packages])
    return [replace(p, size=sizes.get(p.url)) for p in packages]


def file_sizes(urls: list[str]) -> dict[str, int]:
    """Download sizes for the lock summary: stat for local files, HEAD requests (in parallel)
    for remote ones; a size that cannot be had is left out, never guessed."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from envctl.netcheck import ssl_context

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
    from envctl.cache import sha256_of

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
