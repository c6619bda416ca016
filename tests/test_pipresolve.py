"""The pip side of a lock, resolved for the image's Python and platform with pip's real resolver,
offline: wheels built here into a find-links folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from envctl.errors import EnvctlError, LockError
from envctl.lock.pip import resolve


def _wheel(folder: Path, name: str, version: str, tag: str) -> Path:
    """A minimal, valid wheel (metadata, WHEEL, RECORD and one module)."""
    dist = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-{tag}.whl"
    files = {
        f"{name}/__init__.py": "",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
        zf.writestr(f"{dist}/RECORD", "".join(f"{arc},,\n" for arc in files) + f"{dist}/RECORD,,\n")
    return path


@pytest.fixture
def links(tmp_path) -> dict:
    folder = tmp_path / "links"
    folder.mkdir()
    index = tmp_path / "empty-index"
    index.mkdir()
    return {"find_links": [str(folder)], "index_url": index.as_uri(), "folder": folder}


def test_resolves_the_wheel_for_the_target_not_the_host(links):
    _wheel(links["folder"], "demo", "1.0", "cp312-cp312-manylinux_2_28_x86_64")
    _wheel(links["folder"], "demo", "1.0", "cp311-cp311-manylinux_2_28_x86_64")
    (pkg,) = resolve(["demo==1.0"], python="3.12", platform="linux-64", glibc="2.28",
                     index_url=links["index_url"], find_links=links["find_links"], check_network=False)
    assert pkg.filename == "demo-1.0-cp312-cp312-manylinux_2_28_x86_64.whl" and len(pkg.sha256) == 64


def test_a_wheel_missing_for_the_images_python_is_one_line_naming_the_package(links):
    _wheel(links["folder"], "demo", "1.0", "cp312-cp312-manylinux_2_28_x86_64")
    with pytest.raises(LockError) as err:
        resolve(["demo==1.0"], python="3.11", platform="linux-64", glibc="2.28",
                index_url=links["index_url"], find_links=links["find_links"], check_network=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("no wheel of demo==1.0 for Python 3.11 on linux-64")
    assert err.value.hint


def test_a_wheel_only_for_another_platform_is_named(links):
    _wheel(links["folder"], "demo", "1.0", "cp311-cp311-macosx_11_0_arm64")
    with pytest.raises(LockError, match="no wheel of demo==1.0 for Python 3.11 on linux-64"):
        resolve(["demo==1.0"], python="3.11", platform="linux-64", glibc="2.28",
                index_url=links["index_url"], find_links=links["find_links"], check_network=False)


def test_an_unreachable_index_names_its_url():
    with pytest.raises(EnvctlError) as err:
        resolve(["demo==1.0"], python="3.11", platform="linux-64", glibc="2.28",
                index_url="http://127.0.0.1:9/simple")
    assert "http://127.0.0.1:9/simple" in str(err.value) and "unreachable" in str(err.value)


REQUIRES_DIST = [  # torch's, numpy's and harder shapes: markers, extras, old-style parens, URLs
    'nvidia-cuda-runtime==13.0.96; platform_system == "Linux" and platform_machine == "x86_64"',
    'filelock', 'typing-extensions>=4.10.0', 'sympy>=1.13.3', 'networkx>=2.5.1', 'jinja2', 'fsspec>=0.8.5',
    'setuptools; python_version >= "3.12"', 'triton==3.5.0; platform_system == "Linux"',
    'opt-einsum>=3.3; extra == "opt-einsum"', 'optree>=0.13.0; extra == "optree"',
    'MarkupSafe (>=2.0)', 'mpmath<1.4,>=1.1.0', 'Jinja2 >= 3.0 , < 4 ; python_version > "3.8"',
    'numpy; (extra == "dev") and python_version < "3.12"', "fsspec[http] ; extra=='remote'",
    'filelock @ https://example.org/filelock-3.20.0-py3-none-any.whl ; os_name == "posix"',
    'typing_extensions; python_version < "3.11" or platform_release == "extra-kernel"',
    'sympy==1.13.1; python_version == "3.8" and', 'networkx>=2.5; python_version >>> "3"',
]
LOCKED = {"nvidia-cuda-runtime", "filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec",
          "setuptools", "triton", "markupsafe", "mpmath", "numpy", "opt-einsum"}


def test_dependencies_skip_the_marker_parse_without_changing_the_answer():
    """The fast path (a marker that names no extra is not parsed) gives what packaging gives for the
    whole requirement, invalid markers aside (kept: a wheel's metadata was checked on upload)."""
    from packaging.requirements import InvalidRequirement, Requirement

    from envctl.lock.pins import dependencies, normalize

    expected: dict[str, str] = {}
    for text in REQUIRES_DIST:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if normalize(req.name) in LOCKED and not (req.marker is not None and "extra ==" in str(req.marker)):
            expected[normalize(req.name)] = str(req.specifier) or "*"
    got = dependencies(REQUIRES_DIST, LOCKED)
    invalid = ("sympy", "networkx")  # their last lines have broken markers
    assert {k: v for k, v in got.items() if k not in invalid} == {k: v for k, v in expected.items() if k not in invalid}
    assert got["sympy"] == "==1.13.1" and got["networkx"] == ">=2.5"
    assert got["jinja2"] == "<4,>=3.0" and got["mpmath"] == "<1.4,>=1.1.0" and "opt-einsum" not in got
    assert got["typing-extensions"] == "*" and got["filelock"] == "*"  # its last line: "extra-kernel" is a value
