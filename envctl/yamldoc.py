"""YAML documents (specs, the release matrix, defaults, lockfiles) parsed once per content.

Every command reads several of them, and importing PyYAML and parsing took 25-30 ms of a
0.5 s warm ``envctl lock``.  ``load`` keeps what libyaml parsed as marshal bytes under
``<cache>/yaml/<python tag>/``, named by the sha256 of the text and the options: a file read
again unchanged needs neither PyYAML nor a parse, and an edited file is a new name, parsed
afresh (with its errors).  Data marshal cannot hold (a YAML date) is simply not kept, and a
cache that cannot be written is skipped: the cache only ever saves time.

Documents a user names are read with ``envctl.fsio.read_document`` (regular files only).
"""

from __future__ import annotations

import hashlib
import marshal
import re
import sys
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path
from typing import Any


class DocumentError(ValueError):
    """Text that is not valid YAML (or gives a key twice, where keys must be unique)."""

    def __init__(self, problem: str, line: int | None = None):
        self.problem, self.line = problem, line
        super().__init__(problem if line is None else f"{problem} (line {line})")


def load(text: str, *, unique_keys: bool = False, cache: bool = True) -> Any:
    """The data of one YAML document (safe types only).  ``unique_keys``: a key given twice in
    a mapping is an error (YAML itself keeps the last one silently)."""
    if not cache:
        return parse(text, unique_keys=unique_keys)
    path = _cache_path(text, unique_keys)
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        pass  # not cached yet (or an unreadable entry): parse
    data = parse(text, unique_keys=unique_keys)
    _store(path, data)
    return data


def parse(text: str, *, unique_keys: bool = False) -> Any:
    """Parse with libyaml where PyYAML has it (the pure-Python parser is ~50x slower)."""
    import yaml

    loader = _unique_key_loader() if unique_keys else getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _refuse_aliases(text, loader)
        return yaml.load(text, Loader=loader)  # noqa: S506 - safe loaders only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(problem, mark.line + 1 if mark is not None else None) from None


# Where an anchor (&name) or an alias (*name) may start: a node's first character.  Text with
# no such place (most documents: a '*' inside "nvidia-*" or a quoted "*" is none) is not scanned.
_NODE_START = re.compile(r"(?:^|[\s\[{,])[&*]", re.MULTILINE)


def _refuse_aliases(text: str, loader) -> None:
    """No document envctl reads uses anchors or aliases (conda-lock's format never does, nor
    envctl's writers): refused before they are expanded, as a 1 KB spec of nested aliases
    (a billion laughs) expands to gigabytes wherever it is walked or echoed."""
    if not _NODE_START.search(text):
        return
    import yaml

    scanner = loader(text)
    try:
        while scanner.check_token():
            token = scanner.get_token()
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise yaml.MarkedYAMLError(problem="YAML anchors and aliases (&name, *name) are not allowed",
                                           problem_mark=token.start_mark)
    finally:
        scanner.dispose()


# What a cached parse depends on besides the text: this reader's rules (bump FORMAT when they
# change) and envctl's version, so an upgrade never serves an older reader's answer.
FORMAT = 2  # 2: anchors and aliases are refused


def _cache_path(text: str, unique_keys: bool) -> Path:
    from envctl import __version__
    from envctl.fsio import default_root
    salt = f"{FORMAT}\0{__version__}\0{int(unique_keys)}\0"
    key = hashlib.sha256((salt + text).encode("utf-8", "surrogatepass")).hexdigest()
    return default_root() / "yaml" / (sys.implementation.cache_tag or "python") / key[:2] / key


def _store(path: Path, data: Any) -> None:
    from envctl.fsio import atomic_write
    try:
        atomic_write(path, marshal.dumps(data))
    except Exception:  # noqa: BLE001 - a type marshal cannot hold (a date), a read-only or full cache:
        pass  # the next run parses again


@lru_cache(maxsize=1)
def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        def construct_mapping(self, node, deep=False):
            seen: set = set()
            for key_node, _value in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):  # a list as a key: PyYAML's own error
                    raise yaml.constructor.ConstructorError(None, None, "found unhashable key",
                                                            key_node.start_mark)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader
