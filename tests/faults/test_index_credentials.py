"""An index URL that carries user:password@ (real sockets): the credentials are sent as a basic
Authorization header, never as part of the host name, so a refused connection is called refused,
a host DNS does not know is called DNS, a server that asks for them is served, and the password
is in no message.  urllib took "bob:pw@127.0.0.1" for the host and called every failure DNS."""

from __future__ import annotations

import base64
import http.server
import socket
import threading

import pytest

from envctl import net
from envctl.errors import LockError, PackageIndexError
from envctl.pypi import http as pypi_http
from tests.faults.conftest import REPO, assert_one_line_error, envctl

PASSWORD = "s3cr3t@pw"  # an unquoted '@' in it too, as the redaction allows
USER = "bob"


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening, then closed: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_index():
    """A real HTTP server on localhost that answers 401 unless the request carries bob's basic
    credentials; it records each request's Host header and Authorization."""
    seen: list[tuple[str, str]] = []
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bytes) -> None:
            seen.append((self.headers.get("Host", ""), self.headers.get("Authorization", "")))
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(b"private page")

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(b"")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _message(call) -> str:
    with pytest.raises((LockError, PackageIndexError)) as caught:
        call()
    text = str(caught.value) + " " + (caught.value.hint or "")
    assert PASSWORD not in text and "s3cr3t" not in text, text
    return text


def test_a_refused_connection_is_called_refused():
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{_closed_port()}/private/simple"
    assert "connection refused" in _message(lambda: net.check_reachable(url, what="package index"))
    assert "connection refused" in _message(lambda: pypi_http.get(url))
    assert net.unreachable([url], timeout=5) == {url: "connection refused"}


def test_a_host_dns_does_not_know_is_called_dns():
    url = f"http://{USER}:{PASSWORD}@no-such-index.invalid/simple"  # .invalid never resolves (RFC 6761)
    assert "(DNS)" in _message(lambda: net.check_reachable(url, what="package index"))
    assert "(DNS)" in _message(lambda: pypi_http.get(url))
    assert net.unreachable([url], timeout=5) == {url: "host name not resolved (DNS)"}


def test_the_credentials_are_sent_as_basic_auth_to_the_host_alone(private_index):
    where, seen = private_index
    url = f"http://{USER}:{PASSWORD}@{where}/private/repodata.json"  # 401 here is an error, not a listing refusal
    net.check_reachable(url, what="conda channel")
    assert pypi_http.get(url).body == b"private page"
    assert net.unreachable([url], timeout=5) == {}
    assert seen and all(host == where and auth.startswith("Basic ") for host, auth in seen), seen
    # without them, the same server refuses: the test's server does check
    assert "HTTP 401" in _message(lambda: net.check_reachable(f"http://{where}/private/repodata.json",
                                                                what="conda channel"))


def test_the_command_line_says_refused_and_never_shows_the_password(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_bytes((REPO / "envctl" / "data" / "release-matrix.yaml").read_bytes())
    port = _closed_port()
    result = envctl("matrix", "refresh", "--check", "--no-cache", "--index-url",
                    f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/simple", "--pytorch-index", "none",
                    "--file", str(matrix), env={"HTTP_PROXY": "", "http_proxy": ""}, timeout=60)
    assert_one_line_error(result, 1, f"http://{USER}:***@127.0.0.1:{port}/simple", "connection refused")
    assert "s3cr3t" not in result.stdout + result.stderr
