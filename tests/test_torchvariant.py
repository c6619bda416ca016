"""The torch a lock holds is the spec's variant: locked with uv against a real local index serving
PyPI-style CUDA and CPU torch wheels, or refused in one line; and which build a locked torch is."""

from __future__ import annotations

from pathlib import Path

import pytest

from envctl.errors import LockError
from envctl.lock import load_lock, lock_image
from envctl.lock.pins import PipPackage
from envctl.spec import parse_spec
from envctl.lock.variant import check_torch_variant, torch_build

try:
    from tests.fixtures.pypi_index import serve
    from tests.fixtures.torch_builds import cpu_wheel, spec_data, variant_index
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.pypi_index import serve
    from fixtures.torch_builds import cpu_wheel, spec_data, variant_index

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def index(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    served, shutdown = serve(variant_index(tmp_path / "index"))
    yield served
    shutdown()


def _spec(index, tmp_path, *, torch: str, cuda: str, with_cpu_wheel: bool = False):
    folder = tmp_path / "wheels"
    folder.mkdir(exist_ok=True)
    if with_cpu_wheel:
        cpu_wheel(folder)
    return parse_spec(spec_data(index, torch=torch, cuda=cuda, find_links=folder), path="images/variant-env.yaml")


def _locked_torch(spec) -> PipPackage:
    return next(p for p in lock_image(spec).pip["linux-64"] if p.name == "torch")


def test_a_cpu_spec_whose_only_torch_is_a_cuda_build_fails_in_one_line(index, tmp_path):
    with pytest.raises(LockError) as info:
        lock_image(_spec(index, tmp_path, torch="2.11.0", cuda="cpu"))
    assert str(info.value) == (
        f"images/variant-env.yaml: cuda: cpu, but torch 2.11.0 resolved for linux-64 is the cu130 build "
        f"({index.url}/files/torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl: requires "
        f"cuda-toolkit==13.0.2); no lock written")
    assert info.value.hint == (f"put the torch 2.11.0+cpu wheel in {tmp_path / 'wheels'} (from "
                               f"https://download.pytorch.org/whl/cpu), or take it from there with "
                               f"torch_source: pytorch-index")
    assert info.value.exit_code != 0


@pytest.mark.parametrize("resolver", ["uv", "pip"])
def test_a_cu128_spec_resolving_to_a_cu13_wheel_fails(index, tmp_path, monkeypatch, resolver):
    monkeypatch.setenv("ENVCTL_RESOLVER", resolver)
    with pytest.raises(LockError, match=r"cuda: cu128, but torch 2\.11\.0 resolved for linux-64 is the cu130 "
                                        r"build \(http://127\.0\.0\.1:\d+/files/torch-2\.11\.0-cp311"):
        lock_image(_spec(index, tmp_path, torch="2.11.0", cuda="cu128"))


def test_a_cu126_spec_resolving_to_a_cu128_wheel_fails_on_the_minor(index, tmp_path):
    with pytest.raises(LockError, match=r"cuda: cu126, .* is the cu128 build .*requires "
                                        r"nvidia-cuda-runtime-cu12==12\.8\.90\); no lock written"):
        lock_image(_spec(index, tmp_path, torch="2.10.0", cuda="cu126"))


@pytest.mark.parametrize("torch, cuda, cpu_folder, version, evidence", [
    ("2.11.0", "cpu", True, "2.11.0+cpu", "local version +cpu"),  # the find-links wheel wins
    ("2.12.0", "cpu", False, "2.12.0", "no nvidia-* or cuda-toolkit requirement"),
    ("2.11.0", "cu130", False, "2.11.0", "requires cuda-toolkit==13.0.2"),
    ("2.10.0", "cu128", False, "2.10.0", "requires nvidia-cuda-runtime-cu12==12.8.90"),
])
def test_the_spec_s_variant_locks(index, tmp_path, torch, cuda, cpu_folder, version, evidence):
    locked = _locked_torch(_spec(index, tmp_path, torch=torch, cuda=cuda, with_cpu_wheel=cpu_folder))
    assert locked.version == version
    build = torch_build(locked)
    assert build.is_variant(cuda) and build.evidence == evidence


def test_every_committed_lock_holds_its_spec_s_variant():
    from envctl.catalog import Project

    project = Project(REPO)
    locks = sorted((REPO / "locks").glob("*.conda-lock.yml"))
    assert locks
    for path in locks:
        spec = project.resolve(path.name.split(".conda-lock")[0])
        check_torch_variant(spec, load_lock(path).pip, platform="linux-64")


def _torch(version: str, **deps: str) -> PipPackage:
    return PipPackage(name="torch", version=version, url="file:///w/torch.whl", sha256="0" * 64,
                      filename="torch.whl", requested=True,
                      dependencies={k.replace("_", "-"): v for k, v in deps.items()})


@pytest.mark.parametrize("package, label", [
    (_torch("2.5.1+cpu.cxx11.abi"), "cpu"),
    (_torch("2.8.0+cu126", nvidia_cuda_runtime_cu12="==12.6.77"), "cu126"),  # the local version speaks first
    (_torch("2.9.0+rocm6.4"), "rocm6.4"),
    (_torch("2.10.0a0+b4e4ee81d3", filelock="*"), "cpu"),  # a source build's label says nothing of the variant
    (_torch("2.8.0", nvidia_cuda_runtime_cu12="==12.8.*", triton="==3.4.0"), "cu128"),
    (_torch("2.15.0", cuda_toolkit=">=13", nvidia_cudnn_cu13="==9.26.0.51"), "CUDA 13"),  # no minor pinned
    (_torch("2.15.0", nvidia_nccl_cu13="==2.30.7"), "CUDA 13"),  # no runtime requirement at all
    (_torch("2.6.0", nvidia_nccl_cu12="==2.21.5"), "CUDA 12"),
    (_torch("2.14.1", cuda_bindings="<14,>=13.0.3", filelock="*"), "cpu"),  # neither nvidia-* nor cuda-toolkit
])
def test_torch_build_reads_the_local_version_then_the_cuda_requirements(package, label):
    assert torch_build(package).label == label


@pytest.mark.parametrize("label, variant, matches", [
    ("cpu", "cpu", True), ("cu128", "cu128", True), ("cu128", "cu126", False), ("cu130", "cpu", False),
    ("cpu", "cu130", False), ("CUDA 13", "cu130", True), ("CUDA 13", "cu132", True),  # any 13.x where none is said
    ("CUDA 12", "cu128", False),  # CUDA 12 minors need different drivers: the minor must be known
    ("CUDA 13", "cpu", False), ("rocm6.4", "cpu", False),
])
def test_a_build_is_the_variant(label, variant, matches):
    from envctl.lock.variant import TorchBuild

    assert TorchBuild(label, "").is_variant(variant) is matches


def test_a_lock_without_a_pip_torch_is_not_checked():
    spec = parse_spec({"version": 1, "name": "demo-env", "python": "3.11", "torch": "2.13.0", "cuda": "cu126",
                       "torch_source": "base", "python_source": "base", "channels": [], "pip": ["helper"]},
                      path="images/demo-env.yaml")
    helper = PipPackage(name="helper", version="1.0", url="file:///w/helper.whl", sha256="0" * 64,
                        filename="helper.whl", requested=True)
    check_torch_variant(spec, [helper], platform="linux-64")
