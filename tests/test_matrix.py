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
        assert rel.torchvision.startswith("0.")
