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
