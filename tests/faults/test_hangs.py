"""Item 8: nothing waits forever.  An index that trickles a byte at a time meets the request's
overall deadline; SIGINT and SIGTERM during a stalled fetch end envctl within a second or two;
a FIFO where envctl reads a document is refused instead of blocking."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import assert_one_line_error, envctl, start_envctl, wait_for


def _refresh_args(url: str, tmp_path) -> list[str]:
    from tests.faults.conftest import REPO

    matrix = tmp_path / "matrix.yaml"
    matrix.write_bytes((REPO / "envctl" / "data" / "release-matrix.yaml").read_bytes())
    return ["matrix", "refresh", "--check", "--no-cache", "--index-url", url, "--pytorch-index", "none",
            "--file", str(matrix)]


def test_a_trickling_index_ends_at_the_overall_deadline(trickling_index, tmp_path):
    url, _ = trickling_index
    started = time.monotonic()
    result = envctl(*_refresh_args(url, tmp_path), env={"ENVCTL_HTTP_DEADLINE": "2"}, timeout=60)
    assert time.monotonic() - started < 20
    assert_one_line_error(result, 1, f"{url}/torch/", "within 2s")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_stalled_fetch_ends_envctl_at_once(trickling_index, tmp_path, signum, code):
    url, connections = trickling_index
    proc = start_envctl(*_refresh_args(url, tmp_path))
    try:
        wait_for(lambda: len(connections) >= 3, timeout=60)  # torch and its companions are being read
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code, proc.stderr.read()[-2000:]
    assert took < 2.5, took


def test_a_fifo_where_envctl_reads_a_document_is_one_line(tmp_path):
    """No writer ever opens these FIFOs: the old reads blocked forever (the timeout catches it)."""
    images = tmp_path / "project" / "images"
    images.mkdir(parents=True)
    spec, matrix, bench, mirror = images / "fifo-spec.yaml", tmp_path / "m.yaml", tmp_path / "b.json", tmp_path / "mirror"
    mirror.mkdir()
    for fifo in (spec, matrix, bench, mirror / "envctl-mirror.json"):
        os.mkfifo(fifo)
    env = {"ENVCTL_PROJECT": str(tmp_path / "project"), "ENVCTL_CACHE": str(tmp_path / "cache")}
    assert_one_line_error(envctl("lock", "fifo-spec", env=env, timeout=30), 2, str(spec), "is a FIFO")
    assert_one_line_error(envctl("matrix", "refresh", "--check", "--file", str(matrix), env=env, timeout=30), 2,
                          str(matrix), "is a FIFO")
    assert_one_line_error(envctl("bench", "show", str(bench), env=env, timeout=30), 2, str(bench), "is a FIFO")
    assert_one_line_error(envctl("cache", "import", str(mirror), env=env, timeout=30), 1,
                          str(mirror / "envctl-mirror.json"), "is a FIFO")


def test_a_trickling_file_host_fails_the_download_instead_of_hanging(trickling_index, tmp_path, monkeypatch):
    """A package download: a rate floor (STALL_BYTES in STALL_WINDOW s), here a 1 s window."""
    import threading

    from envctl import cache as cache_module
    from envctl.errors import CacheError

    monkeypatch.setattr(cache_module, "STALL_WINDOW", 1.0, raising=False)
    url, _ = trickling_index
    cache = cache_module.PackageCache(tmp_path / "cache", mirrors=())
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            cache.get(url=f"{url}/x-1.0-py3-none-any.whl", sha256="0" * 64, filename="x-1.0-py3-none-any.whl")
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the download still hangs"
    assert isinstance(outcome[0], CacheError) and "stalled" in str(outcome[0]), outcome
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
