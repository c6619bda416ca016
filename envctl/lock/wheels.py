"""Which wheel of a release a target installs, from uv's requirements.txt output.

Used where a spec names a find-links folder (uv then writes requirements.txt; see
``uvresolve.compile_command``): uv gives every hash of each release and the index or folder it
came from; the file the target installs is picked from that page or folder by tag priority, as
pip would, and the pick is remembered by its hashes (files with those hashes never change).
``supported_tags`` and ``rank_wheels`` also serve uv's pylock output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl.errors import LockError
from envctl.lock.pins import platform_tags, sha256_of_local


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: frozenset[str]
    source: str  # the index or find-links location uv took it from


def parse_compiled(text: str) -> list[Pin]:
    """``name==version`` blocks of uv's requirements output with their hashes and ``# from``."""
    pins: list[Pin] = []
    name = version = source = None
    hashes: set[str] = set()

    def flush() -> None:
        if name is not None:
            pins.append(Pin(name, version or "", frozenset(hashes), source or ""))

    for raw in text.splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line:
            continue
        if line.startswith("--hash=sha256:"):
            hashes.add(line.split(":", 1)[1])
        elif line.startswith("# from "):
            source = line[len("# from "):].strip()
        elif not line.startswith(("#", "-")) and "==" in line:
            flush()
            name, version = (part.strip() for part in line.split(";")[0].split("==", 1))
            hashes, source = set(), None
    flush()
    return pins


def supported_tags(python: str, platform: str, glibc: str) -> list[str]:
    """The target's wheel tags, best first: what pip derives from --python-version, --platform
    and --abi cpXY/abi3/none."""
    from packaging.tags import compatible_tags, cpython_tags

    version = tuple(int(p) for p in python.split(".")[:2])
    plats = platform_tags(platform, glibc)
    abis = [f"cp{version[0]}{version[1]}", "abi3", "none"]
    tags = list(cpython_tags(version, abis=abis, platforms=plats)) + list(compatible_tags(version, "cp", plats))
    return [str(t) for t in tags]


def rank_wheels(files, tags: list[str]) -> list:
    """Installable wheels among ``files``, the one pip would pick first (best tag, then build)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    rank = {t: i for i, t in enumerate(tags)}
    scored = []
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        try:
            _n, _v, build, wtags = parse_wheel_filename(f.filename)
        except (InvalidWheelFilename, ValueError):
            continue
        r = min((rank.get(str(t), len(rank)) for t in wtags), default=len(rank))
        if r < len(rank):
            scored.append((r, tuple(-x if isinstance(x, int) else 0 for x in build), f.filename, f))
    return [f for *_k, f in sorted(scored, key=lambda item: item[:3])]


def norm_location(location: str) -> str:
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return str(Path(unquote(parsed.path if parsed.scheme else location)).resolve())
    return location.rstrip("/")


def pick(pin: Pin, tags: list[str], flat: set[str], cache: Path, pages: dict | None = None):
    """The one file of ``pin`` the target installs, with URL, sha256 and size.  Remembered by
    (source, name, version, hashes, tags): files with those hashes never change."""
    import json

    from envctl.pypi.simple import DistFile

    memo = memo_path(pin, tags, cache)
    try:
        d = json.loads(memo.read_text())
        return DistFile(filename=d["filename"], url=d["url"], sha256=d["sha256"], size=d["size"])
    except (OSError, ValueError, KeyError):
        pass
    chosen = _pick_uncached(pin, tags, flat, cache, pages or {})
    try:
        from envctl.fsio import atomic_write
        atomic_write(memo, json.dumps({"filename": chosen.filename, "url": chosen.url,
                                       "sha256": chosen.sha256, "size": chosen.size}))
    except Exception:  # noqa: BLE001 - an unwritable cache only costs speed
        pass
    return chosen


def memo_path(pin: Pin, tags: list[str], cache: Path) -> Path:
    import hashlib
    import json

    key = hashlib.sha256(json.dumps([pin.source, pin.name, pin.version, sorted(pin.hashes), tags]).encode())
    return cache / "picks" / f"{key.hexdigest()[:40]}.json"


def _pick_uncached(pin: Pin, tags: list[str], flat: set[str], cache: Path, pages: dict):
    from dataclasses import replace

    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from envctl.pypi import http
    from envctl.pypi.simple import DistFile, parse_page, project_page, project_url

    location = norm_location(pin.source)
    local = urlparse(pin.source).scheme in ("", "file") and location in flat  # a find-links folder
    if local:
        folder = Path(location)
        files = [DistFile(filename=p.name, url=p.resolve().as_uri(), sha256=None, size=p.stat().st_size)
                 for p in sorted(folder.glob("*.whl"))]
    elif location in flat:
        resp = http.get(pin.source)
        files = list(parse_page(pin.source, resp.body, resp.header("content-type") or "", name=pin.name).files)
    else:
        page = pages.get(project_url(pin.source, pin.name)) or project_page(pin.source, pin.name,
                                                                              cache_dir=cache / "simple")
        files = list(page.files)
    mine = []
    for f in files:
        try:
            version = f.parsed()[0]
        except Exception:  # noqa: BLE001 - a stray file on the index is not ours to judge
            continue
        if canonicalize_name(f.filename.split("-")[0]) == canonicalize_name(pin.name) \
                and version == Version(pin.version):
            mine.append(f)
    for f in rank_wheels(mine, tags):
        if local and f.sha256 is None:
            f = replace(f, sha256=sha256_of_local(f.url, tool="uv"))
        if f.sha256 in pin.hashes:
            size = f.size if f.size is not None else local_size(f.url)
            return replace(f, size=size)
    key = project_url(pin.source, pin.name)
    if pages.get(key) is not None:  # read before uv finished: the index may have gained the file since
        pages[key] = None
        return _pick_uncached(pin, tags, flat, cache, pages)
    raise LockError(f"uv resolved {pin.name}=={pin.version} from {pin.source}, but none of its files there with "
                    f"the hashes uv gives installs on this target", hint="pin another version of it in the spec")


def local_size(url: str) -> int | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        from envctl.lock.pins import file_sizes

        return file_sizes([url]).get(url)
    path = Path(unquote(parsed.path))
    return path.stat().st_size if path.exists() else None
