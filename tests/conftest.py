"""Shared fixtures: an isolated project copy, records database, and the Docker engine.

Engine tests are marked ``engine``.  A person may deselect them on a laptop
(``-m "not engine"``), but a selected engine test whose engine is missing FAILS:
it never skips, so CI cannot pass without having really run them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """ENVCTL_DESELECT_UPSTREAM=1 (scripts/test.sh sets it, saying why, where PyTorch's smoke_test.py
    is not at hand): the tests marked ``upstream`` are deselected, and pytest's summary counts
    them. An environment variable rather than ``-m``: a user's own ``-m`` keeps working beside it."""
    import os

    if os.environ.get("ENVCTL_DESELECT_UPSTREAM") != "1":
        return
    dropped = [item for item in items if item.get_closest_marker("upstream")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("upstream")]


@pytest.fixture(autouse=True)
def _isolated_records(tmp_path_factory, monkeypatch):
    """Each test gets its own records database and no inherited project override."""
    monkeypatch.setenv("ENVCTL_RECORDS", str(tmp_path_factory.mktemp("records") / "records.db"))
    monkeypatch.delenv("ENVCTL_PROJECT", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of the repository's images/, locks/ and templates/ in a temporary project."""
    root = tmp_path / "project"
    for folder in ("images", "locks", "templates"):
        src = REPO / folder
        if src.is_dir():
            shutil.copytree(src, root / folder)
        else:
            (root / folder).mkdir(parents=True)
    monkeypatch.setenv("ENVCTL_PROJECT", str(root))
    return root


@pytest.fixture(scope="session")
def docker_client():
    """A client of the real engine; fails the test (never skips) when none answers."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine is the same verdict
        pytest.fail(f"Docker engine not reachable ({exc}); start it with scripts/engine-up.sh "
                    f"or deselect engine tests with -m 'not engine'", pytrace=False)
    yield client
    client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> str:
    """A real registry (Debian's docker-registry) on 127.0.0.1, started by scripts/registry-up.sh
    as a person would (installing it if missing); fails, never skips, when it cannot start."""
    import os
    import signal
    import subprocess

    root = tmp_path_factory.mktemp("registry")
    env = {**os.environ, "ENVCTL_REGISTRY_ROOT": str(root), "ENVCTL_REGISTRY_PORT": str(free_port())}
    up = subprocess.run(["bash", str(REPO / "scripts" / "registry-up.sh")], capture_output=True, text=True,
                        env=env, timeout=300)
    if up.returncode != 0:
        pytest.fail(f"scripts/registry-up.sh failed: {up.stderr[-1500:]}", pytrace=False)
    yield up.stdout.strip()
    pid = root / "registry.pid"
    if pid.is_file():  # the registry this fixture started (its own pid file), not any other
        try:
            os.kill(int(pid.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
