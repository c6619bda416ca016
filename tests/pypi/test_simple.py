"""The simple-API client: PEP 691 JSON and PEP 503 HTML read the same, garbage is named."""

from __future__ import annotations

import pytest

from envctl.errors import PackageIndexError
from envctl.pypi.simple import parse_page, project_page


def _by_name(page):
    return {f.filename: f for f in page.files}


def test_json_and_html_pages_list_the_same_files(local_index):
    local_index.mode = "json"
    as_json = project_page(local_index.simple, "torch")
    local_index.mode = "html"
    as_html = project_page(local_index.simple, "Torch")  # names are normalized
    assert (as_json.format, as_html.format) == ("json", "html")
    j, h = _by_name(as_json), _by_name(as_html)
    assert set(j) == set(h) and len(j) == 12
    name = "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    for page in (j, h):
        assert page[name].url == f"{local_index.url}/files/{name}"
        assert len(page[name].sha256) == 64 and page[name].metadata is None  # no PEP 658 file announced
        assert page["torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"].metadata is True
    assert j[name].sha256 == h[name].sha256


def test_unchanged_page_is_answered_from_cache_by_etag(local_index, tmp_path):
    first = project_page(local_index.simple, "torch", cache_dir=tmp_path / "c")
    again = project_page(local_index.simple, "torch", cache_dir=tmp_path / "c")
    assert first.files == again.files
    assert [s for p, s, _r in local_index.log if p == "/simple/torch/"] == ["200", "304"]


def test_garbage_page_is_named_not_read_as_empty(local_index):
    local_index.mode = "garbage"
    with pytest.raises(PackageIndexError, match=r"index page http://127\.0\.0\.1:\d+/simple/torch/ is neither "
                                                r"PEP 691 JSON nor PEP 503 HTML"):
        project_page(local_index.simple, "torch")


@pytest.mark.parametrize("body", [b'{"files": []}', b'{"meta": {"api-version": "2.0"}, "files": []}',
                                  b'{"meta": {"api-version": "1.0"}, "files": [{"url": "x"}]}', b"{not json"])
def test_bad_json_names_the_page(body):
    with pytest.raises(PackageIndexError, match="index page https://x/simple/torch/ is not valid PEP 691 JSON"):
        parse_page("https://x/simple/torch/", body, "application/vnd.pypi.simple.v1+json", name="torch")


def test_unreachable_index_is_one_line():
    with pytest.raises(PackageIndexError, match=r"package index http://127\.0\.0\.1:9/simple/torch/ is "
                                                r"unreachable: connection refused"):
        project_page("http://127.0.0.1:9/simple", "torch")
