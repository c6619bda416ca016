"""The pip side of a lock, resolved for the image's Python and platform with pip's real resolver,
offline: wheels built here into a find-links folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from envctl.errors import EnvctlError, LockError
from envctl.pipresolve import resolve


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
