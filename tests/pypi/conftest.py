"""A local torch-like index: torch, torchvision and torchaudio wheels with and without PEP 658
files, served over HTTP (see tests/fixtures/pypi_index.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from tests.fixtures.pypi_index import LocalIndex, make_wheel, serve
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import LocalIndex, make_wheel, serve

LINUX = 'platform_system == "Linux"'
CU130 = [f"cuda-toolkit[cublas,cudart]==13.0.2; {LINUX}", f"nvidia-cudnn-cu13==9.20.0.48; {LINUX}",
         f"nvidia-nccl-cu13==2.29.7; {LINUX}", f'triton==3.7.1; {LINUX} and python_version < "3.15"',
         "filelock", 'optree>=0.13.0; extra == "optree"']
CU130_14 = [r.replace("13.0.2", "13.0.3").replace("9.20.0.48", "9.24.0.43") for r in CU130]
CU132 = [f"cuda-toolkit[cublas,cudart]==13.2.2; {LINUX}", f"nvidia-cudnn-cu13==9.26.0.51; {LINUX}",
         f"nvidia-nccl-cu13==2.30.7; {LINUX}", f'triton~=3.9.0; {LINUX} and python_version < "3.16"']
CU128 = ['nvidia-cuda-runtime-cu12==12.8.90; platform_system == "Linux" and platform_machine == "x86_64"',
         'nvidia-cudnn-cu12==9.10.2.21; platform_system == "Linux" and platform_machine == "x86_64"',
         'nvidia-nccl-cu12==2.27.3; platform_system == "Linux" and platform_machine == "x86_64"',
         'triton==3.4.0; platform_system == "Linux" and platform_machine == "x86_64"']
MANY = "manylinux_2_28_x86_64"

MATRIX = '''# A test matrix: this header is kept verbatim.
#   - sources: the local index
version: 1
refreshed: "2026-01-01"

torch:
  "2.14":
    releases: ["2.14.0"]
    pypi: cu130
    python: ["3.10", "3.15"]
    cuda:
      stable: {"12.6": "9.10.2.21", "13.0": "9.24.0.43"}
      experimental: {}
    torchvision: "0.29"
    torchaudio: "2.14"
  "2.13":
    releases: ["2.13.0"]
    pypi: cu130
    python: ["3.10", "3.15"]
    cuda:
      stable: {"12.6": "9.10.2.21", "13.0": "9.20.0.48"}
      experimental: {"13.2": "9.20.0.48"}
    torchvision: "0.28"
    torchaudio: "2.13"

# Curated tail, kept verbatim.
arch_lists:
  "13.0": [{arches: ["7.5", "8.0"], ptx: true}]

drivers:
  "13": "580"
'''


def build_index(root: Path) -> LocalIndex:
    files = root / "files"
    index = LocalIndex(root=root)
    for py in ("cp311-cp311", "cp314-cp314"):
        index.add("torch", make_wheel(files, "torch", "2.8.0", f"{py}-{MANY}", CU128))
        index.add("torch", make_wheel(files, "torch", "2.13.0", f"{py}-{MANY}", CU130))
        index.add("torch", make_wheel(files, "torch", "2.14.0", f"{py}-{MANY}", CU130_14))
        # 2.14.1 and 2.15.0 have no PEP 658 file (as on PyPI): read by range, past a 200 KB member
        index.add("torch", make_wheel(files, "torch", "2.14.1", f"{py}-{MANY}", CU130_14, pad=200_000,
                                      metadata_file=False))
    for py in ("cp311-cp311", "cp315-cp315"):
        index.add("torch", make_wheel(files, "torch", "2.15.0", f"{py}-{MANY}", CU132, pad=200_000,
                                      metadata_file=False))
    index.add("torch", make_wheel(files, "torch", "2.13.0", "cp39-none-macosx_11_0_arm64", []))  # not Linux
    index.add("torch", make_wheel(files, "torch", "1.13.1", f"cp39-cp39-{MANY}", []))  # below the floor
    index.add("torchvision", make_wheel(files, "torchvision", "0.28.0", f"cp311-cp311-{MANY}", ["torch (==2.13.0)"]))
    index.add("torchvision", make_wheel(files, "torchvision", "0.29.1", f"py3-none-{MANY}", ["torch (>=2.14.0)"],
                                        metadata_file=False))
    index.add("torchaudio", make_wheel(files, "torchaudio", "2.13.0", f"cp311-cp311-{MANY}", ["torch ==2.13.0"]))
    return index


@pytest.fixture
def local_index(tmp_path):
    index, shutdown = serve(build_index(tmp_path / "index"))
    yield index
    shutdown()


@pytest.fixture
def matrix_file(tmp_path) -> Path:
    path = tmp_path / "release-matrix.yaml"
    path.write_text(MATRIX)
    return path
