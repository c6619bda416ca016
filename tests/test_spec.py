from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envctl.catalog import Project
from envctl.errors import SpecError
from envctl.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent
GOOD = {"version": 1, "name": "pytorch-2.8-cu126", "python": "3.12", "torch": "2.8.0", "cuda": "cu126"}


def _error(data: dict) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data, path="images/x.yaml")
    return info.value


def test_every_catalog_spec_is_valid_and_checked_against_the_matrix():
    project = Project(REPO)
    names = project.names()
    for required in ("pytorch-2.3-cu118", "pytorch-2.7-cu118", "pytorch-2.8-cu126", "pytorch-2.8-cu128",
                     "pytorch-2.11-cu128", "pytorch-2.13-cu130", "pytorch-2.13-cpu"):
        assert required in names
    for spec in project.specs():
        assert spec.name == Path(spec.path).stem


def test_defaults_fill_a_minimal_spec():
    spec = parse_spec(dict(GOOD), path="images/x.yaml")
    assert spec.channels == ("conda-forge",)
    assert spec.conda_specs()[0] == "python=3.12"
    assert spec.pip_requirements() == ["torch==2.8.0"]
    assert spec.smoke.compile_modes == ("default", "reduce-overhead")


def test_unknown_key_names_file_key_and_allowed_keys():
    err = _error({**GOOD, "pyhton": "3.12"})
    assert str(err).startswith("images/x.yaml: pyhton: unknown key; allowed keys: version, name")


def test_unknown_nested_key_names_its_path():
    err = _error({**GOOD, "smoke": {"dtype": ["fp32"]}})
    assert "smoke.dtype: unknown key" in str(err)


@pytest.mark.parametrize("key,value,needle", [
    ("torch", "2.8", "torch: '2.8' is not a torch release"),
    ("torch", "2.8.9", "torch 2.8.9 is not a release of 2.8"),
    ("python", 3.12, "python: expected a string"),
    ("cuda", "cuda12", "cuda: 'cuda12' is not a CUDA variant"),
])
def test_bad_values(key, value, needle):
    assert needle in str(_error({**GOOD, key: value}))


def test_torch_python_mismatch():
    err = _error({**GOOD, "name": "pytorch-2.3-cu118", "torch": "2.3.1", "cuda": "cu118", "python": "3.13"})
    assert "torch 2.3 supports Python 3.8 - 3.12, not 3.13" in str(err)


def test_cuda_variant_not_in_matrix():
    err = _error({**GOOD, "name": "team-image", "cuda": "cu118"})
    assert str(err).startswith("images/x.yaml: cuda: torch 2.8 was never released for CUDA 11.8")


def test_name_must_agree_with_torch_and_cuda():
    assert "does not match the image name" in str(_error({**GOOD, "cuda": "cu128"}))


def test_wrong_type_in_list_names_index():
    assert "smoke.batch_sizes[1]: 0 is not allowed; allowed: an integer from 1 to 65536" in str(
        _error({**GOOD, "smoke": {"batch_sizes": [1, 0]}}))


def test_pytorch_channel_ends_with_2_5():
    assert "pytorch conda channel ends with torch 2.5" in str(_error({**GOOD, "torch_source": "pytorch-channel"}))


def test_hashes_track_lock_inputs_only(tmp_path):
    a = parse_spec(dict(GOOD), path="a")
    b = parse_spec({**GOOD, "description": "other words", "smoke": {"level": "full"}}, path="b")
    c = parse_spec({**GOOD, "pip": ["numpy"]}, path="c")
    assert a.lock_inputs_hash() == b.lock_inputs_hash() != c.lock_inputs_hash()
    assert a.content_hash() == b.content_hash()  # smoke settings and words do not change the image
    d = parse_spec({**GOOD, "base": "envctl/debian:other"}, path="d")
    assert a.lock_inputs_hash() == d.lock_inputs_hash() and a.content_hash() != d.content_hash()


@pytest.mark.parametrize("data,needle", [
    ({**GOOD, "platforms": []}, "platforms: must name at least one"),
    ({**GOOD, "smoke": {"dtypes": []}}, "smoke.dtypes: must name at least one"),
    ({**GOOD, "smoke": []}, "smoke: expected a mapping, got a list"),
    ({**GOOD, "pip_index": ""}, "pip_index: expected a mapping, got a string"),
])
def test_empty_or_wrongly_shaped_sections(data, needle):
    assert needle in str(_error(data))


def test_non_utf8_spec_is_a_spec_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)


def test_load_spec_reports_yaml_errors_and_name_mismatch(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML at line"):
        load_spec(bad)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(SpecError, match="does not match the file name 'other'"):
        load_spec(other)


def test_pypi_source_takes_the_variant_pypi_carries(tmp_path):
    from envctl.spec import load_spec

    spec = load_spec(REPO / "images" / "pytorch-2.14-cu130.yaml")
    assert spec.torch_source == "pypi" and spec.cuda == "cu130"
    assert spec.torch_requirements() == ["torch==2.14.1", "torchvision==0.29.*"]


def test_pypi_source_refuses_a_variant_pypi_does_not_carry(tmp_path):
    from envctl.errors import SpecError
    from envctl.spec import load_spec

    text = (REPO / "images" / "pytorch-2.8-cu128.yaml").read_text()
    path = tmp_path / "pytorch-2.8-cu126.yaml"
    path.write_text(text.replace("cu128", "cu126"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "cuda: PyPI's torch 2.8 wheel is the cu128 build, not cu126" in message
    assert "https://download.pytorch.org/whl/cu126" in message  # where cu126 does come from


def test_the_plain_requirement_fast_path_accepts_only_what_packaging_accepts():
    # specchecks skips packaging (15 ms of imports on every lock) for plain requirements: every
    # string the fast path passes must be one packaging passes too, with a version on each operator
    import itertools

    from packaging.requirements import Requirement

    from envctl.spec_strings import _PLAIN_REQ_RE, pip_requirement_problem

    names = ["numpy", "a", "a-b_c.d", "A1", "-x", "x-", "x y", "x.", "_x"]
    versions = ["2.3.5", "1", "1.*", "1.2.*", "1.0a1", "1.0rc2.post3.dev4", "1.0+cpu", "1.*.2", "", "v1", "1..2",
                "1.0.post", "01.2"]
    ops = ["==", "!=", ">=", "<=", ">", "<", "~=", "===", "=", " == "]
    accepted = 0
    for name, op, version in itertools.product(names, ops, versions):
        for text in (f"{name}{op}{version}", f"{name}{op}{version},<9", f"{name}"):
            if not _PLAIN_REQ_RE.fullmatch(text.strip()):
                continue
            accepted += 1
            req = Requirement(text)  # raises where the fast path let through an invalid one
            assert req.url is None and all(s.version for s in req.specifier), text
            assert pip_requirement_problem(text) is None
    assert accepted > 200
    # and what it leaves to packaging is still judged there
    assert "is not a requirement" in pip_requirement_problem("x==1.*.2")
    assert pip_requirement_problem("torch==2.8.0+cu126") is None and pip_requirement_problem("x[y]>=1") is None
    assert "names a URL" in pip_requirement_problem("x @ https://example.com/x.whl")
