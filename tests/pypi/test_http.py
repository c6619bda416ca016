"""envctl's HTTP client against a real HTTP/1.1 server on loopback: one kept-alive connection
per host and thread, redirects followed, a connection the server dropped opened again, and
failures named in one line."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envctl.errors import PackageIndexError
from envctl.pypi import http


@pytest.fixture()
def server():
    seen: dict = {"connections": set(), "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            seen["connections"].add(self.client_address)
            seen["requests"] += 1
            if self.path == "/old":
                self._send(301, b"", {"Location": "/new/"})
            elif self.path == "/drop":  # answers, then closes the kept connection behind the client's back
                self._send(200, b"once", {})
                self.close_connection = True
            elif self.path == "/missing":
                self._send(404, b"not here", {})
            else:
                self._send(200, f"page {self.path}".encode(), {"ETag": '"v1"'})

        def _send(self, code, body, headers):
            self.send_response(code)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def _in_fresh_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()))
    t.start()
    t.join()
    return out["value"]


def test_requests_of_one_thread_share_one_connection_and_redirects_are_followed(server):
    url, seen = server

    def work():
        bodies = [http.get(f"{url}/p{i}").body for i in range(5)]
        moved = http.get(f"{url}/old")
        return bodies, moved

    bodies, moved = _in_fresh_thread(work)
    assert bodies == [f"page /p{i}".encode() for i in range(5)]
    assert moved.status == 200 and moved.body == b"page /new/" and moved.url == f"{url}/new/"
    assert moved.header("etag") == '"v1"'
    assert seen["requests"] == 7 and len(seen["connections"]) == 1


def test_a_connection_the_server_closed_is_opened_again(server):
    url, seen = server

    def work():
        return [http.get(f"{url}/drop").body, http.get(f"{url}/after").body]

    assert _in_fresh_thread(work) == [b"once", b"page /after"]
    assert len(seen["connections"]) == 2


def test_statuses_are_errors_naming_the_url_unless_allowed(server):
    url, _ = server
    with pytest.raises(PackageIndexError, match=r"package index http://127.0.0.1:\d+/missing answered HTTP 404"):
        http.get(f"{url}/missing")
    assert http.get(f"{url}/missing", allow=(404,)).status == 404


def test_a_refused_connection_is_one_line():
    with pytest.raises(PackageIndexError, match=r"http://127.0.0.1:9/simple/ is unreachable: connection refused"):
        http.get("http://127.0.0.1:9/simple/")


def test_a_host_is_looked_up_once_even_when_the_lookup_fails(monkeypatch):
    # Sixteen reads against a resolver that takes its time and fails: one lookup, one wait.
    import socket
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    calls = []

    def slow_failure(host, port, *args, **kwargs):
        calls.append(host)
        _time.sleep(0.3)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(http.socket, "getaddrinfo", slow_failure)
    monkeypatch.setattr(http, "_dns", {})
    start = _time.monotonic()

    def read(i):
        with pytest.raises(PackageIndexError, match="host name not resolved"):
            http.get(f"https://pkgs.example.invalid/simple/p{i}/")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(read, range(16)))
    assert calls == ["pkgs.example.invalid"] and _time.monotonic() - start < 2.0


def test_threads_that_connect_at_once_share_one_tls_context(monkeypatch):
    # the CA bundle costs ~30 ms of CPU to load: sixteen threads starting together must load it once
    import threading
    import time

    from envctl import net as netcheck
    from envctl.pypi import http as envhttp

    made = []

    def slow_context():
        time.sleep(0.05)
        made.append(object())
        return made[-1]

    monkeypatch.setattr(netcheck, "ssl_context", slow_context)
    monkeypatch.setattr(envhttp, "_context", None)
    got = []
    threads = [threading.Thread(target=lambda: got.append(envhttp._ssl())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(g is made[0] for g in got) and len(got) == 16


def test_a_range_of_a_local_file_reads_only_those_bytes(tmp_path, monkeypatch):
    """A find-links torch is 200 MB: its metadata is read by ranges, never the whole file (0.4 s)."""
    from pathlib import Path

    from envctl.pypi.http import get_range

    blob = bytes(range(256)) * 40
    wheel = tmp_path / "big file.whl"
    wheel.write_bytes(blob)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read the whole file"))
    url = wheel.as_uri()
    assert get_range(url, None, 100) == (blob[-100:], len(blob))
    assert get_range(url, 5000, 300) == (blob[5000:5300], len(blob))
    assert get_range(url, len(blob) - 10, 300) == (blob[-10:], len(blob))  # clipped at the end
    assert get_range(url, None, len(blob) + 5) == (blob, len(blob))
