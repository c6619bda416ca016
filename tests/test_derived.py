"""Derived specs: one name per torch x variant, torch from PyPI exactly where PyPI's wheel is that
build (the release matrix's ``pypi:``), the PyTorch index for every other variant, never conda."""

from __future__ import annotations

import pytest

from envctl import yamldoc
from envctl.derived import derive
from envctl.matrix import load_matrix
from envctl.spec import parse_spec


@pytest.mark.parametrize("name, source", [
    ("pytorch-2.8-cu128", "pypi"), ("pytorch-2.10-cu128", "pypi"), ("pytorch-2.11-cu130", "pypi"),
    ("pytorch-2.14-cu130", "pypi"), ("pytorch-2.15-cu132", "pypi"),
    ("pytorch-2.8-cu126", "pytorch-index"), ("pytorch-2.11-cu128", "pytorch-index"),
    ("pytorch-2.13-cpu", "pytorch-index"), ("pytorch-2.7-cu118", "pytorch-index"),
])
def test_the_issue_s_examples_take_torch_from_what_serves_their_variant(name, source):
    derived = derive(name, path=f"images/{name}.yaml")
    assert derived.spec.torch_source == source
    assert derived.spec.channels == () and derived.spec.conda_specs() == []  # no conda channel, ever


def test_every_real_combination_derives_a_valid_spec_whose_text_reads_back_the_same():
    matrix = load_matrix()
    for minor, rel in matrix.torch.items():
        for variant in rel.variants:
            name = f"pytorch-{minor}-{variant}"
            derived = derive(name, path=f"images/{name}.yaml")
            spec = derived.spec
            assert (spec.torch_source == "pypi") == (rel.pypi == variant), name
            assert spec.torch == max(rel.releases, key=lambda v: tuple(map(int, v.split("."))))
            assert spec.python_source == "base" and spec.base == "envctl/debian:bookworm"
            assert list(spec.companions) == [c for c in ("torchvision", "torchaudio") if getattr(rel, c)]
            # what envctl lock writes is this very spec (so the lock stays current once it is a file)
            again = parse_spec(yamldoc.load(derived.text, cache=False), path=spec.path, expected_name=name)
            assert again == spec, name


@pytest.mark.parametrize("name", ["pytorch-2.8-cu118", "pytorch-2.99-cu128", "pytorch-2.8-cu128-dev", "team-env"])
def test_only_real_plain_names_derive(name):
    assert derive(name, path=f"images/{name}.yaml") is None


def test_a_pypi_mirror_is_named_in_the_spec_and_the_default_index_is_left_out():
    mirror = derive("pytorch-2.10-cu128", path="x.yaml", index_url="http://mirror.example/simple")
    assert mirror.spec.pip_index.index_url == "http://mirror.example/simple"
    assert 'pip_index: {"index_url": "http://mirror.example/simple"}' in mirror.text
    plain = derive("pytorch-2.10-cu128", path="x.yaml", index_url="https://pypi.org/simple")
    assert "pip_index" not in plain.text and plain.spec.pip_index.index_url == "https://pypi.org/simple"


def test_a_derived_spec_asks_for_setuptools_which_inductor_imports():
    """torch 2.10's wheel requires setuptools only on Python >= 3.12; a venv without pip has none,
    and torch.compile then fails ("No module named 'setuptools'": the derived pytorch-2.10-cu128
    built and verified here, 2026-12-07). The derived spec asks for it (defaults.yaml derived.pip)."""
    spec = derive("pytorch-2.10-cu128", path="images/pytorch-2.10-cu128.yaml").spec
    assert spec.python == "3.11" and "setuptools" in spec.pip
    assert "setuptools" in spec.pip_requirements()


def test_torch_before_2_2_gets_a_setuptools_that_still_has_pkg_resources():
    """torch 2.1's inductor imports pkg_resources, gone from setuptools 82.0.0: the derived
    pytorch-2.1-cu121 failed torch.compile under setuptools 84.2.1 (matrix verify, 2026-12-07)."""
    old = derive("pytorch-2.1-cu121", path="images/pytorch-2.1-cu121.yaml").spec
    assert list(old.pip) == ["setuptools<82"] and "setuptools<82" in old.pip_requirements()
    assert derive("pytorch-2.2-cu121", path="images/pytorch-2.2-cu121.yaml").spec.pip == ("setuptools",)
