"""A small HTTP client for indexes and file hosts: GET with headers, conditional requests,
byte ranges, and every failure turned into one PackageIndexError line naming the URL.

Kept-alive connections per host and thread (http.client; urllib where a proxy is set), no new
dependency; TLS through the CA bundle pip would use.  ``file://`` URLs
and plain paths are read from disk so a mirror folder works like an index.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from envctl.errors import PackageIndexError

TIMEOUT = 30.0  # seconds one read may wait for a byte
DEADLINE = 120.0  # seconds a whole request may take: a host that trickles a byte per read never times out
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
    failure raises PackageIndexError naming the URL and the reason.  Redirects are followed.
    The whole request ends within ``deadline()`` seconds, however the host dribbles its bytes."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return _get_file(url, parsed, headers or {}, allow=allow, what=what)
    from envctl.net import _reason, redact

    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    limit = deadline()
    shown = redact(url)  # the URL messages name: its password is sent, never shown
    try:
        resp = _fetch(url, headers, timeout, time.monotonic() + limit)
    except _DeadlinePassed:
        raise PackageIndexError(f"{what} {shown} did not answer in full within {limit:.0f}s",
                                hint="the host is too slow or stalls: name another mirror, or raise "
                                     "ENVCTL_HTTP_DEADLINE") from None
    except (socket.timeout, TimeoutError):
        raise PackageIndexError(f"{what} {shown} is unreachable: timed out after {timeout:.0f}s",
                                hint="check the network or name a reachable mirror") from None
    except urllib.error.URLError as exc:  # through a proxy (urllib)
        raise PackageIndexError(f"{what} {shown} is unreachable: {_reason(exc.reason)}",
                                hint="check the network or name a reachable mirror") from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        if isinstance(exc, (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionResetError)):
            raise PackageIndexError(f"{what} {shown} failed mid-transfer: {exc!r}", hint="try again") from None
        raise PackageIndexError(f"{what} {shown} is unreachable: {_reason(exc)}",
                                hint="check the network or name a reachable mirror") from None
    if resp.status >= 300 and resp.status not in allow:
        raise PackageIndexError(f"{what} {shown} answered HTTP {resp.status}",
                                hint="check the URL, or try again later")
    return resp


def deadline() -> float:
    """Seconds one request may take in all (``ENVCTL_HTTP_DEADLINE``, else ``DEADLINE``)."""
    value = os.environ.get("ENVCTL_HTTP_DEADLINE", "")
    try:
        seconds = float(value) if value else DEADLINE
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        from envctl.errors import UsageError

        raise UsageError(f"ENVCTL_HTTP_DEADLINE={value!r} is not a positive number of seconds",
                         hint="unset it, or give seconds such as 300")
    return seconds


class _DeadlinePassed(Exception):
    """A request's overall deadline passed (its connection was cut by the watchdog)."""


def _fetch(url: str, headers: dict[str, str], timeout: float, until: float) -> Response:
    """One GET over a kept-alive connection (redirects followed), or through urllib where a
    proxy is configured for the URL; ``until`` is the monotonic time it must be done by."""
    from envctl.net import credentials_as_header

    for _ in range(MAX_REDIRECTS + 1):
        # user:password@ goes as a header, to this URL's host alone: a redirect elsewhere loses it
        bare, auth = credentials_as_header(url)
        parsed = urlparse(bare)
        if _proxied(parsed):
            return _fetch_urllib(url, bare, {**headers, **auth}, timeout, until)
        status, got, body = _pooled_request(parsed, {**headers, **auth}, timeout, until)
        if status in (301, 302, 303, 307, 308) and got.get("location"):
            url = urljoin(url, got["location"])
            continue
        return Response(url, status, body, got)
    raise http.client.HTTPException(f"more than {MAX_REDIRECTS} redirects")


MAX_REDIRECTS = 8
IDLE_REOPEN = 30.0  # seconds a kept connection may sit unused before it is opened afresh
_local = threading.local()
_executor = None
_executor_lock = threading.Lock()


def executor():
    """One pool of worker threads per process for index and file-host requests: its threads keep
    their connections open, so work queued later (a lock's picks after its prefetch) reuses them."""
    global _executor
    with _executor_lock:
        if _executor is None:
            from concurrent.futures import ThreadPoolExecutor

            _executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="envctl-http")
        return _executor


def _pooled_request(parsed, headers: dict[str, str], timeout: float,
                    until: float) -> tuple[int, dict[str, str], bytes]:
    """A request on this thread's open connection to the host: one TLS handshake and one DNS
    lookup per host and thread instead of one per file (cold locks read ~60 files).  A kept
    connection the server closed meanwhile is opened again once."""
    key = (parsed.scheme, parsed.hostname, parsed.port)
    pool = _local.__dict__.setdefault("pool", {})
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    for attempt in (0, 1):
        conn = pool.get(key)
        if conn is not None and time.monotonic() - getattr(conn, "last_used", 0) > IDLE_REOPEN:
            conn.close()  # idle so long a NAT or firewall may have dropped it without a word
            conn = None
        reused = conn is not None
        if conn is None:
            conn = pool[key] = _connection(parsed, timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        _watch(conn, until)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                http.client.CannotSendRequest, http.client.ResponseNotReady):
            conn.close()
            pool.pop(key, None)
            if getattr(conn, "cut", False):
                raise _DeadlinePassed() from None
            if reused and attempt == 0:
                continue
            raise
        except BaseException:
            conn.close()
            pool.pop(key, None)
            if getattr(conn, "cut", False):
                raise _DeadlinePassed() from None
            raise
        finally:
            _unwatch(conn)
        if getattr(conn, "cut", False):  # cut between the last byte and here: the body may be short
            conn.close()
            pool.pop(key, None)
            raise _DeadlinePassed()
        got = {k.lower(): v for k, v in resp.getheaders()}
        conn.last_used = time.monotonic()
        if resp.will_close:
            conn.close()
            pool.pop(key, None)
        return resp.status, got, body
    raise AssertionError("unreachable")


# The watchdog: one daemon thread cuts (shuts down the socket of) every request past its deadline,
# so a blocked read returns at once.  abort() cuts them all: on Ctrl-C or SIGTERM the worker
# threads the interpreter joins before it exits are not left waiting on a silent host.
_inflight: dict[http.client.HTTPConnection, float] = {}
_watch_cv = threading.Condition()
_watchdog: threading.Thread | None = None
_aborted = False


def _watch(conn: http.client.HTTPConnection, until: float) -> None:
    global _watchdog
    with _watch_cv:
        if _aborted:
            raise KeyboardInterrupt("envctl is stopping: no new requests")
        conn.cut = False
        _inflight[conn] = until
        if _watchdog is None:
            _watchdog = threading.Thread(target=_watch_loop, name="envctl-http-deadline", daemon=True)
            _watchdog.start()
        _watch_cv.notify()


def _unwatch(conn: http.client.HTTPConnection) -> None:
    with _watch_cv:
        _inflight.pop(conn, None)


def _watch_loop() -> None:
    with _watch_cv:
        while True:
            now = time.monotonic()
            for conn, until in list(_inflight.items()):
                if until <= now:
                    del _inflight[conn]
                    _cut(conn)
            _watch_cv.wait(min(_inflight.values(), default=now + 3600) - now)


def _cut(conn: http.client.HTTPConnection) -> None:
    conn.cut = True
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def abort() -> None:
    """Cut every request in progress and refuse new ones: the process is stopping."""
    global _aborted
    with _watch_cv:
        _aborted = True
        cut = list(_inflight)
        _inflight.clear()
    for conn in cut:
        _cut(conn)


class _Connection(http.client.HTTPSConnection):
    """Connects to the host's address looked up once per process (see ``_addresses``)."""

    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class _PlainConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout)


def _connection(parsed, timeout: float) -> http.client.HTTPConnection:
    if parsed.scheme == "https":
        return _Connection(parsed.hostname, parsed.port or 443, timeout=timeout, context=_ssl())
    if parsed.scheme == "http":
        return _PlainConnection(parsed.hostname, parsed.port or 80, timeout=timeout)
    raise ValueError(f"unsupported URL scheme {parsed.scheme!r}")


_dns_lock = threading.Lock()
_dns: dict[tuple[str, int], object] = {}  # (host, port) -> addresses, an error, or a lock while asked


def _addresses(host: str, port: int) -> list:
    """getaddrinfo once per host and process: sixteen threads asking the resolver at once lose a
    query now and then, and the resolver's retry costs 5 s (seen on the build machines).  Each host
    is asked under its own lock; a failure is remembered too, so an unreachable resolver costs one
    wait, not one per request."""
    key = (host, port)
    with _dns_lock:
        entry = _dns.setdefault(key, threading.Lock())
    if isinstance(entry, type(_dns_lock)):
        with entry:
            with _dns_lock:
                current = _dns[key]
            if current is entry:  # first to ask
                try:
                    current = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except OSError as exc:
                    current = exc
                with _dns_lock:
                    _dns[key] = current
        entry = current
    if isinstance(entry, OSError):
        raise entry
    return entry


def _connect(host: str, port: int, timeout: float | None) -> socket.socket:
    error: OSError | None = None
    for family, kind, proto, _name, address in _addresses(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"no address for {host}")


def _proxied(parsed) -> bool:
    proxies = urllib.request.getproxies()
    return parsed.scheme in proxies and not urllib.request.proxy_bypass(parsed.hostname or "")


def _fetch_urllib(url: str, bare: str, headers: dict[str, str], timeout: float, until: float) -> Response:
    """``bare``: ``url`` without its credentials (in ``headers`` now); the response names ``url``."""
    request = urllib.request.Request(bare, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_ssl()) as resp:
            chunks = []  # read as it comes, so the deadline is checked between reads
            while chunk := resp.read1(1 << 16):
                chunks.append(chunk)
                if time.monotonic() > until:
                    raise _DeadlinePassed()
            return Response(url, resp.status, b"".join(chunks), {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        return Response(url, exc.code, b"", {k.lower(): v for k, v in (exc.headers or {}).items()})


_ssl_lock = threading.Lock()


def _ssl():
    """One TLS context for every connection of the process, made by the first to need it:
    loading the CA bundle costs ~30 ms of CPU a time.  (functools.lru_cache let the first sixteen
    threads each make their own: 0.5 s of CPU, taken from uv resolving beside them on two cores.)"""
    global _context
    with _ssl_lock:
        if _context is None:
            from envctl.net import ssl_context

            _context = ssl_context()
        return _context


_context = None


def _get_file(url: str, parsed, headers: dict[str, str], *, allow: tuple[int, ...], what: str) -> Response:
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else url)
    if path.is_dir():
        path = path / "index.html"
    if not path.is_file():
        if 404 in allow:
            return Response(url, 404, b"")
        raise PackageIndexError(f"{what} {url} does not exist", hint="fix the path")
    rng = headers.get("Range")
    if rng:  # only the bytes asked for: the metadata of a 200 MB local torch is a few KiB of it
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start, end = _parse_range(rng, size)
            fh.seek(start)
            data = fh.read(max(0, end + 1 - start))
        return Response(url, 206, data, {"content-range": f"bytes {start}-{end}/{size}"})
    return Response(url, 200, path.read_bytes())


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
