"""Resolve an image's pip packages with uv, for the image's Python and platform.

``uv pip compile --format pylock.toml`` (the ``uv`` PyPI package's binary, found with
``uv.find_uv_bin()``) resolves for ``--python-version`` / ``--python-platform`` with the spec's
index, extra indexes and find-links only: ``--no-config`` and no ``UV_*`` variables, so the
host's uv and pip settings never change a lock.  ``--index-strategy unsafe-best-match`` keeps
pip's semantics (the best version across every index, so ``torch==2.8.0`` takes ``+cu126``
from the PyTorch index over PyPI's build).  pylock lists each package's wheels for the
platform with URL, sha256 and size; the one wheel the target installs is picked by tag
priority as pip would.  Dependencies come from each wheel's metadata (PEP 658 or ranges,
cached by sha256), read the same way pip's report gives them, so the lockfile does not change.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

from envctl.errors import LockError
from envctl.pipresolve import ARCH, PipPackage, normalize, platform_tags

# uv's own names for the platforms it can target (uv pip compile --help, --python-platform)
UV_GLIBC = {f"2.{m}" for m in range(17, 41)}
# Environment uv may keep: how to reach the network, never what resolves.
_KEEP = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
         "SSL_CERT_FILE", "SSL_CERT_DIR", "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL")


def uv_binary() -> str | None:
    """The uv binary of the installed ``uv`` package; None where it is missing."""
    try:
        import uv
    except ImportError:
        return None
    try:
        return uv.find_uv_bin()
    except FileNotFoundError:
        return None


def can_serve(platform: str, glibc: str) -> bool:
    """uv targets manylinux_2_17 .. 2_40 on x86_64 and aarch64; anything else goes to pip."""
    return platform in ARCH and glibc in UV_GLIBC and uv_binary() is not None


def _env(cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEEP}
    if os.environ.get("PIP_CERT") and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]  # the CA bundle pip would use here
    env["UV_CACHE_DIR"] = str(cache_dir)  # envctl's cache, so ENVCTL_CACHE controls it
    env["UV_NO_PROGRESS"] = "1"
    return env


def _toml(text: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def resolve(requirements: list[str], *, python: str, platform: str, glibc: str, index_url: str,
            extra_index_urls: list[str] | tuple[str, ...] = (), find_links: list[str] | tuple[str, ...] = (),
            constraints: list[str] | None = None, cache_root: Path,
            on_failure: Callable[[], None] | None = None) -> list[PipPackage]:
    """Exact files with hashes and sizes for ``requirements`` on the target (no sizes guessed).
    uv's cache lives in ``cache_root/uv``, wheel metadata in ``cache_root/pypi/metadata``."""
    binary = uv_binary()
    assert binary is not None, "call can_serve() first"
    with tempfile.TemporaryDirectory(prefix="envctl-uv-") as tmp:
        reqs = Path(tmp) / "requirements.in"
        reqs.write_text("\n".join(requirements) + "\n")
        out = Path(tmp) / "pylock.toml"
        cmd = [binary, "pip", "compile", str(reqs), "--output-file", str(out), "--format", "pylock.toml",
               "--no-config", "--quiet", "--no-header", "--python-version", python,
               "--python-platform", f"{ARCH[platform]}-manylinux_{glibc.replace('.', '_')}",
               "--only-binary", ":all:", "--index-strategy", "unsafe-best-match", "--index-url", index_url]
        for url in extra_index_urls:
            cmd += ["--extra-index-url", url]
        for link in find_links:
            cmd += ["--find-links", link]
        if constraints:
            cfile = Path(tmp) / "constraints.txt"
            cfile.write_text("\n".join(constraints) + "\n")
            cmd += ["--constraint", str(cfile)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(cache_root / "uv"))
        if proc.returncode != 0:
            if on_failure is not None and ("Failed to fetch" in proc.stderr or "Failed to read" in proc.stderr):
                on_failure()  # raises LockError naming the unreachable index, refused or timed out
            raise LockError(explain_failure(proc.stderr, requirements, python, platform),
                            hint="check the pip requirements in the spec")
        lock = _toml(out.read_text())
    return _packages(lock, requirements, python=python, platform=platform, glibc=glibc,
                     cache_dir=cache_root / "pypi" / "metadata")


def supported_tags(python: str, platform: str, glibc: str) -> list[str]:
    """The target's wheel tags, best first: what pip derives from --python-version, --platform
    and --abi cpXY/abi3/none."""
    from packaging.tags import compatible_tags, cpython_tags

    version = tuple(int(p) for p in python.split(".")[:2])
    plats = platform_tags(platform, glibc)
    abis = [f"cp{version[0]}{version[1]}", "abi3", "none"]
    tags = list(cpython_tags(version, abis=abis, platforms=plats)) + list(compatible_tags(version, "cp", plats))
    return [str(t) for t in tags]


def pick_wheel(wheels: list[dict], tags: list[str]) -> dict | None:
    """The wheel the target installs: the one whose best tag ranks highest (pip's choice)."""
    from packaging.utils import parse_wheel_filename

    rank = {t: i for i, t in enumerate(tags)}
    best, best_rank = None, len(rank)
    for w in wheels:
        name = unquote(Path(urlparse(w.get("url") or w.get("path", "")).path).name)
        try:
            _n, _v, build, wtags = parse_wheel_filename(name)
        except ValueError:
            continue
        r = min((rank.get(str(t), len(rank)) for t in wtags), default=len(rank))
        if r < best_rank or (r == best_rank and best is not None and build > best[1]):
            best, best_rank = (w, build), r
    return best[0] if best else None


def _packages(lock: dict, requirements: list[str], *, python: str, platform: str, glibc: str,
              cache_dir: Path) -> list[PipPackage]:
    from packaging.requirements import Requirement

    from envctl.pypi.simple import DistFile

    tags = supported_tags(python, platform, glibc)
    requested = {normalize(Requirement(r).name) for r in requirements}
    chosen: list[tuple[dict, dict]] = []
    for pkg in lock.get("packages", []):
        wheel = pick_wheel(pkg.get("wheels", []), tags)
        if wheel is None:
            raise LockError(f"uv resolved {pkg['name']} {pkg.get('version')} but none of its wheels installs on "
                            f"Python {python} {platform} (glibc {glibc})",
                            hint="pin another version of it in the spec")
        chosen.append((pkg, wheel))
    files = []
    for pkg, wheel in chosen:
        url = wheel.get("url") or Path(wheel["path"]).resolve().as_uri()
        if url.startswith("file:"):  # pip's form: percent-quoted ('+' as %2B)
            url = Path(unquote(urlparse(url).path)).as_uri()
        sha = (wheel.get("hashes") or {}).get("sha256") or _sha256_of_local(url)
        files.append(DistFile(filename=unquote(Path(urlparse(url).path).name), url=url, sha256=sha,
                              size=wheel.get("size")))
    metas = _metadata(files, cache_dir)
    names = {normalize(m.name) for m in metas}
    packages = []
    for dist, meta in zip(files, metas):
        size = dist.size if dist.size is not None else _local_size(dist.url)
        packages.append(PipPackage(
            name=normalize(meta.name), version=meta.version, url=dist.url, sha256=dist.sha256,
            filename=dist.filename, requested=normalize(meta.name) in requested,
            dependencies=_dependencies(meta.requires_dist, names), size=size))
    return sorted(packages, key=lambda p: p.name)


def _metadata(files, cache_dir: Path):
    from envctl.errors import PackageIndexError
    from envctl.pypi.metadata import read_metadata

    def one(dist):
        try:
            return read_metadata(dist, cache_dir=cache_dir)
        except PackageIndexError as exc:
            raise LockError(f"cannot read the metadata of {dist.filename}: {exc}", hint=exc.hint) from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, files))


def _dependencies(requires_dist: tuple[str, ...], names: set[str]) -> dict[str, str]:
    """As pip's report gives them: every requirement on a locked package, extras left out."""
    from packaging.requirements import InvalidRequirement, Requirement

    deps: dict[str, str] = {}
    for text in requires_dist:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and "extra" in str(req.marker):
            continue
        dep = normalize(req.name)
        if dep in names:
            deps[dep] = str(req.specifier) or "*"
    return dict(sorted(deps.items()))


def _local_size(url: str) -> int | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        from envctl.pipresolve import file_sizes

        return file_sizes([url]).get(url)
    path = Path(unquote(parsed.path))
    return path.stat().st_size if path.exists() else None


def _sha256_of_local(url: str) -> str:
    from envctl.cache import sha256_of

    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise LockError(f"uv gave no sha256 for {url}", hint="use an index that publishes hashes")
    return sha256_of(Path(unquote(parsed.path)))


def explain_failure(stderr: str, requirements: list[str], python: str, platform: str) -> str:
    """uv's explanation as one line: the cause, not the tree around it."""
    import re

    lines = [ln.strip(" ×╰─▶│") for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("hint:", "help:"))]
    text = " ".join(lines)
    missing = re.search(r"Because (\S+) was not found in the package registry", text) \
        or re.search(r"Because there (?:is|are) no versions? of ([A-Za-z0-9._-]+)", text)
    if missing:
        return f"no wheel of {missing.group(1)} for Python {python} on {platform} (uv: {_short(text)})"
    if "unsatisfiable" in text or "No solution found" in text:
        return f"pip requirements conflict: {_short(text)}"
    return "uv could not resolve " + " ".join(requirements) + ": " + (_short(text) or "no output")


def _short(text: str) -> str:
    text = text.replace("No solution found when resolving dependencies: ", "")
    return text if len(text) <= 400 else text[:397] + "..."
