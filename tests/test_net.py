"""envctl.net.unreachable: one quick probe per host, kept for the process (a refusal judging a
handful of specs on three hosts must stay fast).  Real sockets: a local server, a closed port."""

from __future__ import annotations

import socket
import time

from envctl import net

try:
    from tests.fixtures.pypi_index import LocalIndex, serve
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import LocalIndex, serve


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening, then closed: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_host_is_probed_once_and_only_the_unreachable_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(net, "_REACHED", {})
    index, shutdown = serve(LocalIndex(root=tmp_path))
    try:
        dead = f"http://127.0.0.1:{closed_port()}"
        urls = [f"{index.url}/simple", f"{index.url}/whl/cu126", f"{dead}/simple", f"{dead}/whl/cu126",
                str(tmp_path), str(tmp_path / "missing"), (tmp_path / "missing").as_uri()]
        started = time.monotonic()
        down = net.unreachable(urls, timeout=2.0)
        assert time.monotonic() - started < 2.0
        assert down == {f"{dead}/simple": "connection refused", f"{dead}/whl/cu126": "connection refused",
                        str(tmp_path / "missing"): "does not exist",
                        (tmp_path / "missing").as_uri(): "does not exist"}
        assert [path for path, _status, _range in index.log] == ["/"]  # one probe for both of its URLs
        again = net.unreachable([f"{index.url}/simple/torch/", f"{dead}/other"])
        assert again == {f"{dead}/other": "connection refused"}
        assert len(index.log) == 1  # the answers are kept for the process
    finally:
        shutdown()


def test_a_host_that_never_answers_costs_one_short_timeout(monkeypatch):
    monkeypatch.setattr(net, "_REACHED", {})
    with socket.socket() as silent:  # listens (the kernel completes the handshake) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        down = net.unreachable([f"{url}/simple", f"{url}/whl/cu126"], timeout=0.5)
        assert time.monotonic() - started < 1.5
    assert down == {f"{url}/simple": "timed out", f"{url}/whl/cu126": "timed out"}


def test_a_malformed_url_is_named_never_a_traceback(capfd):
    """A neighbour spec's pip_index or ENVCTL_INDEX_URL with a typo: one reason, at once, and no
    traceback from the probe thread (it used to print one and report 'no answer' after 2.5 s)."""
    start = time.monotonic()
    found = net.unreachable(["https://[::1/simple", "http://localhost:abc/simple"], timeout=2.0)
    assert time.monotonic() - start < 1.0
    assert found["https://[::1/simple"].startswith("not a valid URL")
    assert found["http://localhost:abc/simple"].startswith("not a valid URL")
    assert "Traceback" not in capfd.readouterr().err


def test_a_token_alone_before_the_host_is_hidden_too():
    """Index URLs often log in with a token as the user name and no password: it is the secret."""
    assert net.redact("package index https://s3cr3tT0ken@pkgs.example/simple is unreachable") == \
        "package index https://***@pkgs.example/simple is unreachable"
    assert net.redact("http://bob:pw@h:1/x and http://bob@h/y") == "http://bob:***@h:1/x and http://***@h/y"
    assert net.redact("no url, a@b.c") == "no url, a@b.c"


def test_a_local_channel_whose_folder_has_a_space_is_found(tmp_path):
    """doctor and the lock check a channel as the file:// URI it is given by (percent-encoded)."""
    folder = tmp_path / "my chan"
    folder.mkdir()
    net.check_reachable(folder.as_uri(), what="conda channel")  # %20 in the URI: no error
