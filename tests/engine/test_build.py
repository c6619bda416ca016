"""envctl build against the real engine: the CPU image from the committed lock, the conda path."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from envctl.catalog import Project
from envctl.lock import load_lock

from .conftest import REPO, project_with_base, run_envctl

try:
    from tests.fixtures.conda_channel import build_channel
except ImportError:  # pragma: no cover
    from fixtures.conda_channel import build_channel


def _run(client, image: str, *cmd: str) -> str:
    return client.containers.run(image, list(cmd), remove=True, network_mode="none").decode()


def test_cpu_image_has_exactly_the_locked_packages(cpu_image, docker_client):
    lock = load_lock(Project(REPO).lock_path("pytorch-2.13-cpu"))
    assert cpu_image["built"] is True
    labels = cpu_image["labels"]
    assert labels["io.envctl.lock-hash"] == lock.lock_hash
    assert labels["io.envctl.torch"] == "2.13.0" and labels["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert _run(docker_client, cpu_image["image_id"], "python", "-c",
                "import torch; print(torch.__version__)").strip() == "2.13.0+cpu"
    freeze = _run(docker_client, cpu_image["image_id"], "python", "-m", "pip", "freeze", "--all")
    installed = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
                 for line in freeze.split()}
    assert installed == lock.pip_pins()


def test_image_holds_no_wheels_or_package_archives(cpu_image, docker_client):
    found = _run(docker_client, cpu_image["image_id"], "sh", "-c",
                 "find / -xdev \\( -name '*.whl' -o -name '*.conda' -o -name '*.tar.bz2' \\) -print "
                 "2>/dev/null; true")
    assert found.strip() == ""


def test_second_build_is_a_noop(cpu_image, engine_env):
    # (its time is measured by benchmarks/bench_build.py, not asserted here)
    result = run_envctl("build", "pytorch-2.13-cpu", "--json", env=engine_env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["built"] is False and report["image_id"] == cpu_image["image_id"]


def test_tampered_cache_file_stops_the_build_naming_it(cpu_image, engine_env, package_cache):
    lock = load_lock(Project(REPO).lock_path("pytorch-2.13-cpu"))
    victim = next(p for p in lock.pip if p.name == "filelock")
    cached = package_cache / "sha256" / victim.sha256 / victim.filename
    original = cached.read_bytes()
    try:
        cached.write_bytes(original[:-10] + b"tampered!!")
        result = run_envctl("build", "pytorch-2.13-cpu", "--rebuild", env=engine_env)
        assert result.returncode == 1
        assert f"cached file {victim.filename} does not match the lock" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        cached.write_bytes(original)


@pytest.mark.parametrize("builder", ["buildkit", "classic"])
def test_conda_path_installs_exactly_the_locked_conda_packages(builder, tmp_path, engine_env, docker_client):
    channel = build_channel(tmp_path / "fixture")
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    shutil.copytree(REPO / "templates", root / "templates")
    spec = {"version": 1, "name": "fixture-conda", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
            "torch_source": "base", "python_source": "base", "channels": [str(channel)],
            "conda": ["footools", "pyshim"]}
    (root / "images" / "fixture-conda.yaml").write_text(yaml.safe_dump(spec))
    # Both builders: BuildKit (one stage, bind mounts) and the SDK's classic one (two stages).
    env = {**engine_env, "ENVCTL_PROJECT": str(root), "ENVCTL_BUILDER": builder}
    locked = run_envctl("lock", "fixture-conda", env=env)
    assert locked.returncode == 0, locked.stderr
    built = run_envctl("build", "fixture-conda", "--json", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    image = json.loads(built.stdout)["image_id"]
    try:
        listing = _run(docker_client, image, "sh", "-c", "ls /opt/conda/envs/fixture-conda/conda-meta/")
        metas = sorted(n for n in listing.split() if n.endswith(".json"))
        expected = sorted(p.filename.replace(".conda", ".json") for p in load_lock(root / "locks" /
                                                                                   "fixture-conda.conda-lock.yml").conda)
        assert metas == expected
        assert _run(docker_client, image, "cat", "/opt/conda/envs/fixture-conda/share/footools/VERSION").startswith("2.0.0")
        # The prefix placeholder was replaced by the image's prefix.
        assert "/opt/conda/envs/fixture-conda" in _run(docker_client, image, "cat",
                                                       "/opt/conda/envs/fixture-conda/bin/footools")
    finally:
        docker_client.images.remove(image, force=True)


def test_missing_base_names_it_and_the_command(tmp_path, engine_env):
    root = project_with_base(tmp_path / "project", "envctl/debian:does-not-exist")
    result = run_envctl("build", "pytorch-2.13-cpu", "--rebuild", env={**engine_env, "ENVCTL_PROJECT": str(root)})
    assert result.returncode == 1
    assert "base image envctl/debian:does-not-exist not found" in result.stderr
    assert "envctl base" in result.stderr


def test_a_failed_build_is_recorded_at_its_start(tmp_path, engine_env, docker_client):
    # A base without python3: the build fails at its first RUN, after the package cache is filled.
    import io
    import time

    tag = "envctl-test/no-python:history"
    base, _ = docker_client.images.build(fileobj=io.BytesIO(b"FROM envctl/debian:bookworm\nRUN rm -f /usr/bin/python3*\n"),
                                         tag=tag, rm=True, network_mode="none")
    try:
        env = {**engine_env, "ENVCTL_PROJECT": str(project_with_base(tmp_path / "project", tag)),
               "ENVCTL_RECORDS": str(tmp_path / "records.db")}
        before = time.time()
        result = run_envctl("build", "pytorch-2.13-cpu", env=env)
        after = time.time()
        assert result.returncode == 1 and "build of pytorch-2.13-cpu failed" in result.stderr, result.stderr
        (run,) = json.loads(run_envctl("history", "--json", env=env).stdout)
        assert run["kind"] == "build" and run["ok"] is False
        # When it began, as verify and setup are listed, and how long it ran until it failed.
        assert run["duration_s"] is not None and before <= run["started"] <= run["started"] + run["duration_s"] <= after
    finally:
        docker_client.images.remove(base.id, force=True)


def test_an_image_built_under_an_old_name_is_judged_against_its_renamed_spec(engine_env, docker_client, tmp_path):
    """An image built as pytorch-2.8-cu128-pypi before the rename: `envctl images` finds its spec under
    the new name, with a note, and calls it stale (its lock hash is the old lock's), not "not locked"."""
    import io

    old_lock_hash = "sha256:b5df301bbedaeef20dbc5eb1e51bb16e07b253437a6f95f7f250ff014dee51e8"  # before the rename
    tag = f"envctl-test/renamed:{tmp_path.name.lower()[-40:]}"
    dockerfile = (f"FROM envctl/debian:bookworm\nLABEL io.envctl.spec=pytorch-2.8-cu128-pypi "
                  f"io.envctl.lock-hash={old_lock_hash}\n")
    image, _log = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        result = run_envctl("images", "--json", env=engine_env)
        assert result.returncode == 0, result.stderr
        row = next(r for r in json.loads(result.stdout) if tag in r["tags"])
        assert (row["image"], row["lock"]) == ("pytorch-2.8-cu128-pypi", "stale")
        assert "note: pytorch-2.8-cu128-pypi is now called pytorch-2.8-cu128" in result.stderr
    finally:
        docker_client.images.remove(image.id, force=True)


@pytest.mark.network
def test_building_a_name_never_locked_locks_it_first_then_builds_from_that_lock(project, tmp_path, docker_client):
    """`envctl build pytorch-2.10-cu128` from a clone with no spec and no lock for it: the spec is
    derived, locked (both files written for review), and the image built from that lock alone.
    The index serves small wheels named and built as PyPI's cu128 torch 2.10 is (Requires-Dist),
    and a real pip (from PyPI): the image's venv installs with it."""
    import subprocess
    import sys
    try:
        from tests.fixtures.pypi_index import make_wheel, serve
        from tests.fixtures.torch_builds import ANY, TAG, variant_index
    except ImportError:  # pragma: no cover - pytest rootdir without the tests package
        from fixtures.pypi_index import make_wheel, serve
        from fixtures.torch_builds import ANY, TAG, variant_index

    built = variant_index(tmp_path / "index")
    files = built.root / "files"
    built.add("torchvision", make_wheel(files, "torchvision", "0.25.0", TAG, ["torch==2.10.0"]))
    built.add("torchaudio", make_wheel(files, "torchaudio", "2.10.0", ANY, ["torch==2.10.0"]))
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                    "--index-url", "https://pypi.org/simple", "pip>26.0", "-d", str(files)], check=True, timeout=300)
    built.add("pip", next(p for p in files.glob("pip-*.whl") if not p.name.startswith("pip-26.0-")))
    served, shutdown = serve(built)
    name = "pytorch-2.10-cu128"
    env = {"ENVCTL_PROJECT": str(project), "ENVCTL_INDEX_URL": served.simple, "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    image_id = None
    try:
        assert not (project / "images" / f"{name}.yaml").exists()
        result = run_envctl("build", name, "--json", env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"{name} has no lock yet: locking it first" in result.stderr
        assert f"wrote images/{name}.yaml (derived from the release matrix" in result.stderr
        report = json.loads(result.stdout)
        image_id = report["image_id"]
        lock = load_lock(project / "locks" / f"{name}.conda-lock.yml")
        assert report["labels"]["io.envctl.lock-hash"] == lock.lock_hash
        assert report["labels"]["io.envctl.cuda"] == "cu128"
        # the second build finds both files: no lock step, nothing rebuilt
        again = run_envctl("build", name, "--json", env=env, timeout=900)
        assert again.returncode == 0 and "locking it first" not in again.stderr, again.stderr[-2000:]
        assert json.loads(again.stdout)["image_id"] == image_id
    finally:
        shutdown()
        if image_id:
            docker_client.images.remove(image_id, force=True)
