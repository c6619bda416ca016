"""Client for the simple repository API: PEP 691 JSON, falling back to PEP 503 HTML.

``project_page`` asks for JSON (``Accept: application/vnd.pypi.simple.v1+json``) and reads
whichever the index answers; pages are cached with their ETag / Last-Modified and asked for
again conditionally, so an unchanged index costs one 304.  Anything that is neither format is
a PackageIndexError naming the URL, never an empty project.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

from packaging.tags import Tag
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from envctl.errors import PackageIndexError
from envctl.pypi import http

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True)
class DistFile:
    """One file of a project as the index lists it."""

    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    yanked: bool = False
    requires_python: str | None = None
    metadata: bool | None = None  # PEP 658/714: True served, False not served, None not said
    metadata_sha256: str | None = None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    def parsed(self) -> tuple[Version, tuple[int, ...] | tuple[()], frozenset[Tag]]:
        """(version, build tag, tags) of a wheel; sdists have no build tag and no tags.
        Raises PackageIndexError for a file name no installer would accept."""
        try:
            if self.is_wheel:
                _name, version, build, tags = parse_wheel_filename(self.filename)
                return version, tuple(build) if build else (), tags
            _name, version = parse_sdist_filename(self.filename)
            return version, (), frozenset()
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
            raise PackageIndexError(f"index file {self.filename!r} ({self.url}) has an invalid name: {exc}",
                                    hint="fix or remove that file on the index") from None


@dataclass(frozen=True)
class ProjectPage:
    name: str
    url: str
    files: tuple[DistFile, ...]
    format: str  # "json" (PEP 691) or "html" (PEP 503)


def project_url(index_url: str, name: str) -> str:
    return f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"


def project_page(index_url: str, name: str, *, cache_dir: Path | None = None) -> ProjectPage:
    """The files of ``name`` on ``index_url`` (conditional request when cached)."""
    url = project_url(index_url, name)
    cached = _load(cache_dir, url)
    headers = {"Accept": ACCEPT}
    if cached and cached.get("etag"):
        headers["If-None-Match"] = cached["etag"]
    if cached and cached.get("last_modified"):
        headers["If-Modified-Since"] = cached["last_modified"]
    resp = http.get(url, headers=headers, allow=(304,))
    if resp.status == 304 and cached:
        body, ctype = cached["body"].encode(), cached["content_type"]
    else:
        body, ctype = resp.body, (resp.header("content-type") or "")
        if cache_dir is not None and (resp.header("etag") or resp.header("last-modified")):
            _store(cache_dir, url, {"etag": resp.header("etag"), "last_modified": resp.header("last-modified"),
                                    "content_type": ctype, "body": body.decode("utf-8", "replace")})
    return parse_page(url, body, ctype, name=name)


def parse_page(url: str, body: bytes, content_type: str, *, name: str) -> ProjectPage:
    """Parse a project page, JSON or HTML by its content type (or its first byte)."""
    ctype = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if ctype == JSON_TYPE or ctype.endswith("+json") or ctype == "application/json" \
            or (not ctype and text.lstrip().startswith("{")):
        return ProjectPage(name, url, _parse_json(url, text), "json")
    if "html" in ctype or text.lstrip().lower().startswith(("<!doctype", "<html")):
        return ProjectPage(name, url, _parse_html(url, text), "html")
    raise PackageIndexError(f"index page {url} is neither PEP 691 JSON nor PEP 503 HTML "
                            f"(Content-Type {content_type or 'missing'!r}, starts {text[:30]!r})",
                            hint="check the index URL: it should be a simple index (…/simple)")


def _parse_json(url: str, text: str) -> tuple[DistFile, ...]:
    try:
        data = json.loads(text)
        major = str(data["meta"]["api-version"]).split(".")[0]
        raw = data["files"]
        if major != "1" or not isinstance(raw, list):
            raise ValueError(f"api-version {data['meta']['api-version']}")
        files = []
        for f in raw:
            meta = f.get("core-metadata", f.get("data-dist-info-metadata"))
            files.append(DistFile(
                filename=str(f["filename"]), url=urljoin(url, str(f["url"])),
                sha256=(f.get("hashes") or {}).get("sha256"), size=f.get("size"),
                yanked=bool(f.get("yanked")), requires_python=f.get("requires-python"),
                metadata=None if meta is None else bool(meta),
                metadata_sha256=meta.get("sha256") if isinstance(meta, dict) else None))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackageIndexError(f"index page {url} is not valid PEP 691 JSON: {type(exc).__name__}: {exc}",
                                hint="the index answered garbage: check the URL or try again later") from None
    return tuple(files)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []
        self.text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append(dict(attrs))
            self.text = []

    def handle_data(self, data):
        if self.text is not None:
            self.text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self.text is not None:
            self.anchors[-1]["_text"] = "".join(self.text).strip()
            self.text = None


def _parse_html(url: str, text: str) -> tuple[DistFile, ...]:
    parser = _Anchors()
    try:
        parser.feed(text)
    except Exception as exc:  # noqa: BLE001 - html.parser raises assorted errors on garbage
        raise PackageIndexError(f"index page {url} is not valid PEP 503 HTML: {exc}",
                                hint="check the index URL") from None
    files = []
    for a in parser.anchors:
        href = a.get("href")
        if not href:
            continue
        full = urljoin(url, href)
        frag = urlparse(full).fragment
        sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
        filename = a.get("_text") or Path(urlparse(full).path).name
        meta = a.get("data-core-metadata", a.get("data-dist-info-metadata"))
        meta_sha = meta.split("=", 1)[1] if meta and meta.startswith("sha256=") else None
        files.append(DistFile(
            filename=filename, url=full.split("#")[0], sha256=sha, yanked="data-yanked" in a,
            requires_python=a.get("data-requires-python"),
            metadata=None if meta is None else meta.lower() != "false", metadata_sha256=meta_sha))
    return tuple(files)


def _key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def _load(cache_dir: Path | None, url: str) -> dict | None:
    if cache_dir is None:
        return None
    try:
        return json.loads((cache_dir / f"{_key(url)}.json").read_text())
    except (OSError, ValueError):
        return None  # no cache or a damaged entry: ask unconditionally


def _store(cache_dir: Path, url: str, entry: dict) -> None:
    from envctl.fsio import atomic_write
    try:
        atomic_write(cache_dir / f"{_key(url)}.json", json.dumps(entry))
    except Exception:  # noqa: BLE001 - a cache that cannot be written only costs speed
        pass
