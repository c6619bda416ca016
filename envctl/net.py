"""Is a channel or index URL reachable?  Asked once before a solve.

Solvers retry for minutes and then blame the package; a quick probe first lets
envctl name the URL and say whether it was refused, timed out or unknown.
``unreachable`` asks many at once, quickly, for the suggestions of a refused name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse, urlunparse

from envctl.errors import LockError

if TYPE_CHECKING:
    import ssl

# scheme://user:password@ -- the password, up to the last '@' before the path (an unquoted '@' in it too).
_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)([^/\s:@\"']+)(:[^/\s\"']*)?@")


def _hidden(m: re.Match) -> str:
    # user:password@ keeps the user; a lone token@ (a common index login) is all secret
    return f"{m[1]}{m[2]}:***@" if m[3] is not None else f"{m[1]}***@"


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (user:***@host, or
    ***@host for a token alone): an index URL may carry credentials, and errors, progress lines
    and JSON end up in CI logs."""
    return _CREDENTIALS.sub(_hidden, text) if "@" in text else text


def credentials_as_header(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@``, and the basic Authorization header that carries them
    instead ({} where it has none).  urllib and http.client take the credentials for part of the
    host name: a refused connection was called a DNS failure, and envctl's own requests never logged in."""
    parsed = urlparse(url)
    if "@" not in parsed.netloc:
        return url, {}
    import base64

    userinfo, _, host = parsed.netloc.rpartition("@")  # the last '@': an unquoted one may be in the password
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunparse(parsed._replace(netloc=host)), {"Authorization": f"Basic {token}"}


_CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def ssl_context() -> ssl.SSLContext:
    """The CA bundle pip would use here (PIP_CERT, SSL_CERT_FILE, or the system bundle)."""
    import ssl

    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), *_CA_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return ssl.create_default_context(cafile=candidate)
    return ssl.create_default_context()


def check_reachable(url: str, *, what: str, timeout: float = 10.0) -> None:
    """Raise LockError naming ``url`` when it cannot be reached; local paths must exist."""
    import urllib.error
    import urllib.request

    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else url)  # a file:// URI is %-encoded
        if not path.exists():
            raise LockError(f"{what} {url} does not exist", hint="fix the path in the spec")
        return
    bare, auth = credentials_as_header(url)
    shown = redact(url)
    try:
        with urllib.request.urlopen(urllib.request.Request(bare, headers=auth, method="GET"), timeout=timeout,
                                    context=ssl_context()) as resp:
            resp.read(1)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404) and parsed.path.rstrip("/").endswith(("simple", "whl")):
            return  # an index root may refuse listing yet serve packages
        if exc.code >= 500 or exc.code in (401, 403):
            raise LockError(f"{what} {shown} answered HTTP {exc.code}",
                            hint="check the URL and your credentials, or use a mirror") from None
    except urllib.error.URLError as exc:
        raise LockError(f"{what} {shown} is unreachable: {_reason(exc.reason)}",
                        hint="check the network or name a reachable mirror in the spec") from None
    except TimeoutError:  # socket.timeout is TimeoutError since Python 3.10
        raise LockError(f"{what} {shown} is unreachable: timed out after {timeout:.0f}s",
                        hint="check the network or name a reachable mirror in the spec") from None


# Host -> why it is unreachable (None: it answers), for this process: every source a command
# judges on one host costs one probe.
_REACHED: dict[str, str | None] = {}


def unreachable(urls: list[str], *, timeout: float = 2.0) -> dict[str, str]:
    """The ``urls`` this machine cannot reach, each with why, from one quick probe per host (its
    root URL; a local path: whether it exists), run side by side and kept for the process: a
    refusal that judges a handful of specs on three hosts waits one short timeout at most."""
    import threading
    import time

    keys = {url: _host_key(url) for url in urls}
    todo = sorted({k for k in keys.values() if k not in _REACHED})
    answers: dict[str, str | None] = {}
    # Daemon threads joined against one deadline: a resolver that hangs (DNS knows no socket
    # timeout) neither holds the answer nor the interpreter's exit.
    threads = [threading.Thread(target=lambda k=k: answers.__setitem__(k, _probe(k, timeout)), daemon=True)
               for k in todo]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for key in todo:
        _REACHED[key] = answers[key] if key in answers else f"no answer in {timeout:g}s"
    return {url: _REACHED[key] for url, key in keys.items() if _REACHED[key] is not None}


def _host_key(url: str) -> str:
    try:
        parsed = urlparse(url)
    except ValueError:  # "https://[::1/x": a spec's or ENVCTL_INDEX_URL's typo, judged by _probe
        return url
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme == "file" else url
    return f"{parsed.scheme}://{parsed.netloc}/"


def _probe(key: str, timeout: float) -> str | None:
    """Why ``key`` (a host's root URL or a path) cannot be reached, or None: any HTTP answer counts."""
    import urllib.error
    import urllib.request

    if "://" not in key:
        return None if Path(key).exists() else "does not exist"
    try:
        urlparse(key).port  # noqa: B018 - raises ValueError on a bad host or port, as urlopen would
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    bare, auth = credentials_as_header(key)
    try:
        with urllib.request.urlopen(urllib.request.Request(bare, headers=auth, method="HEAD"), timeout=timeout,
                                    context=ssl_context()):
            return None
    except urllib.error.HTTPError:
        return None  # the host answered
    except urllib.error.URLError as exc:
        return _reason(exc.reason)
    except (TimeoutError, OSError) as exc:
        return "timed out" if isinstance(exc, TimeoutError) else str(exc)
    except ValueError as exc:  # http.client.InvalidURL and kin: never a traceback in a probe thread
        return f"not a valid URL ({exc})"


def _reason(reason: object) -> str:
    import socket
    import ssl

    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return "host name not resolved (DNS)"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason})"
    return str(reason)
