"""Which build of torch a lock holds, and the check that it is the spec's variant.

A torch wheel names its variant in its local version (``2.8.0+cu126``, ``2.13.0+cpu``).  PyPI's
wheels carry no local version: their Requires-Dist says it, through the CUDA runtime they pull as
``nvidia-*`` / ``cuda-toolkit`` wheels (``envctl.pypi.derive.cuda_build``, which also reads the
variant of each release for the release matrix).  Resolvers know nothing of variants: a
``cuda: cpu`` spec whose find-links folder lacks the CPU wheel gets PyPI's CUDA torch and 2.7 GB
of CUDA wheels, so ``lock_image`` checks the resolved set before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from envctl.errors import LockError
from envctl.matrix import VARIANT_RE, variant_to_cuda
from envctl.lock.pins import PipPackage
from envctl.spec import ImageSpec

# The local labels PyTorch's indexes give their builds (2.5's "+cpu.cxx11.abi" included); any
# other label (a source build's "+b4e4ee81d3") says nothing of the variant.
_LOCAL_VARIANT = re.compile(r"^(cpu|cu\d{2,3}|rocm\d+(?:\.\d+)*|xpu)(?![a-z0-9])")
# A CUDA 13 build whose metadata pins no minor is taken for the spec's 13.x (the cuda-toolkit
# wheels of one major share an ABI); torch's CUDA 12 builds differ by minor (cu128 adds Blackwell's
# sm_100 and sm_120) while the nvidia-*-cu12 names say only the major, so they must pin the minor.
_MINOR_FREE_FROM = 13


@dataclass(frozen=True)
class TorchBuild:
    """What a torch file was built for, and what says so."""

    label: str  # cpu, cu128, rocm6.3, or "CUDA 13" where the metadata names the major alone
    evidence: str  # "local version +cu126", "requires cuda-toolkit==13.0.2", ...

    def is_variant(self, variant: str) -> bool:
        """Whether this build is the spec's variant (cpu, cuXY)."""
        if self.label == variant:
            return True
        cuda = variant_to_cuda(variant)
        major = cuda.split(".")[0] if cuda else None
        return major is not None and int(major) >= _MINOR_FREE_FROM and self.label == f"CUDA {major}"


def torch_build(package: PipPackage) -> TorchBuild:
    """The build of a locked torch: its local version, else its requirements on CUDA wheels."""
    from packaging.requirements import Requirement

    from envctl.errors import PackageIndexError
    from envctl.pypi.derive import cuda_build

    local = package.version.partition("+")[2]
    named = _LOCAL_VARIANT.match(local)
    if named:
        return TorchBuild(named.group(1), f"local version +{local}")
    cuda_deps = {name: spec for name, spec in package.dependencies.items()
                 if name == "cuda-toolkit" or name.startswith("nvidia-")}
    if not cuda_deps:
        return TorchBuild("cpu", "no nvidia-* or cuda-toolkit requirement")
    reqs = [Requirement(_requirement(name, spec)) for name, spec in cuda_deps.items()]
    try:
        variant, _libs = cuda_build(reqs)
    except PackageIndexError:  # a CUDA runtime pinned with no minor (">=13"): the major below
        variant = "cpu"
    if variant != "cpu":  # cuda_build read it from cuda-toolkit, else the CUDA runtime wheel
        runtime = "cuda-toolkit" if "cuda-toolkit" in cuda_deps \
            else next(name for name in sorted(cuda_deps) if name.startswith("nvidia-cuda-runtime"))
        return TorchBuild(variant, f"requires {_requirement(runtime, cuda_deps[runtime])}")
    # CUDA wheels, but no runtime pin that names a minor: the major from the -cuNN wheel names
    majors = {m.group(1) for name in cuda_deps if (m := re.search(r"-cu(\d+)$", name))}
    first = sorted(cuda_deps)[0]
    label = f"CUDA {majors.pop()}" if len(majors) == 1 else "CUDA (no version pinned)"
    return TorchBuild(label, f"requires {_requirement(first, cuda_deps[first])}")


def _requirement(name: str, specifier: str) -> str:
    """A lock's dependency (name, specifier or "*") as requirement text."""
    return name if specifier == "*" else name + specifier


def check_torch_variant(spec: ImageSpec, packages: list[PipPackage], *, platform: str) -> None:
    """LockError, one line, unless the resolved torch (if any) is the spec's variant."""
    torch = next((p for p in packages if p.name == "torch"), None)
    if torch is None:
        return  # torch from conda or the base image: nothing of it resolved here
    build = torch_build(torch)
    if build.is_variant(spec.cuda):
        return
    raise LockError(f"{spec.path or spec.name}: cuda: {spec.cuda}, but torch {torch.version} resolved for "
                    f"{platform} is the {build.label} build ({_where(torch.url)}: {build.evidence}); "
                    f"no lock written", hint=_hint(spec, build))


def _where(url: str) -> str:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


def _hint(spec: ImageSpec, build: TorchBuild) -> str:
    wheel = f"torch {spec.torch}+{spec.cuda}"
    if spec.torch_source == "find-links":
        return (f"put the {wheel} wheel in {', '.join(spec.pip_index.find_links)} (from {spec.torch_index_url}), "
                f"or take it from there with torch_source: pytorch-index")
    if spec.torch_source == "pypi":
        other = f", or set cuda: {build.label}" if VARIANT_RE.match(build.label) else ""
        return f"take {wheel} from the PyTorch index with torch_source: pytorch-index{other}"
    return (f"{spec.torch_index_url} has {wheel}: check the spec's pip_index (index mirror, extra indexes, "
            f"find-links) and pip pins")
