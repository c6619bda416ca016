"""Items 7 and 11 without the real engine: a socket that accepts and never answers, and the
sandbox every artifact container gets (a recording engine: the real runs are in tests/engine)."""

from __future__ import annotations

import sys
import time

from envctl.engine import RunResult
from tests.faults.conftest import assert_one_line_error, envctl


def test_a_hung_engine_socket_is_named_within_the_call_timeout(tmp_path):
    import subprocess

    path = tmp_path / "hung.sock"
    server = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); "
        "conns = []\nwhile True: conns.append(s.accept())"), str(path)])
    try:
        for _ in range(200):
            if path.exists():
                break
            time.sleep(0.02)
        started = time.monotonic()
        result = envctl("images", env={"DOCKER_HOST": f"unix://{path}", "ENVCTL_ENGINE_TIMEOUT": "2"}, timeout=60)
        assert time.monotonic() - started < 20
        assert_one_line_error(result, 1, f"unix://{path}", "did not answer within 2s")
    finally:
        server.kill()
        server.wait()


class RecordingEngine:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def info(self) -> dict:
        return {"Runtimes": {"runc": {}}}  # no NVIDIA runtime: --device auto asks for no GPU

    def run(self, image, command, **kwargs) -> RunResult:
        self.calls.append(kwargs)
        return RunResult(0, '{"schema": "envctl.compat/1", "results": []}', "")


def test_artifact_containers_are_sandboxed(tmp_path):
    from envctl.artifacts import Artifact, Registry
    from envctl.compat import Target, run
    from envctl.records import Records

    registry = Registry(Records(tmp_path / "r.db"), tmp_path / "store")
    art = Artifact(sha256="0" * 64, name="a", kind="torchscript", size=1, info={"file": "artifact.pt"}, added=0)
    (tmp_path / "store" / art.sha256).mkdir(parents=True)
    (tmp_path / "store" / art.sha256 / "artifact.pt").write_bytes(b"")
    registry.verify = lambda _a: None  # the store check has its own tests
    engine = RecordingEngine()
    run(Target("img", "image", "sha256:1"), [art], registry, engine=engine, timeout=5)
    assert engine.calls[0]["sandbox"] is True and engine.calls[0]["network"] == "none"
    assert engine.calls[0]["gpus"] is None
    run(Target("img", "image", "sha256:1"), [art], registry, engine=engine, timeout=5, device="cuda")
    assert engine.calls[1]["gpus"] == "all"  # GPUs through the engine's device requests


def test_the_sandbox_flags_reach_docker(monkeypatch):
    from envctl.engine import Engine

    seen = {}

    class Containers:
        def create(self, **kwargs):
            seen.update(kwargs)
            raise RuntimeError("stop here")

    class Client:
        containers = Containers()

    import pytest

    from envctl.errors import EngineError

    with pytest.raises(EngineError):
        Engine(Client()).run("img", ["true"], sandbox=True)
    assert seen["read_only"] is True and seen["cap_drop"] == ["ALL"]
    assert seen["security_opt"] == ["no-new-privileges"] and seen["user"] == "65534:65534"
    assert "/tmp" in seen["tmpfs"]
