"""Helpers for the fault tests: envctl as a real subprocess, and checks of its one-line answers."""

from __future__ import annotations

import os
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def envctl(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run envctl in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, input=input,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})}, cwd=cwd, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, no traceback, an 'error:' line that holds every needle; returns that line."""
    text = proc.stderr
    assert "Traceback" not in text and "Traceback" not in proc.stdout, text[-3000:]
    assert proc.returncode == code, (proc.returncode, text[-3000:])
    lines = [ln for ln in text.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, text[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path):
    """A 20 MB tmpfs (a disk that fills up), unmounted afterwards."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder under a read-only bind mount (root ignores mode bits; a mount it cannot ignore)."""
    src = tmp_path / "ro-src"
    src.mkdir()
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(mnt)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


PIP_SPEC = {"version": 1, "name": "fixture-pip", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
            "torch_source": "base", "python_source": "base", "channels": [], "pip": ["mpmath==1.3.0"],
            "pip_index": {"index_url": "file:///opt/pypi/simple"}}


@pytest.fixture(scope="session")
def pip_project(tmp_path_factory) -> dict:
    """A project whose one spec (fixture-pip) locks mpmath and pip from the local file index:
    a pip prefix made in seconds.  Returns the environment for envctl subprocesses."""
    import yaml

    root = tmp_path_factory.mktemp("pip-project")
    (root / "images").mkdir()
    (root / "images" / "fixture-pip.yaml").write_text(yaml.safe_dump(PIP_SPEC))
    env = {"ENVCTL_PROJECT": str(root), "ENVCTL_CACHE": str(root / "cache"),
           "ENVCTL_RECORDS": str(root / "records.db")}
    locked = envctl("lock", "fixture-pip", env=env)
    assert locked.returncode == 0, locked.stderr[-2000:]
    return env


@pytest.fixture(scope="session")
def made_artifacts(tmp_path_factory) -> dict:
    """A scripted TorchScript model, a torch.export archive and their sample inputs, made once."""
    import torch

    folder = tmp_path_factory.mktemp("made-artifacts")

    class Double(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 + 1

    x = torch.randn(2, 4)
    torch.jit.script(Double()).save(folder / "double.pt")
    torch.save((x,), folder / "double.inputs.pt")
    torch.export.save(torch.export.export(Double(), (x,)), folder / "double.pt2")
    return {"pt": folder / "double.pt", "pt2": folder / "double.pt2", "inputs": folder / "double.inputs.pt",
            "folder": folder}


@pytest.fixture
def artifact_env(tmp_path) -> dict:
    """Its own records database and artifact store."""
    return {"ENVCTL_RECORDS": str(tmp_path / "db" / "records.db"), "ENVCTL_ARTIFACTS": str(tmp_path / "store")}


FAKE_PROBE = """#!/bin/sh
# A stand-in interpreter: prints one passing probe document, as smoke.py would.
echo '{"schema": "envctl.probe/1", "ok": true, "checks": [{"name": "torch version", "status": "pass", "message": "fine"}], "benchmarks": [], "env": {}}'
"""


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_envctl(*args: str, env: dict | None = None) -> subprocess.Popen:
    """envctl in the background, with SIGINT as a terminal leaves it: a shell's background job
    (CI runners) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    import signal

    return subprocess.Popen([sys.executable, "-m", "envctl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1", **(env or {})},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(predicate, timeout: float = 120, interval: float = 0.01):
    """Poll until ``predicate()`` is truthy; its value, or a failure after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {predicate}")


def child_with(pid: int, needle: str) -> int | None:
    """A descendant of ``pid`` whose command line holds ``needle``."""
    for child in descendants(pid):
        try:
            if needle in Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                return child
        except OSError:
            continue
    return None


@pytest.fixture
def trickling_index():
    """A real HTTP server on localhost that answers every GET with headers promising 100 kB,
    then sends one byte every 0.2 s: no single read ever times out.  Yields (url, connections)."""
    stop = threading.Event()
    connections: list[str] = []

    class Trickle(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connections.append(self.request.recv(65536).split(b"\r\n", 1)[0].decode())
            try:
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                     b"Content-Length: 100000\r\n\r\n")
                while not stop.wait(0.2):
                    self.request.sendall(b"<")
            except OSError:
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", connections
    stop.set()
    server.shutdown()
    server.server_close()
