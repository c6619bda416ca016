"""Item 10: what an index URL carries and what an index sends stay off the terminal.  A password in
an index URL is shown as user:***@ (errors, progress, JSON); control bytes an index sent are shown
as visible escapes, never sent to the terminal as they are."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.faults.conftest import REPO, assert_one_line_error, envctl

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m"


@pytest.fixture
def index():
    """A real HTTP server on localhost: /broken/... answers 500, /hostile/... a PEP 691 page whose
    api-version holds terminal control sequences.  It never asks for the credentials it is given."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/broken/"):
                self.send_error(500)
                return
            body = json.dumps({"meta": {"api-version": HOSTILE}, "files": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _refresh(url: str, tmp_path, *extra: str):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_bytes((REPO / "envctl" / "data" / "release-matrix.yaml").read_bytes())
    return envctl("matrix", "refresh", "--check", "--no-cache", "--index-url", url, "--pytorch-index", "none",
                  "--file", str(matrix), *extra, timeout=60)


def test_an_index_password_is_never_shown(index, tmp_path):
    url = f"http://bob:s3cr3t-pw@{index}/broken/simple"
    result = _refresh(url, tmp_path)
    assert_one_line_error(result, 1, f"http://bob:***@{index}/broken/simple/torch/", "HTTP 500")
    as_json = _refresh(url, tmp_path, "--json")
    assert json.loads(as_json.stdout)["error"].startswith(f"package index http://bob:***@{index}/")
    for out in (result.stdout, result.stderr, as_json.stdout, as_json.stderr):
        assert "s3cr3t-pw" not in out


def test_control_bytes_from_an_index_are_escaped_in_the_error_line(index, tmp_path):
    result = _refresh(f"http://{index}/hostile/simple", tmp_path)
    line = assert_one_line_error(result, 1, "not valid PEP 691 JSON", r"\x1b]0;pwned\x07\x1b[2J\x9b31m")
    for char in ("\x1b", "\x07", "\x9b"):
        assert char not in result.stderr, line
