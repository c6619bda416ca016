"""Fixtures for tests against the real Docker engine (all marked ``engine``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTORCH_SMOKE_TEST = REPO / "tests" / "data" / "upstream" / "pytorch-smoke-test.json"
SMOKE_TEST_IN_IMAGE = "/upstream/smoke_test.py"


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


@pytest.fixture(scope="session")
def pytorch_smoke_test() -> Path:
    """PyTorch's release smoke test at the commit tests/data/upstream names, checked by its sha256.

    It is not vendored: envctl's package cache (the user's, where scripts/test.sh looks for it too)
    takes it from a folder in ENVCTL_MIRRORS holding smoke_test.py, else downloads it from GitHub;
    without either the test fails, saying so (test.sh deselects the ``upstream`` tests then).
    """
    from envctl.cache import PackageCache
    from envctl.errors import EnvctlError

    source = json.loads(PYTORCH_SMOKE_TEST.read_text())
    try:
        return PackageCache().get(url=source["url"], sha256=source["sha256"], filename=source["filename"])
    except EnvctlError as exc:
        pytest.fail(f"PyTorch's smoke test ({source['path']} at {source['commit'][:12]}): {exc.message}; "
                    f"or name a folder holding that file in ENVCTL_MIRRORS", pytrace=False)


def run_pytorch_smoke_test(docker_client, image: str, script: Path, *, torch: str,
                           environment: dict[str, str] | None = None):
    """PyTorch's smoke test in ``image`` as its release CI runs it on one wheel: ``--package
    torchonly`` (no torchvision/torchaudio clones), MATRIX_STABLE_VERSION so it checks torch's
    version; mounted read-only, no network, no GPU."""
    from envctl.engine import Engine

    return Engine(docker_client).run(image, ["python", SMOKE_TEST_IN_IMAGE, "--package", "torchonly"],
                                     mounts=[(str(script), SMOKE_TEST_IN_IMAGE, True)],
                                     environment={"MATRIX_STABLE_VERSION": torch, **(environment or {})},
                                     timeout=900)
