"""The real PyPI, once: the formats and hosts the refresh relies on still answer as the local
fixture index pretends.  Marked ``network``; unreachable PyPI FAILS (never skips), so CI
cannot pass without having really asked.  Deselect on an offline laptop with -m 'not network'."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from envctl.errors import PackageIndexError
from envctl.pypi import derive
from envctl.pypi.metadata import read_metadata
from envctl.pypi.simple import project_page


@pytest.mark.network
def test_pypi_torch_page_metadata_and_ranges_as_the_refresh_expects():
    try:
        page = project_page("https://pypi.org/simple", "torch")
    except PackageIndexError as exc:
        pytest.fail(f"PyPI not reachable ({exc}); deselect with -m 'not network' offline", pytrace=False)
    assert page.format == "json"  # PEP 691 answered
    rels = {str(r.version): r for r in derive.releases(page, "torch")}
    assert {"2.0.0", "2.12.1", "2.14.1", "2.15.0"} <= set(rels)
    wheel = next(w for w in rels["2.15.0"].wheels if "-cp311-cp311-" in w.filename)
    meta = read_metadata(wheel)  # no PEP 658 file for 2.15.0 (2026-11-23): read by HTTP ranges
    assert meta.source in ("range", "pep658") and meta.version == "2.15.0"
    variant, libs = derive.cuda_build(derive.linux_requirements(meta, "3.11"))
    assert (variant, libs["cuda"], libs["cudnn"]) == ("cu132", "13.2.2", "9.26.0.51")


@pytest.mark.network
@pytest.mark.parametrize("name", ["pytorch-2.13-cpu", "pytorch-2.14-cu130", "pytorch-2.8-cu128"])
def test_relocking_a_committed_spec_keeps_its_bytes_whatever_pypi_publishes_next(project, name):
    """A re-lock as `envctl lock` makes it (the lock on disk's pins preferred where the spec
    still allows them) gives the committed lock byte for byte, through the real PyPI: uv reads
    every pinned file's page, hash and size, so a pinned file PyPI stopped serving fails here.
    A release published after the lock (filelock 4.3.2 and cuda-pathfinder 1.9.1 on 2026-12-06)
    does not change it; only a spec change or ``--upgrade`` does."""
    from envctl.catalog import Project
    from envctl.errors import LockError
    from envctl.lock import load_lock, lock_image

    proj = Project(project)
    spec = proj.resolve(name)
    path = proj.lock_path(name)
    current = {pl: load_lock(path, platform=pl) for pl in spec.platforms}
    try:
        text = lock_image(spec, current=current).text
    except LockError as exc:
        if "unreachable" in str(exc):
            pytest.fail(f"PyPI not reachable ({exc}); deselect with -m 'not network' offline", pytrace=False)
        raise
    assert text == path.read_text()


@pytest.mark.network
def test_a_fresh_resolve_of_a_committed_spec_takes_newer_releases_but_keeps_the_spec_pins(project):
    """Without the committed pins (``--upgrade-all``) the resolve follows PyPI; what the spec
    pins stays pinned whatever PyPI publishes (torch, and the CUDA libraries its wheel names)."""
    from envctl.catalog import Project
    from envctl.lock import load_lock, lock_image

    proj = Project(project)
    spec = proj.resolve("pytorch-2.14-cu130")
    committed = load_lock(proj.lock_path(spec.name)).pip_pins()
    fresh = {p.name: p for p in lock_image(spec, keep_current=False).pip["linux-64"]}
    assert fresh["torch"].version == committed["torch"] == spec.torch
    for name in ("nvidia-cudnn-cu13", "nvidia-nccl-cu13"):
        assert fresh[name].version == committed[name]  # torch's Requires-Dist pins them exactly
    assert all(len(p.sha256) == 64 and p.url.startswith("https://") for p in fresh.values())


def _envctl(*args: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "ENVCTL_CACHE": str(cache)}
    env.pop("ENVCTL_INDEX_URL", None)
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.network
def test_a_name_with_no_spec_locks_from_pypi_and_builds_from_a_fresh_clone(project, tmp_path):
    """Issue #27's measure: `envctl build pytorch-2.10-cu128` with no images/pytorch-2.10-cu128.yaml.
    The lock comes from the real PyPI (metadata only, about a second); the build is its plan here
    (a CUDA image is 7 GB: tests/engine/test_cuda.py builds one)."""
    assert not (project / "images" / "pytorch-2.10-cu128.yaml").exists()
    locked = _envctl("lock", "pytorch-2.10-cu128", cache=tmp_path / "cache")
    if locked.returncode != 0 and "unreachable" in locked.stderr:
        pytest.fail(f"PyPI not reachable ({locked.stderr.strip()}); deselect with -m 'not network' offline",
                    pytrace=False)
    assert locked.returncode == 0, locked.stderr
    assert (project / "images" / "pytorch-2.10-cu128.yaml").is_file()
    from envctl.catalog import Project
    from envctl.lock import load_lock

    pins = load_lock(Project(project).lock_path("pytorch-2.10-cu128")).pip_pins()
    assert (pins["torch"], pins["torchvision"], pins["torchaudio"]) == ("2.10.0", "0.25.0", "2.10.0")
    assert pins["nvidia-cuda-runtime-cu12"].startswith("12.8.")  # PyPI's 2.10 wheel: the cu128 build
    plan = _envctl("build", "pytorch-2.10-cu128", "--dry-run", cache=tmp_path / "cache")
    assert plan.returncode == 0 and "FROM envctl/debian:bookworm" in plan.stdout, plan.stderr


@pytest.mark.network
def test_the_refusal_of_a_never_released_name_suggests_first_an_image_that_builds_here(project, tmp_path):
    """Issue #27: `pytorch-2.8-cu118` is refused naming first pytorch-2.8-cu128, locked from PyPI,
    which this machine reaches (conda-forge and the PyTorch index it does not need)."""
    refused = _envctl("build", "pytorch-2.8-cu118", cache=tmp_path / "cache")
    assert refused.returncode == 2
    first, hint = refused.stderr.splitlines()[:2]
    assert first.split("; nearest real images: ")[1].startswith(
        "pytorch-2.8-cu128 (same torch, other CUDA; locked, builds here)"), first
    assert hint == "hint: try: envctl build pytorch-2.8-cu128"
