"""The sources a spec needs, one answer for the lock, a refusal's neighbours and doctor
(envctl.spec_sources): the specs of images/ read for real, doctor's checks run for real."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from envctl import nearest
from envctl.catalog import Project
from envctl.doctor import gather_setup
from envctl.export import pip_source_lines
from envctl.spec_sources import channel_url, pip_sources, sources

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted(p.stem for p in (REPO / "images").glob("*.yaml"))


def _checked(spec, tmp_path: Path) -> list[tuple[str, str]]:
    facts = gather_setup(spec, prefix_root=tmp_path / "envs", cache_root=tmp_path / "cache", timeout=2)
    return [(what, url) for what, url, _error in facts.sources]


def test_the_pytorch_index_comes_first_and_the_spec_s_own_index_becomes_an_extra():
    spec = Project(REPO).resolve("pytorch-2.3-cu118")
    assert spec.torch_source == "pytorch-index"
    pip = pip_sources(spec)
    assert (pip.index_url, pip.extra_index_urls) == ("https://download.pytorch.org/whl/cu118",
                                                     ("https://pypi.org/simple",))
    assert sources(spec).channels == ("conda-forge",)  # its Python comes from conda
    assert pip_source_lines(spec) == ["--index-url https://download.pytorch.org/whl/cu118",
                                      "--extra-index-url https://pypi.org/simple"]


def test_doctor_checks_what_the_lock_reads_the_channel_where_it_is(tmp_path):
    # doctor once checked the channel's bare name as a path ("conda channel conda-forge does not
    # exist") and left out the package index the lock takes torch's dependencies from
    spec = Project(REPO).resolve("pytorch-2.3-cu118")
    assert _checked(spec, tmp_path) == [("torch index", "https://download.pytorch.org/whl/cu118"),
                                        ("package index", "https://pypi.org/simple"),
                                        ("conda channel", "https://conda.anaconda.org/conda-forge")]


def test_a_channel_nothing_is_asked_of_is_not_a_source(tmp_path):
    spec = Project(REPO).resolve("pytorch-2.13-cpu")  # Python from the base, torch from /opt/wheels
    spec = replace(spec, channels=("conda-forge",))
    assert spec.conda_specs() == [] and sources(spec).channels == ()
    assert _checked(spec, tmp_path) == [("find-links folder", "/opt/wheels"),
                                        ("package index", "https://pypi.org/simple")]


@pytest.mark.parametrize("name", SPECS)
def test_doctor_and_a_refusal_judge_the_same_sources(name, tmp_path):
    spec = Project(REPO).resolve(name)
    need = sources(spec)
    assert {url for _short, url in nearest.sources(spec)} == {url for _what, url in _checked(spec, tmp_path)} \
        == {*map(channel_url, need.channels), *need.indexes, *need.find_links}
