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
