"""`envctl matrix verify --max-disk` keeps the package cache inside the budget too: before a
build that would not fit, the cached files no combination left and no committed lock needs go,
least recently used first; the files the build needs stay.

Two derived combinations (torch 2.10 cu128, then 2.11 cu130) from a local index of stand-in
wheels named and built as PyPI's (each torch padded with 30 MB nobody else needs) and a real pip;
real locks, real builds on the engine.  The stand-in torch has no module, so each verification
fails as an import error: what is checked is that both images were built, every file each build
needed being there, while torch 2.10's wheel left the cache before 2.11 was built.
"""

from __future__ import annotations

import json
import re

import pytest

from envctl.fsio import sha256_of
from tests.engine.conftest import run_envctl

try:
    from tests.fixtures.pypi_index import serve
    from tests.fixtures.torch_builds import sweep_index
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import serve
    from fixtures.torch_builds import sweep_index

PAD = 30_000_000
MAX_DISK_GB = "0.12"  # images never fit (the base alone is larger): each is given back; the cache must shrink


@pytest.fixture()
def stand_in_index(tmp_path):
    served, shutdown = serve(sweep_index(tmp_path / "index", pad=PAD))
    yield served
    shutdown()


@pytest.mark.network
def test_the_sweep_evicts_what_no_build_left_needs_and_every_build_finds_its_files(project, stand_in_index, tmp_path,
                                                                                     docker_client):
    cache = tmp_path / "cache"
    env = {"ENVCTL_PROJECT": str(project), "ENVCTL_INDEX_URL": stand_in_index.simple, "ENVCTL_CACHE": str(cache),
           "ENVCTL_RECORDS": str(tmp_path / "records.db")}
    files = stand_in_index.root / "files"
    torch_210 = sha256_of(next(files.glob("torch-2.10.0-*.whl")))
    torch_211 = sha256_of(next(files.glob("torch-2.11.0-*.whl")))
    result = run_envctl("matrix", "verify", "--since", "2.10", "--until", "2.11", "--max-disk", MAX_DISK_GB,
                        "--json", env=env, timeout=1200)
    built = [r for r in json.loads(run_envctl("history", "--json", env=env).stdout) if r["kind"] == "build"]
    try:
        assert result.returncode == 1, result.stderr[-3000:]  # the stand-in torch imports nothing
        report = json.loads(result.stdout)
        cells = {c["name"]: c for c in report["cells"]}
        assert sorted(cells) == ["pytorch-2.10-cu128", "pytorch-2.11-cu130"]
        for cell in cells.values():  # both built from their locks, every file there: only the probe failed
            assert cell["size"] > 0 and cell["build_s"] > 0, cell
            assert cell["failure"] == "import error", cell
        rounds = re.findall(r"package cache: evicted (\d+) files \(([\d.]+) MB\).*; it holds ([\d.]+) MB of the "
                            r"([\d.]+) MB --max-disk leaves it(.*)", result.stderr)
        assert rounds, result.stderr[-3000:]
        for _n, _freed, holds, budget, over in rounds:  # inside its budget after each round
            assert float(holds) <= float(budget) and over == "", result.stderr[-3000:]
        assert report["evicted"]["files"] == sum(int(n) for n, *_ in rounds) >= 1
        assert report["evicted"]["bytes"] >= PAD
        assert f"evicted {report['evicted']['files']} package files (" in result.stderr
        stored = {p.name for p in (cache / "sha256").iterdir()}
        assert torch_210 not in stored  # evicted before torch 2.11 was built: no combination left needed it
        assert torch_211 in stored  # what the last build needed was there for it
        assert len(built) == 2 and all(b["ok"] for b in built)
        assert "gave back 2 images" in result.stderr
    finally:
        for run in built:  # only the images this test's sweep built, should one still be there
            if run.get("image_id"):
                try:
                    docker_client.images.remove(run["image_id"], force=True)
                except Exception:  # noqa: BLE001 - already given back by the sweep
                    pass
