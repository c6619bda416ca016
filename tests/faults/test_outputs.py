"""Item 4: an output option (-o, --html, --junit) that names a device, a FIFO or stdout writes
there directly; it never puts a plain file where a device, a folder or a socket was.

The devices are real character devices made with mknod in the test's folder (the same major and
minor numbers as /dev/null and /dev/full): a regression must not replace the machine's own."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from tests.faults.conftest import assert_one_line_error, envctl


@pytest.fixture
def devices(tmp_path) -> dict[str, Path]:
    made = {}
    for name, minor in (("null", 3), ("full", 7)):
        made[name] = tmp_path / "dev" / name
        made[name].parent.mkdir(exist_ok=True)
        os.mknod(made[name], stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return made


def _is_device(path: Path) -> bool:
    return stat.S_ISCHR(path.lstat().st_mode)


def test_export_to_a_null_device_writes_through_and_the_device_stays(pip_project, devices):
    result = envctl("export", "fixture-pip", "-o", str(devices["null"]), env=pip_project)
    assert result.returncode == 0, result.stderr
    assert _is_device(devices["null"])


def test_export_to_a_full_device_is_one_line_and_exit_1(pip_project, devices):
    result = envctl("export", "fixture-pip", "-o", str(devices["full"]), env=pip_project)
    assert_one_line_error(result, 1, str(devices["full"]), "No space left on device")
    assert "wrote" not in result.stderr
    assert _is_device(devices["full"])


def test_export_to_dash_is_stdout(pip_project, tmp_path):
    plain = envctl("export", "fixture-pip", env=pip_project)
    dash = envctl("export", "fixture-pip", "-o", "-", env=pip_project, cwd=tmp_path)
    assert dash.returncode == 0 and plain.returncode == 0, dash.stderr
    assert dash.stdout == plain.stdout and "mpmath" in dash.stdout
    assert not (tmp_path / "-").exists()


def test_compat_matrix_html_into_a_fifo_reaches_its_reader(artifact_env, tmp_path):
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = envctl("compat", "matrix", "--html", str(fifo), env=artifact_env, timeout=60)
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert got and got[0].startswith(b"<!doctype html>"), got
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_compat_run_junit_to_a_full_device_is_one_line(artifact_env, devices):
    import sys

    result = envctl("compat", "run", "--python", sys.executable, "--junit", str(devices["full"]), env=artifact_env)
    assert_one_line_error(result, 1, str(devices["full"]), "No space left on device")
    assert _is_device(devices["full"])


def test_a_folder_or_a_socket_is_refused_and_kept(artifact_env, tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert_one_line_error(envctl("compat", "matrix", "--html", str(folder), env=artifact_env), 1,
                          str(folder), "is a folder")
    assert folder.is_dir()
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        assert_one_line_error(envctl("compat", "matrix", "--html", str(sock_path), env=artifact_env), 1,
                              str(sock_path), "is a socket")
        assert stat.S_ISSOCK(sock_path.lstat().st_mode)
    finally:
        server.close()
