"""The real PyPI, once: the formats and hosts the refresh relies on still answer as the local
fixture index pretends.  Marked ``network``; unreachable PyPI FAILS (never skips), so CI
cannot pass without having really asked.  Deselect on an offline laptop with -m 'not network'."""

from __future__ import annotations

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
@pytest.mark.parametrize("name", ["pytorch-2.13-cpu", "pytorch-2.14-cu130-pypi", "pytorch-2.8-cu128-pypi"])
def test_relocking_a_committed_spec_with_uv_gives_the_same_bytes(project, name):
    """uv replaced pip's resolver without changing one byte of the committed locks (as of
    2026-11-23: a newer release of an unpinned dependency changes a fresh lock, as it would with pip)."""
    from envctl.catalog import Project
    from envctl.errors import LockError
    from envctl.lock import lock_image

    proj = Project(project)
    spec = proj.resolve(name)
    try:
        text = lock_image(spec).text
    except LockError as exc:
        if "unreachable" in str(exc):
            pytest.fail(f"PyPI not reachable ({exc}); deselect with -m 'not network' offline", pytrace=False)
        raise
    assert text == proj.lock_path(name).read_text()
