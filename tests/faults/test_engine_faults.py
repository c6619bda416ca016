"""Items 7 and 11 without the real engine: a socket that accepts and never answers, and the
sandbox every artifact container gets (a recording engine: the real runs are in tests/engine)."""

from __future__ import annotations

import sys
import time

import pytest

from envctl.engine import RunResult
from tests.faults.conftest import REPO, assert_one_line_error, envctl


@pytest.fixture
def hung_socket(tmp_path):
    """A unix socket that accepts and never answers."""
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
        yield path
    finally:
        server.kill()
        server.wait()


def test_a_hung_engine_socket_is_named_within_the_call_timeout(hung_socket):
    started = time.monotonic()
    result = envctl("images", env={"DOCKER_HOST": f"unix://{hung_socket}", "ENVCTL_ENGINE_TIMEOUT": "2"}, timeout=60)
    assert time.monotonic() - started < 20
    assert_one_line_error(result, 1, f"unix://{hung_socket}", "did not answer within 2s")


def test_a_fraction_of_a_second_engine_timeout_is_honoured(hung_socket):
    started = time.monotonic()
    result = envctl("images", env={"DOCKER_HOST": f"unix://{hung_socket}", "ENVCTL_ENGINE_TIMEOUT": "0.5"},
                    timeout=60)
    assert_one_line_error(result, 1, "did not answer within 0.5s")
    assert time.monotonic() - started < 15  # the interpreter's start and imports; it once waited 30 s more


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_an_engine_timeout_that_is_no_timeout_is_refused(value):
    result = envctl("images", env={"ENVCTL_ENGINE_TIMEOUT": value}, timeout=60)
    assert_one_line_error(result, 2, f"ENVCTL_ENGINE_TIMEOUT={value}", "a finite number above 0")


@pytest.mark.parametrize("args", [["--dry-run"], []])
def test_an_unknown_builder_is_refused(args):
    result = envctl("build", "pytorch-2.13-cpu", *args, env={"ENVCTL_BUILDER": "bogus", "ENVCTL_PROJECT": str(REPO)},
                    timeout=120)
    assert_one_line_error(result, 2, "ENVCTL_BUILDER=bogus", "choose classic or buildkit")


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
