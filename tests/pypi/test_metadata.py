"""Wheel metadata: PEP 658 file first, else HTTP range requests on the zip; cached by sha256."""

from __future__ import annotations

import pytest

from envctl.errors import PackageIndexError
from envctl.pypi.metadata import read_metadata
from envctl.pypi.simple import project_page

try:
    from tests.fixtures.pypi_index import make_wheel
except ImportError:  # pragma: no cover
    from fixtures.pypi_index import make_wheel


def _file(index, filename):
    return next(f for f in project_page(index.simple, filename.split("-")[0]).files if f.filename == filename)


def test_pep658_file_is_used_when_served(local_index):
    meta = read_metadata(_file(local_index, "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl"))
    assert meta.source == "pep658" and meta.version == "2.13.0"
    assert any(r.startswith("nvidia-cudnn-cu13==9.20.0.48") for r in meta.requires_dist)
    assert not [r for p, _s, r in local_index.log if r]  # no range request


def test_missing_pep658_reads_the_zip_by_ranges_only(local_index, tmp_path):
    dist = _file(local_index, "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    meta = read_metadata(dist, cache_dir=tmp_path / "m")
    assert meta.source == "range" and meta.version == "2.15.0"
    assert any(r.startswith("cuda-toolkit[cublas,cudart]==13.2.2") for r in meta.requires_dist)
    wheel_reads = [(s, r) for p, s, r in local_index.log if p.endswith(".whl")]
    # the tail (holding this small central directory), then the METADATA member behind the 200 KB
    # pad: each a 206 range, never the whole file
    assert [s for s, _r in wheel_reads] == ["206", "206"] and wheel_reads[0][1] == "bytes=-65536"
    assert int(wheel_reads[1][1].split("=")[1].split("-")[0]) > 200_000
    before = len(local_index.log)
    assert read_metadata(dist, cache_dir=tmp_path / "m").source == "cache"
    assert len(local_index.log) == before  # cached by the wheel's sha256: nothing asked again


def test_host_that_ignores_ranges_is_named(local_index):
    local_index.ranges = False
    with pytest.raises(PackageIndexError, match=r"wheel .*torch-2\.15\.0-cp311.*\.whl ignored an HTTP range "
                                                r"request \(answered 200, not 206\)"):
        read_metadata(_file(local_index, "torch-2.15.0-cp311-cp311-manylinux_2_28_x86_64.whl"))


def test_not_a_zip_is_named(local_index):
    bad = local_index.root / "files" / "torch-2.16.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    bad.write_bytes(b"this is not a zip file" * 100)
    local_index.add("torch", bad)
    with pytest.raises(PackageIndexError, match=r"cannot read the metadata of wheel .*torch-2\.16\.0-cp311.*: "
                                                r"no end-of-central-directory record"):
        read_metadata(_file(local_index, bad.name))


def test_metadata_of_another_version_is_refused(local_index):
    wheel = make_wheel(local_index.root / "files", "torch", "2.16.0", "cp311-cp311-manylinux_2_28_x86_64", [],
                       metadata_version="2.15.0", metadata_file=False)
    local_index.add("torch", wheel)
    with pytest.raises(PackageIndexError, match="metadata of torch-2.16.0-.* says version '2.15.0'"):
        read_metadata(_file(local_index, wheel.name))


def test_central_directory_beyond_the_tail_is_fetched_by_range(local_index):
    import zipfile

    wheel = local_index.root / "files" / "torch-2.16.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:  # like torch: 13,000 members, a 1.2 MB directory
        for i in range(3000):
            zf.writestr(f"torch/lib/member_{i:05d}_with_a_long_name_like_torch_headers.h", "x")
        zf.writestr("torch-2.16.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 2.16.0\n"
                    "Requires-Dist: filelock\n\n")
    local_index.add("torch", wheel)
    meta = read_metadata(_file(local_index, wheel.name))
    assert meta.source == "range" and meta.requires_dist == ("filelock",)
    reads = [r for p, s, r in local_index.log if p.endswith(".whl") and s == "206"]
    assert len(reads) == 3 and reads[0] == "bytes=-65536"  # tail, directory, member


HEADER_CASES = [
    "Metadata-Version: 2.4\nName: torch\nVersion: 2.13.0\nRequires-Dist: filelock\nRequires-Dist: sympy>=1.13.3\n"
    "Requires-Python: >=3.10\n\nName: not-a-header (the description)\nRequires-Dist: not-either\n",
    "Name: a\r\nVersion: 1\r\nRequires-Dist: b ; extra == 'x'\r\n\r\nbody: x\r\n",  # CRLF
    "Name: a\rVersion: 4\r\rRequires-Dist: z",  # bare CR
    "From someone\nName: a\nVersion: 1\n",  # an mbox line first
    "Name: a\nVersion:   1  \nSummary: x\n  folded\n\tmore\nRequires-Dist: c\n",  # folded lines
    "Name: a\nnot a header\nVersion: 2\n",  # the headers end at a non-header line
    "Name: a\n \nVersion: 3\n\n",  # a blank-looking line of spaces is a fold, not the end
    "Name: a\nVer sion: 1\nVersion: 5\n",  # a field name with a space ends the headers
    "name: lower\nVERSION: 6\nrequires-dist: x\nRequires-Dist: y\n",  # names in any case
    " stray fold\nName: a\nVersion: 7\n",  # a folded line before any field
    "Name: a\nFrom someone\nVersion: 8\nRequires-Dist: b\n",  # an mbox line among the fields
]


@pytest.mark.parametrize("text", HEADER_CASES)
def test_header_fields_read_what_the_email_parser_reads(text):
    """The fast reader of METADATA headers agrees with email.parser, which it replaced (4x slower)."""
    from email.parser import HeaderParser

    from envctl.pypi.metadata import header_fields

    msg, fields = HeaderParser().parsestr(text), header_fields(text)
    for key in ("Name", "Version", "Requires-Dist", "Requires-Python", "Summary", "Ver sion"):
        expected = [v.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") for v in msg.get_all(key) or []]
        assert fields.get(key.lower(), []) == expected, key
