"""envctl.imagesize: an image's size estimated from its committed lock (the files' real sizes: the
package cache, the find-links folder, PyPI's answers), held to the sizes of the images built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envctl.catalog import Project
from envctl.imagesize import download_sizes, estimate, locked_files

REPO = Path(__file__).resolve().parent.parent

# Sizes of the images built from the committed locks (docker image ls, the build machines).
BUILT = {"pytorch-2.14-cu130": 7.4e9, "pytorch-2.8-cu128": 7.4e9, "pytorch-2.13-cpu": 1.24e9}


def _lock(name: str) -> dict:
    return yaml.safe_load((REPO / "locks" / f"{name}.conda-lock.yml").read_text())


@pytest.mark.parametrize("name", sorted(BUILT))
def test_the_estimate_from_a_committed_lock_is_within_a_quarter_of_the_built_image(name, tmp_path):
    spec = Project(REPO).resolve(name)
    guess = estimate(spec, _lock(name), cache_root=tmp_path / "empty-cache")
    assert guess is not None
    assert abs(guess.bytes - BUILT[name]) <= 0.25 * BUILT[name], (guess, BUILT[name])
    assert guess.factor == (2.0 if spec.is_gpu else 4.3)  # the measured factors of data/defaults.yaml
    assert f"{guess.download_bytes / 1e9:.2f} GB of packages" in guess.source


def test_a_cached_file_is_sized_without_the_network_and_an_unknown_one_gives_no_estimate(tmp_path):
    spec = Project(REPO).resolve("pytorch-2.13-cpu")
    data = _lock("pytorch-2.13-cpu")
    unreachable = "http://127.0.0.1:9/packages/numpy-2.3.5-cp311-cp311-manylinux_2_28_x86_64.whl"
    numpy = next(p for p in data["package"] if p["name"] == "numpy")
    numpy["url"] = unreachable  # nothing answers there: only the cache can size it
    assert estimate(spec, data, cache_root=tmp_path / "cache") is None  # a partial sum would promise too little
    cached = tmp_path / "cache" / "sha256" / numpy["hash"]["sha256"] / unreachable.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x" * 12345)
    files = locked_files(data, "linux-64")
    assert download_sizes(files, cache_root=tmp_path / "cache")[unreachable] == 12345
    assert estimate(spec, data, cache_root=tmp_path / "cache") is not None


def test_doctor_names_the_estimate_for_an_image_not_built(tmp_path):
    # No engine answers (so no built image, wherever the suite runs): the lock alone sizes the image.
    result = subprocess.run([sys.executable, "-m", "envctl", "doctor", "pytorch-2.14-cu130", "--json"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(tmp_path / "cache"),
                                 "DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}", "NO_COLOR": "1"})
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    disk = next(f for f in json.loads(result.stdout)["findings"] if f["check"] == "disk")
    assert "(estimated from the lock: 3.05 GB of packages x 2 installed" in disk["message"], disk
    gb = float(disk["message"].split("the image will take about ")[1].split(" GB")[0])
    assert abs(gb - 7.4) <= 0.25 * 7.4


def test_doctor_sizes_setups_cache_and_prefix_from_the_lock_too(tmp_path):
    # The cache holds the lock's files (3.05 GB); the prefix the installed environment (x 2): not a
    # 15 GB constant for every CUDA image.
    result = subprocess.run([sys.executable, "-m", "envctl", "doctor", "pytorch-2.14-cu130", "--json"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(tmp_path / "cache"),
                                 "DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}", "NO_COLOR": "1"})
    setup = [f["message"] for f in json.loads(result.stdout)["findings"] if f["check"] == "setup disk"]
    cache = next(m for m in setup if " at the cache " in m)
    prefix = next(m for m in setup if " at the prefix " in m)
    assert "its packages take about 3.0 GB (estimated from the lock)" in cache or \
        "its packages take about 3.1 GB (estimated from the lock)" in cache, cache
    assert "the environment takes about 6.1 GB (estimated from the lock)" in prefix, prefix
