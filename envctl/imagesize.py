"""What an image will weigh before it is built: estimated from its lock.

The files a lock names have known download sizes (the package cache has them on disk, a
find-links folder too, the index answers a HEAD request for the rest); installed, they grow
by a measured factor (``image_estimate`` in data/defaults.yaml says how it was measured), on
top of the base image.  ``envctl doctor`` checks free disk against this when no image is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.spec import ImageSpec, defaults


@dataclass(frozen=True)
class Estimate:
    bytes: int  # the whole image: base plus the installed environment
    download_bytes: int  # the lock's files as fetched
    factor: float
    base_bytes: int

    @property
    def source(self) -> str:
        return (f"estimated from the lock: {self.download_bytes / 1e9:.2f} GB of packages x {self.factor:g} "
                f"installed + {self.base_bytes / 1e9:.2f} GB base")


def locked_files(data: Any, platform: str) -> list[tuple[str, str]]:
    """(url, sha256) of every package a parsed lockfile installs on ``platform``."""
    out = []
    for p in (data or {}).get("package") or []:
        if isinstance(p, dict) and p.get("platform") == platform and p.get("url"):
            out.append((str(p["url"]), str((p.get("hash") or {}).get("sha256") or "")))
    return out


def download_sizes(files: list[tuple[str, str]], *, cache_root: Path | None = None) -> dict[str, int]:
    """url -> bytes: a copy in the package cache first (no network), then the URL itself
    (stat for local files, HEAD for remote ones).  A size that cannot be had is left out."""
    from urllib.parse import unquote, urlparse

    from envctl.cache import PackageCache
    from envctl.lock.pins import file_sizes

    cache = PackageCache(cache_root, mirrors=())
    sizes: dict[str, int] = {}
    for url, sha256 in files:
        cached = cache.path_for(sha256, unquote(Path(urlparse(url).path).name)) if sha256 else None
        if cached is not None and cached.is_file():
            sizes[url] = cached.stat().st_size
    return sizes | file_sizes([url for url, _ in files if url not in sizes])


def estimate(spec: ImageSpec, data: Any, *, base_bytes: int | None = None,
             cache_root: Path | None = None) -> Estimate | None:
    """The image of ``spec`` built from the parsed lockfile ``data``; None when a file's size is unknown
    (offline, say): a partial sum would promise too little disk."""
    files = locked_files(data, spec.platforms[0])
    if not files:
        return None
    sizes = download_sizes(files, cache_root=cache_root)
    if len(sizes) < len({url for url, _ in files}):
        return None
    rule = defaults()["image_estimate"]
    factor = float(rule["unpack_factor"]["cuda" if spec.is_gpu else "cpu"])
    download = sum(sizes.values())
    base = base_bytes if base_bytes is not None else int(rule["base_bytes"])
    return Estimate(bytes=base + round(download * factor), download_bytes=download, factor=factor, base_bytes=base)
