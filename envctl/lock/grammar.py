"""The grammar of every field a lockfile names, and the guard on paths made from them.

A lockfile arrives in a pull request, and its header hash proves nothing (anyone can
recompute it).  Its names, versions, hashes and URLs become file names in the cache, a
build context, an export folder and a setup's find-links, and lines of pip requirements
files: so each is checked against its grammar where the lock is read (``check_entry``),
the writers of requirements lines refuse anything else again (``pin``), and every path
derived from a lock is checked to stay inside its root before anything is written
(``inside``).  ``read_lockfile`` reads a lock's plain YAML and applies the checks; the rest
is pure: values in, a problem string or a path out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from envctl.errors import LockfileError

# PEP 508 names (PEP 503 normalizes them); a pip version is checked by packaging as well, and
# by this pattern first because packaging accepts surrounding whitespace, which would end a line.
PIP_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
PIP_VERSION = re.compile(r"[A-Za-z0-9.+!_-]+")
# conda's own rules: a version and a build string never hold a '-' (it separates them in file names).
CONDA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
CONDA_VERSION = re.compile(r"[A-Za-z0-9_.+!]+")
CONDA_BUILD = re.compile(r"[A-Za-z0-9_.+]+")
SHA256 = re.compile(r"[0-9a-f]{64}")
MD5 = re.compile(r"[0-9a-f]{32}")
PLATFORM = re.compile(r"[a-z0-9_-]+")
# The characters of a package file name: a wheel's (PEP 427) and a conda archive's.
FILENAME = re.compile(r"[A-Za-z0-9_.+!-]+")
# http: a local index (tests, a team's mirror) serves plain HTTP; the sha256 vouches for the bytes.
URL_SCHEMES = ("https", "http", "file")
# A requirement's specifier as locks record it: pip's (">=2.0,<3", "==1.0") and conda's
# (">=3.11,<3.12.0a0", "3.11.* *_cpython"); never an option, a marker or a second line.
DEP_SPEC = re.compile(r"[A-Za-z0-9_.*!=<>~,|+ ]*")
CONDA_SUFFIXES = (".conda", ".tar.bz2")


def check_entry(d: dict[str, Any]) -> str | None:
    """What is wrong with one ``package`` entry of a lock (None: nothing).  Every field envctl
    uses is checked, and the URL's file name must name the entry's own package and version."""
    manager, name, version = d.get("manager"), d.get("name"), d.get("version")
    if not isinstance(d.get("platform"), str) or not PLATFORM.fullmatch(d["platform"]):
        return f"platform {d.get('platform')!r} is not a platform name such as linux-64"
    conda = manager == "conda"
    if not isinstance(name, str) or not (CONDA_NAME if conda else PIP_NAME).fullmatch(name):
        return f"name {name!r} is not a {'conda' if conda else 'PEP 503'} package name"
    if not _version_ok(version, conda=conda):
        return f"version {version!r} is not a {'conda' if conda else 'PEP 440'} version"
    build = d.get("build")
    if conda and not (isinstance(build, str) and CONDA_BUILD.fullmatch(build)):
        return f"build {build!r} is not a conda build string"
    digests = d.get("hash")
    sha256 = digests.get("sha256") if isinstance(digests, dict) else None
    if not (isinstance(sha256, str) and SHA256.fullmatch(sha256)):
        return f"hash.sha256 {sha256!r} is not 64 lowercase hex digits"
    md5 = digests.get("md5")
    if md5 is not None and not (isinstance(md5, str) and MD5.fullmatch(md5)):
        return f"hash.md5 {md5!r} is not 32 lowercase hex digits"
    deps = d.get("dependencies")
    if deps is not None and not (isinstance(deps, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in deps.items())):
        return "dependencies is not a mapping of package names to version specifiers"
    for dep, spec in (deps or {}).items():
        if not (CONDA_NAME if conda else PIP_NAME).fullmatch(dep) or not DEP_SPEC.fullmatch(spec) or "--" in spec:
            return f"dependency {dep!r}: {spec!r} is not a package name with a version specifier"
    try:
        filename = package_filename(d.get("url"))
    except ValueError as exc:
        return str(exc)
    return _names_agree(filename, name, version, build if conda else None)


_REQUIRED = ("name", "version", "manager", "platform", "url", "hash")


def read_lockfile(path: Path, *, cached: bool = False) -> tuple[list[dict], dict]:
    """The ``package`` entries and ``metadata`` of a conda-lock v1 file, every entry checked
    against the grammar (``cached``: the parse may come from envctl.yamldoc's cache)."""
    from envctl import yamldoc

    def bad(problem: str) -> LockfileError:
        return LockfileError(f"{path} is not a valid conda-lock file: {problem}",
                             hint="regenerate it with envctl lock")

    try:
        data = yamldoc.load(path.read_text(encoding="utf-8"), cache=cached)
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text (byte {exc.start})") from None
    except yamldoc.DocumentError as exc:
        raise bad(f"not YAML{f' at line {exc.line}' if exc.line else ''} ({exc.problem})") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise bad("no 'version: 1'")
    entries = data.get("package")
    if not isinstance(entries, list):
        raise bad("no 'package' list")
    for i, d in enumerate(entries):
        if not isinstance(d, dict):
            raise bad(f"package[{i}] is not a mapping")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise bad(f"package[{i}] ({d.get('name', '?')}) lacks {', '.join(missing)}")
        if d["manager"] not in ("conda", "pip"):
            raise bad(f"package[{i}]: manager {d['manager']!r} is neither conda nor pip")
        problem = check_entry(d)
        if problem:  # a forged lock's names become file names and pip's lines: never trusted unchecked
            name = d["name"] if isinstance(d["name"], str) and CONDA_NAME.fullmatch(d["name"]) else "?"
            raise bad(f"package[{i}] ({name}): {problem}")
    return entries, data.get("metadata") if isinstance(data.get("metadata"), dict) else {}


def _version_ok(version: Any, *, conda: bool) -> bool:
    if not isinstance(version, str):
        return False
    if conda:
        return bool(CONDA_VERSION.fullmatch(version))
    from packaging.version import InvalidVersion, Version

    try:
        Version(version)
    except InvalidVersion:
        return False
    return bool(PIP_VERSION.fullmatch(version))


def package_filename(url: Any) -> str:
    """The file name a package URL ends in (decoded), or ValueError: a plain wheel or conda
    archive name, never a path (no slash, backslash, NUL or '..' once decoded)."""
    if not isinstance(url, str) or not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        raise ValueError(f"url {url!r} is not a URL (printable ASCII, no space or backslash)")
    try:
        parts = urlparse(url)
    except ValueError as exc:  # an unclosed [IPv6] host
        raise ValueError(f"url {url!r} is not a URL ({exc})")
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"url {url!r} is not an {'/'.join(URL_SCHEMES)} URL")
    if "@" in parts.netloc:  # a lock is committed and shared: credentials come from the environment
        raise ValueError(f"url of {parts.hostname} carries credentials (user@host); a lock must not: "
                         f"give them to pip or conda through their own configuration")
    filename = unquote(parts.path.rsplit("/", 1)[-1])
    if not filename_ok(filename):
        raise ValueError(f"url {url!r} does not end in a plain wheel (.whl) or conda (.conda, .tar.bz2) file name")
    return filename


def filename_ok(filename: str) -> bool:
    """A package file name that is safe as one path segment: never a path, never hidden."""
    return (bool(FILENAME.fullmatch(filename)) and ".." not in filename and not filename.startswith(".")
            and filename.endswith((".whl", *CONDA_SUFFIXES)))


def _names_agree(filename: str, name: str, version: str, build: str | None) -> str | None:
    """A wheel must be the entry's (PEP 427 name and version), a conda archive name-version-build."""
    if build is not None:
        if filename not in (f"{name}-{version}-{build}{suffix}" for suffix in CONDA_SUFFIXES):
            return f"url file {filename!r} is not {name}-{version}-{build}.conda (or .tar.bz2)"
        return None
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import Version

    try:
        wheel_name, wheel_version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return f"url file {filename!r} is not a wheel file name"
    if canonicalize_name(wheel_name) != canonicalize_name(name) or wheel_version != Version(version):
        return f"url file {filename!r} is not a wheel of {name} {version}"
    return None


def pin(name: str, version: str, sha256: str | None = None) -> str:
    """``name==version`` (with ``--hash``) for a requirements file or a command line, refusing
    anything outside the grammar: a second line of defence behind the lock's own check."""
    ok = (isinstance(name, str) and PIP_NAME.fullmatch(name) and _version_ok(version, conda=False)
          and (sha256 is None or (isinstance(sha256, str) and SHA256.fullmatch(sha256))))
    if not ok:
        raise LockfileError(f"refusing to write the requirement {name!r}=={version!r}: not a package name "
                            f"and version", hint="the lock was forged or damaged: regenerate it with envctl lock")
    return f"{name}=={version}" + (f" --hash=sha256:{sha256}" if sha256 else "")


def conda_pin(name: str, version: str, build: str) -> str:
    """``name=version=build`` for an environment.yml, refusing anything outside conda's grammar."""
    if not (CONDA_NAME.fullmatch(name) and CONDA_VERSION.fullmatch(version) and CONDA_BUILD.fullmatch(build)):
        raise LockfileError(f"refusing to write the conda package {name!r}={version!r}={build!r}",
                            hint="the lock was forged or damaged: regenerate it with envctl lock")
    return f"{name}={version}={build}"


def explicit_line(url: str, md5: str) -> str:
    """A line of conda's explicit file (``URL#MD5``), refusing a URL that is not a package file's."""
    try:
        package_filename(url)
    except ValueError as exc:
        raise LockfileError(f"refusing to write an explicit line: {exc}",
                            hint="the lock was forged or damaged: regenerate it with envctl lock") from None
    if not MD5.fullmatch(md5):
        raise LockfileError(f"refusing to write an explicit line for {url}: md5 {md5!r} is not 32 hex digits",
                            hint="the lock was forged or damaged: regenerate it with envctl lock")
    return f"{url}#{md5}"


