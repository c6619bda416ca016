"""uv's PEP 751 lock (``pylock.toml``) as envctl reads and writes it: the one wheel each package
installs on the target, with its URL, size and sha256; and ``name==version`` preferences in the
same format, which ``uv pip compile`` keeps where the requirements allow (as it keeps an existing
output file's pins).  Pure: text in, values out (https://peps.python.org/pep-0751/).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from envctl.errors import LockError
from envctl.lock.grammar import filename_ok

if TYPE_CHECKING:
    from envctl.pypi.simple import DistFile


def preferences(pins: tuple[str, ...] | list[str]) -> str:
    """A pylock.toml that names only ``name==version`` pins: what uv reads as preferences."""
    lines = ['lock-version = "1.0"', 'created-by = "envctl"']
    for pin in pins:
        name, _, version = pin.partition("==")
        lines += ["", "[[packages]]", f"name = {_quote(name.strip())}", f"version = {_quote(version.strip())}"]
    return "\n".join(lines) + "\n"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_wheels(text: str, tags: list[str]) -> list[DistFile]:
    """The wheel of each package that installs on a target with ``tags`` (best first), as uv
    wrote it.  uv lists one wheel per package for a single ``--python-platform``; where it lists
    more, the one pip would pick.  A package with no such wheel (an sdist, a foreign tag, no url
    or sha256) is an error.  ``size`` is None where the index did not give one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    from envctl.pypi.simple import DistFile
    from envctl.lock.wheels import rank_wheels

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"uv wrote a pylock.toml envctl cannot read: {exc}",
                        hint="upgrade envctl's uv dependency, or set ENVCTL_RESOLVER=pip") from None
    files = []
    for package in data.get("packages", []):
        name, version = package.get("name", "?"), package.get("version", "?")
        candidates = []
        for wheel in package.get("wheels", []):
            url, sha256 = (wheel.get("url") or "").split("#", 1)[0], (wheel.get("hashes") or {}).get("sha256")
            filename = wheel.get("name") or unquote(urlparse(url).path.rsplit("/", 1)[-1])
            if url and sha256 and not filename_ok(filename):  # it becomes a file name in the cache
                raise LockError(f"uv resolved {name}=={version} to a file {filename!r} that is not a plain wheel "
                                f"file name", hint="check the package index the spec names")
            if url and sha256:
                candidates.append(DistFile(filename=filename, url=url, sha256=sha256, size=wheel.get("size")))
        ranked = rank_wheels(candidates, tags)
        if not ranked:
            raise LockError(f"uv resolved {name}=={version} but gave no wheel with a URL and sha256 that "
                            f"installs on the target", hint=f"pin another version of {name} in the spec")
        files.append(ranked[0])
    return files
