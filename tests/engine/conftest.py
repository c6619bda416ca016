"""Fixtures for tests against the real Docker engine (all marked ``engine``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/engine/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.engine)


def run_envctl(*args: str, env: dict | None = None, cwd: Path | None = None,
               timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})}, cwd=cwd, timeout=timeout)


def project_with_base(root: Path, base: str) -> Path:
    """A copy of the repo's images/ and locks/ whose pytorch-2.13-cpu builds on ``base``
    (the lock stays current: the base is not a lock input)."""
    import shutil

    import yaml

    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "locks", root / "locks")
    path = root / "images" / "pytorch-2.13-cpu.yaml"
    data = yaml.safe_load(path.read_text())
    data["base"] = base
    path.write_text(yaml.safe_dump(data))
    return root


@pytest.fixture(scope="session")
def package_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("envctl-cache")


@pytest.fixture(scope="session")
def engine_env(package_cache, tmp_path_factory, docker_client) -> dict:
    """Environment for envctl subprocesses: the repo project, a test cache and records db."""
    return {"ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(package_cache),
            "ENVCTL_RECORDS": str(tmp_path_factory.mktemp("records") / "records.db")}


@pytest.fixture(scope="session")
def cpu_image(engine_env, docker_client) -> dict:
    """pytorch-2.13-cpu built once per session from the committed lock (a real, cold build)."""
    import json

    result = run_envctl("build", "pytorch-2.13-cpu", "--rebuild", "--json", env=engine_env)
    assert result.returncode == 0, result.stderr[-3000:]
    built = json.loads(result.stdout)
    yield built
    docker_client.images.remove(built["image_id"], force=True)  # leave no image behind
