"""A small HTTP client for indexes and file hosts: GET with headers, conditional requests,
byte ranges, and every failure turned into one PackageIndexError line naming the URL.

urllib only (no new dependency); TLS through the CA bundle pip would use.  ``file://`` URLs
and plain paths are read from disk so a mirror folder works like an index.
"""

from __future__ import annotations

import functools
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl.errors import PackageIndexError

TIMEOUT = 30.0
USER_AGENT = "envctl (matrix refresh; +https://github.com/envctl)"


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def get(url: str, *, headers: dict[str, str] | None = None, timeout: float = TIMEOUT,
        allow: tuple[int, ...] = (), what: str = "package index") -> Response:
    """GET ``url``.  Statuses in ``allow`` (304, 404, ...) come back as responses; every other
    failure raises PackageIndexError naming the URL and the reason."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return _get_file(url, parsed, headers or {}, allow=allow, what=what)
    from envctl.netcheck import _reason

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl()) as resp:
            return Response(url, resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        if exc.code in allow:
            return Response(url, exc.code, b"", {k.lower(): v for k, v in (exc.headers or {}).items()})
        raise PackageIndexError(f"{what} {url} answered HTTP {exc.code}",
                                hint="check the URL, or try again later") from None
    except urllib.error.URLError as exc:
        raise PackageIndexError(f"{what} {url} is unreachable: {_reason(exc.reason)}",
                                hint="check the network or name a reachable mirror") from None
    except (socket.timeout, TimeoutError):
        raise PackageIndexError(f"{what} {url} is unreachable: timed out after {timeout:.0f}s",
                                hint="check the network or name a reachable mirror") from None
    except (OSError, ValueError) as exc:  # connection reset mid-body, bad chunking
        raise PackageIndexError(f"{what} {url} failed mid-transfer: {exc}", hint="try again") from None


@functools.lru_cache(maxsize=1)
def _ssl():
    """One TLS context for every request: loading the CA bundle costs ~30 ms of CPU a time."""
    from envctl.netcheck import ssl_context

    return ssl_context()


def _get_file(url: str, parsed, headers: dict[str, str], *, allow: tuple[int, ...], what: str) -> Response:
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else url)
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        if 404 in allow:
            return Response(url, 404, b"")
        raise PackageIndexError(f"{what} {url} does not exist", hint="fix the path")
    data = path.read_bytes()
    rng = headers.get("Range")
    if rng:
        start, end = _parse_range(rng, len(data))
        return Response(url, 206, data[start:end + 1],
                        {"content-range": f"bytes {start}-{end}/{len(data)}"})
    return Response(url, 200, data)


def _parse_range(value: str, size: int) -> tuple[int, int]:
    spec = value.split("=", 1)[1]
    first, _, last = spec.partition("-")
    if not first:
        return max(0, size - int(last)), size - 1
    return int(first), min(size - 1, int(last)) if last else size - 1


def get_range(url: str, start: int | None, length: int, *, what: str = "wheel") -> tuple[bytes, int]:
    """Bytes ``start`` .. ``start+length-1`` of ``url`` (``start`` None: the last ``length``
    bytes), and the file's total size.  A host that ignores the Range header is an error:
    reading a 500 MB wheel whole is what this exists to avoid."""
    rng = f"bytes=-{length}" if start is None else f"bytes={start}-{start + length - 1}"
    resp = get(url, headers={"Range": rng, "Accept-Encoding": "identity"}, what=what)
    if resp.status != 206:
        raise PackageIndexError(f"{what} {url} ignored an HTTP range request (answered {resp.status}, not 206)",
                                hint="use a file host that serves byte ranges, or one with PEP 658 .metadata files")
    total = (resp.header("content-range") or "").rpartition("/")[2]
    if not total.isdigit():
        raise PackageIndexError(f"{what} {url} answered a range without its total size (Content-Range: "
                                f"{resp.header('content-range')!r})", hint="use another file host")
    return resp.body, int(total)
