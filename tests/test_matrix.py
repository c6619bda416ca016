from __future__ import annotations

import pytest

from envctl.errors import MatrixError
from envctl.matrix import check_image_name, cuda_to_variant, load_matrix, parse_version, require_real, variant_to_cuda


def test_variant_round_trip():
    for variant, cuda in [("cu118", "11.8"), ("cu126", "12.6"), ("cu130", "13.0"), ("cpu", None)]:
        assert variant_to_cuda(variant) == cuda
        assert cuda_to_variant(cuda) == variant


@pytest.mark.parametrize("text,expected", [
    ("2.13.0+cpu", (2, 13, 0)), ("2.10.0a0+b4e4ee81d3", (2, 10, 0)), ("2.7.1+cu118", (2, 7, 1)), ("12.6", (12, 6)),
])
def test_parse_version_handles_local_and_prerelease(text, expected):
    assert parse_version(text) == expected


def test_cu118_for_torch_2_8_was_never_released_and_suggests_neighbours():
    verdict = check_image_name("pytorch-2.8-cu118")
    assert not verdict.exists
    assert verdict.same_torch[:2] == ["pytorch-2.8-cu126", "pytorch-2.8-cu128"]
    assert verdict.same_cuda[0] == "pytorch-2.7-cu118"
    with pytest.raises(MatrixError) as info:
        require_real("pytorch-2.8-cu118")
    text = str(info.value)
    assert "torch 2.8 was never released for CUDA 11.8" in text
    assert "cu126, cu128" in text and "pytorch-2.7-cu118" in text


def test_real_combinations_exist():
    assert check_image_name("pytorch-2.7-cu118").status == "stable"
    assert check_image_name("pytorch-2.13-cu132").status == "experimental"
    assert check_image_name("pytorch-2.13-cpu").exists
    assert check_image_name("not-an-image") is None


def test_arch_lists_follow_torch_version():
    m = load_matrix()
    arches_old, _ = m.arch_list("12.8", "2.8.0")
    arches_new, ptx = m.arch_list("12.8", "2.11.0")
    assert "7.0" in arches_old and "7.0" not in arches_new  # torch 2.11 dropped Volta from cu128
    assert ptx
    assert "12.0" not in m.arch_list("12.6", "2.13.0")[0]


def test_driver_minimums():
    m = load_matrix()
    assert m.min_driver("11.8") == "450.80.02"
    assert m.min_driver("12.8") == "525.60.13"
    assert m.min_driver("13.0") == "580"


def test_every_minor_names_companions_and_python_range():
    m = load_matrix()
    for minor in m.minors():
        rel = m.torch[minor]
        assert rel.releases and all(r.startswith(minor + ".") for r in rel.releases)
        assert parse_version(rel.python[0]) <= parse_version(rel.python[1])
        # None: no torchvision release for this torch yet (torch 2.15 on 2026-11-23)
        assert rel.torchvision is None or rel.torchvision.startswith("0.")
    assert m.torch["2.14"].torchvision == "0.29" and m.torch["2.15"].torchvision is None


def test_every_catalog_spec_names_a_torch_the_matrix_knows():
    """A refresh that drops a release, or a spec naming one the matrix lacks, fails here."""
    from pathlib import Path

    import yaml

    m = load_matrix()
    specs = sorted((Path(__file__).resolve().parent.parent / "images").glob("*.yaml"))
    assert specs
    for path in specs:
        torch = str(yaml.safe_load(path.read_text())["torch"])
        rel = m.release(torch)
        assert rel is not None and torch in rel.releases, f"{path.name}: torch {torch} not in the matrix"


def test_refreshed_matrix_knows_pypi_2_15_and_the_patch_releases():
    m = load_matrix()
    assert m.torch["2.15"].releases == ("2.15.0",) and m.torch["2.15"].pypi == "cu132"
    assert m.torch["2.15"].pypi_libs["cudnn"] == "9.26.0.51" and m.torch["2.15"].pypi_libs["cuda"] == "13.2.2"
    assert m.torch["2.12"].releases == ("2.12.0", "2.12.1") and m.torch["2.14"].releases == ("2.14.0", "2.14.1")
    assert [m.torch[v].pypi for v in ("2.8", "2.9", "2.10")] == ["cu128"] * 3
    assert [m.torch[v].pypi for v in ("2.11", "2.12", "2.13", "2.14")] == ["cu130"] * 4
    assert check_image_name("pytorch-2.15-cu132").exists
