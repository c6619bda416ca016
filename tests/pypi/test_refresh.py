"""envctl matrix refresh against the local index: what changes, what stays curated, what is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envctl.errors import PackageIndexError
from envctl.pypi import matrixfile
from envctl.pypi.refresh import apply, plan_refresh

try:
    from tests.fixtures.pypi_index import make_wheel
except ImportError:  # pragma: no cover
    from fixtures.pypi_index import make_wheel

REPO = Path(__file__).resolve().parents[2]


def _plan(index, path, tmp_path, **kw):
    return plan_refresh(path=path, index_url=index.simple, pytorch_index=kw.pop("pytorch_index", None),
                        cache_dir=tmp_path / "cache", today="2026-11-23", **kw)


def test_committed_matrix_renders_to_its_own_bytes():
    path = REPO / "envctl" / "data" / "release-matrix.yaml"
    current = matrixfile.read(path)
    assert matrixfile.render(current.data, header=current.header, tail=current.tail) == current.text


def test_refresh_derives_releases_variants_libs_and_companions(local_index, matrix_file, tmp_path):
    plan = _plan(local_index, matrix_file, tmp_path)
    assert plan.stale and matrix_file.read_text() == plan.old_text  # planning writes nothing
    assert apply(plan) is True
    data = yaml.safe_load(matrix_file.read_text())
    t = data["torch"]
    assert t["2.15"]["releases"] == ["2.15.0"] and t["2.15"]["pypi"] == "cu132"
    assert t["2.15"]["pypi_libs"] == {"cuda": "13.2.2", "cudnn": "9.26.0.51", "nccl": "2.30.7", "triton": "~=3.9.0"}
    assert t["2.15"]["python"] == ["3.11", "3.15"]
    assert t["2.15"]["cuda"] == {"stable": {"13.2": "9.26.0.51"}, "experimental": {}}  # seeded, noted
    assert t["2.15"]["torchvision"] is None and t["2.15"]["torchaudio"] is None
    assert t["2.14"]["releases"] == ["2.14.0", "2.14.1"] and t["2.14"]["python"] == ["3.11", "3.14"]
    assert t["2.14"]["torchvision"] == "0.29"  # from torch>=2.14.0
    assert t["2.14"]["torchaudio"] == "2.14"  # none on the index: kept from the file
    assert t["2.13"]["cuda"]["experimental"] == {"13.2": "9.20.0.48"}  # curated, untouched
    assert t["2.8"]["pypi"] == "cu128" and t["2.8"]["pypi_libs"]["cudnn"] == "9.10.2.21"
    assert "1.13" not in t and data["refreshed"] == "2026-11-23"
    text = matrix_file.read_text()
    assert text.startswith("# A test matrix: this header is kept verbatim.\n")
    assert text.endswith('# Curated tail, kept verbatim.\narch_lists:\n  "13.0": [{arches: ["7.5", "8.0"], ptx: true}]'
                         '\n\ndrivers:\n  "13": "580"\n')
    assert any("torch 2.15 is new" in n for n in plan.notes)
    assert any("no torchaudio release on the index pins it; kept 2.14" in n for n in plan.notes)
    assert "+  \"2.15\":" in plan.diff() and "-    python: [\"3.10\", \"3.15\"]" in plan.diff()
    assert {c.key for c in plan.changes if c.minor == "2.14"} == {"releases", "python", "pypi_libs"}


def test_nothing_new_reads_no_wheel_and_changes_nothing(local_index, matrix_file, tmp_path):
    apply(_plan(local_index, matrix_file, tmp_path))
    written = matrix_file.read_bytes()
    local_index.log.clear()
    again = _plan(local_index, matrix_file, tmp_path)
    assert not again.stale and again.changes == [] and apply(again) is False
    assert matrix_file.read_bytes() == written
    assert local_index.files_requested() == []  # metadata from the cache, keyed by sha256
    assert sorted(s for p, s, _r in local_index.log) == ["304", "304", "304"]  # three pages, unchanged
    assert set(again.reads) == {"cache"}


@pytest.mark.parametrize("version", ["2.16.0rc1", "2.13.0+cu128", "2.13.0.post1"])
def test_a_version_torch_never_publishes_is_named_and_nothing_written(local_index, matrix_file, tmp_path, version):
    local_index.add("torch", make_wheel(local_index.root / "files", "torch", version,
                                        "cp311-cp311-manylinux_2_28_x86_64", []))
    before = matrix_file.read_bytes()
    with pytest.raises(PackageIndexError, match=rf"/simple/torch/ lists torch files with versions torch never "
                                                rf"publishes on PyPI: torch-{version.replace('+', '.')}"):
        _plan(local_index, matrix_file, tmp_path)
    assert matrix_file.read_bytes() == before


def test_unreadable_wheel_metadata_is_named_and_nothing_written(local_index, matrix_file, tmp_path):
    bad = local_index.root / "files" / "torch-2.16.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    bad.write_bytes(b"PK not really" * 10)
    local_index.add("torch", bad)
    before = matrix_file.read_bytes()
    with pytest.raises(PackageIndexError, match=r"cannot read the metadata of wheel .*torch-2\.16\.0-cp311"):
        _plan(local_index, matrix_file, tmp_path)
    assert matrix_file.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_garbage_index_is_named(local_index, matrix_file, tmp_path):
    local_index.mode = "garbage"
    with pytest.raises(PackageIndexError, match="neither PEP 691 JSON nor PEP 503 HTML"):
        _plan(local_index, matrix_file, tmp_path)


def test_html_only_index_gives_the_same_matrix(local_index, matrix_file, tmp_path):
    as_json = _plan(local_index, matrix_file, tmp_path / "a").new_text
    local_index.mode = "html"
    assert _plan(local_index, matrix_file, tmp_path / "b").new_text == as_json


def test_pytorch_variant_index_is_compared_and_unreachable_one_is_said(local_index, matrix_file, tmp_path):
    names = ["torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.13.0+cu126-cp311-cp311-"
             "manylinux_2_28_x86_64.whl", "torch-2.13.0+cu129-cp311-cp311-manylinux_2_28_x86_64.whl"]
    page = "<html><body>" + "".join(f'<a href="/x/{n}">{n}</a>' for n in names) + "</body></html>"
    local_index.extra_pages["/whl/torch/"] = ("text/html", page.encode())
    plan = _plan(local_index, matrix_file, tmp_path, pytorch_index=f"{local_index.url}/whl")
    assert "torch 2.13: the PyTorch index has cu129 that the file lacks: curate their status and cuDNN" in plan.notes
    assert "torch 2.13: the file lists cu130, cu132 that the PyTorch index lacks" in plan.notes
    assert "cu129" not in plan.new_text  # status and cuDNN are curated: named, not invented
    off = _plan(local_index, matrix_file, tmp_path, pytorch_index="http://127.0.0.1:9/whl")
    assert any(n.startswith("PyTorch per-variant index not read (package index http://127.0.0.1:9/whl/torch/ is "
                            "unreachable: connection refused)") for n in off.notes)


def _envctl(*args):
    env = {**os.environ, "NO_COLOR": "1", "ENVCTL_CACHE": os.environ.get("ENVCTL_CACHE", "")}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env)


def test_cli_check_exits_1_when_stale_then_0_after_refresh(local_index, matrix_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    common = ["--file", str(matrix_file), "--index-url", local_index.simple, "--pytorch-index", "none"]
    check = _envctl("matrix", "refresh", "--check", *common)
    assert check.returncode == 1 and check.stdout.startswith(f"--- a/{matrix_file}")
    assert f"stale {matrix_file} (" in check.stderr and matrix_file.read_text().endswith('"13": "580"\n')
    assert "2.15" not in matrix_file.read_text()
    wrote = _envctl("matrix", "refresh", *common)
    assert wrote.returncode == 0 and f"wrote {matrix_file}" in wrote.stderr
    assert _envctl("matrix", "refresh", "--check", *common).returncode == 0
    out = json.loads(_envctl("matrix", "refresh", "--check", "--json", *common).stdout)
    assert out["stale"] is False and out["diff"] == "" and out["written"] is False and out["reads"] == {"cache": 8}  # 5 torch + 2 torchvision + 1 torchaudio


def test_cli_bad_index_is_one_line_and_exit_1(matrix_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    result = _envctl("matrix", "refresh", "--file", str(matrix_file), "--index-url", "http://127.0.0.1:9/simple",
                     "--pytorch-index", "none")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("error: package index http://127.0.0.1:9/simple/")
    assert "Traceback" not in result.stderr and matrix_file.read_text().count("2.15") == 0
