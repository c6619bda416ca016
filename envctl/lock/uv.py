"""Resolve an image's pip packages with uv, for the image's Python and platform.

``uv pip compile --generate-hashes`` (the ``uv`` PyPI package's binary, found with
``uv.find_uv_bin()``) resolves for ``--python-version`` / ``--python-platform`` with the spec's
index, extra indexes and find-links only: ``--no-config`` and no ``UV_*`` variables, so the
host's uv and pip settings never change a lock.  ``--index-strategy unsafe-best-match`` keeps
pip's semantics (the best version across every index, so ``torch==2.8.0`` takes ``+cu126`` from
the PyTorch index over PyPI's build).  uv writes a PEP 751 ``pylock.toml``: the one wheel the
target installs, with URL, size and sha256.  With find-links it writes requirements.txt instead
(see compile_command): every hash of each release and the index it came from; envctl then picks
the wheel from that index's page (PEP 691/503, or the folder) by tag priority, as pip would, and
remembers the pick by its hashes.  Dependencies come from each wheel's metadata (PEP 658 or
ranges, cached by sha256), as pip's report gives them, so the lockfile does not change.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

from envctl.children import interrupts_deferred
from envctl.errors import LockError
from envctl.lock.pins import ARCH, PipPackage, dependencies, normalize, source_args
from envctl.lock.wheels import Pin, local_size, memo_path, norm_location, parse_compiled, pick, supported_tags

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
    env["UV_NO_CONFIG"] = "1"
    # uv's other places (the credentials it keeps, its data, config and state folders) under
    # envctl's cache too: a lock writes nothing into the user's home (~/.local/share/uv).
    own = cache_dir.with_name("uv-home")
    for var, folder in (("UV_CREDENTIALS_DIR", "credentials"), ("XDG_DATA_HOME", "data"),
                        ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state")):
        env[var] = str(own / folder)
    return env


def compile_command(binary: str, reqs: Path, out: Path, *, python: str, platform: str, glibc: str,
                    index_url: str, extra_index_urls=(), find_links=(), constraints=None,
                    workdir: Path) -> list[str]:
    """The ``uv pip compile`` command line for the target (pure: nothing runs).

    Output (by ``out``'s name): ``pylock.toml``, the one wheel of each package the target installs
    with its URL, size and sha256; or, with find-links, requirements.txt with every hash of each
    release and the index it came from (uv's pylock output re-hashes a 200 MB find-links torch
    on every run, 0.5 s; its requirements output takes the hash from its cache).  The target is
    ``--python-version``; ``--python`` (this interpreter) only stands in for builds, of which there
    are none (binary only).  Without it uv looks for the target's Python on the host and, where it
    is missing, downloads one: seconds of retries offline (5.2 s against 0.6 s for numpy on
    Python 3.12 here), a managed Python installed in the user's home online.
    """
    if out.name == "pylock.toml":
        output = ["--format", "pylock.toml"]
    else:
        output = ["--format", "requirements.txt", "--emit-index-annotation", "--no-annotate", "--no-header"]
    cmd = [binary, "pip", "compile", str(reqs), "--output-file", str(out), *output, "--generate-hashes",
           "--no-config", "--quiet", "--python-version", python, "--python", sys.executable, "--no-python-downloads",
           "--python-platform", f"{ARCH[platform]}-manylinux_{glibc.replace('.', '_')}",
           "--only-binary", ":all:", "--index-strategy", "unsafe-best-match", "--index-url", index_url]
    return cmd + source_args(extra_index_urls, find_links, constraints, workdir)


def resolve(requirements: list[str], *, python: str, platform: str, glibc: str, index_url: str,
            extra_index_urls: list[str] | tuple[str, ...] = (), find_links: list[str] | tuple[str, ...] = (),
            constraints: list[str] | None = None, cache_root: Path,
            on_failure: Callable[[], None] | None = None, prefetch: tuple[PipPackage, ...] = (),
            prefer: tuple[str, ...] = ()) -> list[PipPackage]:
    """Exact files with hashes and sizes for ``requirements`` on the target (no sizes guessed).
    uv's cache lives in ``cache_root/uv``, pages, picks and wheel metadata in ``cache_root/pypi``.

    ``prefetch`` (the lock on disk) is read while uv resolves: without find-links, the metadata
    of each of its files, kept in memory until uv's pylock names the same URL and sha256 (a
    lockfile alone never vouches for a file); with find-links, each package's index page as well, for
    picking the file from uv's hashes."""
    from envctl.lock import pylock as pylock

    binary = uv_binary()
    assert binary is not None, "call can_serve() first"
    metadata_cache = cache_root / "pypi" / "metadata"
    as_pylock = not find_links
    with tempfile.TemporaryDirectory(prefix="envctl-uv-") as tmp:
        reqs = Path(tmp) / "requirements.in"
        reqs.write_text("\n".join(requirements) + "\n")
        out = Path(tmp) / ("pylock.toml" if as_pylock else "requirements.txt")
        if prefer:  # uv keeps an existing output file's pins where the requirements allow (and resolves faster)
            out.write_text(pylock.preferences(prefer) if as_pylock else "\n".join(prefer) + "\n")
        cmd = compile_command(binary, reqs, out, python=python, platform=platform, glibc=glibc,
                              index_url=index_url, extra_index_urls=extra_index_urls, find_links=find_links,
                              constraints=constraints, workdir=Path(tmp))
        pages: dict = {}  # index pages read in this run, by URL: the prefetch's, reused by the picks
        fetched: dict = {}  # sha256 -> (URL, metadata text) read beside uv, until uv names that file
        uv: subprocess.Popen | None = None
        started: list = []
        try:
            with interrupts_deferred():  # an interrupt inside Popen() would leave uv running, held by no one
                uv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=_env(cache_root / "uv"))  # uv first, then the prefetch beside it
            started = (_prefetch_metadata(prefetch, metadata_cache, fetched) if as_pylock
                       else _prefetch(prefetch, index_url, cache_root / "pypi", pages))
            tags = supported_tags(python, platform, glibc)  # while uv runs, as are the imports
            import packaging.requirements  # noqa: F401 - that reading its output (dependencies)
            import yaml  # noqa: F401 - and writing the lock (PyYAML) need: 30 ms off the wait after
            stdout, stderr = uv.communicate()
        except BaseException:  # Ctrl-C, SIGTERM: neither uv nor queued reads outlive envctl
            if uv is not None:
                uv.kill()
                uv.wait()
            for future in started:
                future.cancel()
            raise
        for future in started:  # mostly done while uv ran; what is left is read below anyway
            if uv.returncode != 0:
                future.cancel()
            else:
                future.exception()
        if uv.returncode != 0:
            if on_failure is not None and ("Failed to fetch" in stderr or "Failed to read" in stderr):
                on_failure()  # raises LockError naming the unreachable index, refused or timed out
            raise LockError(explain_failure(stderr, requirements, python, platform),
                            hint="check the pip requirements in the spec")
        if as_pylock:
            def one(dist):
                url, text = fetched.get(dist.sha256, (None, None))
                if dist.size is None:
                    dist = replace(dist, size=local_size(dist.url))
                return dist, _metadata(dist, metadata_cache, fetched=text if url == dist.url else None)

            wheels = pylock.read_wheels(out.read_text(), tags)
            local = [(metadata_cache / f"{w.sha256}.METADATA").is_file() or fetched.get(w.sha256, ("",))[0] == w.url
                     for w in wheels]  # cached, or read beside uv: no network left to wait on
            return _packages(_each(one, wheels, local), requirements)
        pins = parse_compiled(out.read_text())
    flat = {norm_location(link) for link in find_links}

    def pick_one(pin: Pin):  # the file, then its metadata, on one thread's kept-alive connections
        dist = pick(pin, tags, flat, cache_root / "pypi", pages)
        return dist, _metadata(dist, metadata_cache)

    local = [memo_path(pin, tags, cache_root / "pypi").is_file() for pin in pins]
    return _packages(_each(pick_one, pins, local), requirements)


def _each(work, items: list, local: list[bool]) -> list:
    """``work`` over ``items``: on the pool's threads where something may be read over the
    network, inline where ``local`` says all of it is at hand (threads cost more)."""
    if all(local):
        return [work(item) for item in items]
    from envctl.pypi.http import executor

    return list(executor().map(work, items))


def _prefetch_metadata(packages: tuple[PipPackage, ...], cache: Path, fetched: dict) -> list:
    """Read the metadata of each remote file the lock on disk names while uv resolves, into
    ``fetched`` (memory, not the cache: it is used only for a file uv's own output names again)."""
    from envctl.pypi.metadata import fetch_metadata_text
    from envctl.pypi.simple import DistFile

    def prefetch(p: PipPackage) -> None:
        dist = DistFile(filename=p.filename, url=p.url, sha256=p.sha256, size=p.size)
        fetched[p.sha256] = (p.url, fetch_metadata_text(dist))

    return _beside(packages, cache, prefetch)


def _beside(packages: tuple[PipPackage, ...], metadata_cache: Path, work) -> list:
    """``work`` for each remote package whose metadata is not cached, queued on the pool; its
    failures are left for the real reads to report."""
    from envctl.pypi.http import executor

    def quietly(p: PipPackage) -> None:
        try:
            work(p)
        except Exception:  # noqa: BLE001 - a prefetch only saves time
            pass

    remote = [p for p in packages if urlparse(p.url).scheme in ("http", "https") and p.sha256
              and not (metadata_cache / f"{p.sha256}.METADATA").is_file()]
    pool = executor()
    return [pool.submit(quietly, p) for p in remote]


def _prefetch(packages: tuple[PipPackage, ...], index_url: str, cache: Path, pages: dict) -> list:
    """Read what the lock on disk names while uv resolves: each package's page on the index (kept
    in ``pages`` for the picks) and the metadata of the file the lock names, as the index lists
    it (cached by sha256: only a file uv picks again is served from it)."""
    from envctl.pypi.metadata import read_metadata
    from envctl.pypi.simple import project_page, project_url

    def prefetch(p: PipPackage) -> None:
        found = project_page(index_url, p.name, cache_dir=cache / "simple")
        pages[project_url(index_url, p.name)] = found
        # the file as the index lists it (with its PEP 658 hash), never a host the lock alone names
        listed = next((f for f in found.files if f.sha256 == p.sha256), None)
        if listed is not None:
            read_metadata(listed, cache_dir=cache / "metadata")

    return _beside(packages, cache / "metadata", prefetch)


def _packages(found, requirements: list[str]) -> list[PipPackage]:
    from packaging.requirements import Requirement

    requested = {normalize(Requirement(r).name) for r in requirements}
    names = {normalize(meta.name) for _dist, meta in found}
    packages = []
    for dist, meta in found:
        packages.append(PipPackage(
            name=normalize(meta.name), version=meta.version, url=dist.url, sha256=dist.sha256,
            filename=unquote(dist.filename), requested=normalize(meta.name) in requested,
            dependencies=dependencies(meta.requires_dist, names), size=dist.size))
    return sorted(packages, key=lambda p: p.name)


def _metadata(dist, cache_dir: Path, *, fetched: tuple[str, str] | None = None):
    from envctl.errors import PackageIndexError
    from envctl.pypi.metadata import read_metadata

    try:
        return read_metadata(dist, cache_dir=cache_dir, fetched=fetched)
    except PackageIndexError as exc:
        raise LockError(f"cannot read the metadata of {dist.filename}: {exc}", hint=exc.hint) from None


def explain_failure(stderr: str, requirements: list[str], python: str, platform: str) -> str:
    """uv's explanation as one line: the cause, not the tree around it."""
    import re

    lines = [ln.strip(" ×╰─▶│") for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("hint:", "help:"))]
    text = " ".join(lines)
    missing = re.search(r"Because (\S+) was not found in the package registry", text) \
        or re.search(r"Because there (?:is|are) no versions? of ([A-Za-z0-9._-]+)", text) \
        or re.search(r"Because (\S+) has no wheels with a matching [A-Za-z ]*tag", text)
    if missing:
        return f"no wheel of {missing.group(1)} for Python {python} on {platform} (uv: {_short(text)})"
    if "unsatisfiable" in text or "No solution found" in text:
        return f"pip requirements conflict: {_short(text)}"
    return "uv could not resolve " + " ".join(requirements) + ": " + (_short(text) or "no output")


def _short(text: str) -> str:
    text = text.removeprefix("error: ")
    text = text.replace("No solution found when resolving dependencies: ", "")
    text = text.replace("No solution found when resolving dependencies ", "")
    return text if len(text) <= 400 else text[:397] + "..."
