"""What an index says about torch releases: pure functions over index pages and metadata.

Per torch release: its Linux x86_64 wheels, the Python range of their tags, and from the
wheel's Requires-Dist (markers evaluated for Linux x86_64) the CUDA variant it was built for
(``cuda-toolkit==13.0.x`` = cu130, ``nvidia-cuda-runtime-cu12==12.8.x`` = cu128, none = cpu)
with its cuDNN, NCCL and triton pins.  Companions (torchvision, torchaudio) map to the torch
minor their wheels pin.  No network here: ``refresh`` fetches, these functions read.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from envctl.errors import PackageIndexError
from envctl.matrix import cuda_to_variant
from envctl.pypi.metadata import Metadata
from envctl.pypi.simple import DistFile, ProjectPage

FLOORS = {"torch": Version("2.0"), "torchvision": Version("0.15"), "torchaudio": Version("2.0")}
_LINUX_X86 = re.compile(r"^(manylinux.*|linux)_x86_64$")
_CUDA_RUNTIME = re.compile(r"^nvidia-cuda-runtime(-cu\d+)?$")


@dataclass(frozen=True)
class Release:
    version: Version
    wheels: tuple[DistFile, ...]  # Linux x86_64 wheels

    @property
    def minor(self) -> str:
        return f"{self.version.major}.{self.version.minor}"

    def python_range(self) -> tuple[str, str] | None:
        pythons = {(int(t.interpreter[2]), int(t.interpreter[3:]))
                   for w in self.wheels for t in w.parsed()[2]
                   if re.fullmatch(r"cp3\d+", t.interpreter)}
        if not pythons:
            return None
        lo, hi = min(pythons), max(pythons)
        return f"{lo[0]}.{lo[1]}", f"{hi[0]}.{hi[1]}"

    def primary(self) -> DistFile:
        """The wheel whose metadata speaks for the release: the highest build tag (what an
        installer picks), then the oldest CPython (markers such as ``python_version < "3.13"``
        on triton hold there), GIL build before free-threaded."""
        def key(w: DistFile):
            _v, build, tags = w.parsed()
            cps = [int(t.interpreter[3:]) for t in tags if re.fullmatch(r"cp3\d+", t.interpreter)]
            threaded = any(t.abi.endswith("t") for t in tags)
            return (build, not threaded, -min(cps, default=99), w.filename)
        return max(self.wheels, key=key)


@dataclass(frozen=True)
class TorchFacts:
    """What PyPI says about one torch minor (from its newest release)."""

    minor: str
    releases: tuple[str, ...]
    python: tuple[str, str] | None
    pypi: str  # variant of the Linux x86_64 wheel
    libs: dict[str, str] = field(default_factory=dict)
    from_release: str = ""
    variants_by_release: dict[str, str] = field(default_factory=dict)


def releases(page: ProjectPage, project: str) -> list[Release]:
    """Final releases at or above the project's floor that have Linux x86_64 wheels.  A file
    name no installer accepts, or a version the project never publishes on PyPI (pre-release,
    post-release, local like ``+cu128``, epoch), is an error naming every such file."""
    floor = FLOORS.get(project, Version("0"))
    bad: list[str] = []
    wheels: dict[Version, list[DistFile]] = defaultdict(list)
    for f in page.files:
        try:
            version, _build, tags = f.parsed()
        except PackageIndexError:
            bad.append(f"{f.filename} (invalid file name)")
            continue
        if Version(version.base_version) < floor or f.yanked:
            continue
        if version.is_prerelease or version.is_postrelease or version.local or version.epoch \
                or len(version.release) != 3:
            bad.append(f"{f.filename} (version {version})")
            continue
        if f.is_wheel and any(_LINUX_X86.match(t.platform) for t in tags):
            wheels[version].append(f)
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise PackageIndexError(f"{page.url} lists {project} files with versions {project} never publishes "
                                f"on PyPI: {', '.join(bad[:5])}{more}",
                                hint="point --index-url at a PyPI-style index of final releases (pre-releases "
                                     "and +cuXYZ local versions belong to the PyTorch per-variant indexes)")
    return [Release(v, tuple(ws)) for v, ws in sorted(wheels.items())]


def linux_requirements(meta: Metadata, python: str) -> list[Requirement]:
    """Requires-Dist that apply on Linux x86_64 with this Python, extras left out."""
    env = {"platform_system": "Linux", "platform_machine": "x86_64", "sys_platform": "linux",
           "os_name": "posix", "python_version": python, "python_full_version": f"{python}.0",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    out = []
    for text in meta.requires_dist:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            raise PackageIndexError(f"metadata of {meta.name} {meta.version} has an invalid Requires-Dist: "
                                    f"{text!r}", hint="report it to the package's maintainers") from None
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


def _pin(req: Requirement) -> str:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "==="):
        return specs[0].version
    return str(req.specifier)


def cuda_build(reqs: list[Requirement]) -> tuple[str, dict[str, str]]:
    """(variant, {cuda, cudnn, nccl, triton}) from a torch wheel's Linux requirements."""
    libs: dict[str, str] = {}
    for req in reqs:
        name = canonicalize_name(req.name)
        if name == "cuda-toolkit":
            libs["cuda"] = _pin(req)
        elif _CUDA_RUNTIME.match(name):
            libs.setdefault("cuda", _pin(req))
        elif name.startswith("nvidia-cudnn"):
            libs["cudnn"] = _pin(req)
        elif name.startswith("nvidia-nccl"):
            libs["nccl"] = _pin(req)
        elif name in ("triton", "pytorch-triton"):
            libs["triton"] = _pin(req)
    if "cuda" not in libs:
        return "cpu", libs
    core = re.match(r"^\D*(\d+)\.(\d+)", libs["cuda"])
    if not core:
        raise PackageIndexError(f"cannot tell the CUDA version from the requirement {libs['cuda']!r}",
                                hint="report it; the wheel pins its CUDA runtime in an unexpected way")
    return cuda_to_variant(f"{core.group(1)}.{core.group(2)}"), libs


def torch_facts(rels: list[Release], metadata: dict[str, Metadata]) -> dict[str, TorchFacts]:
    """Per torch minor, from the metadata of each release's primary wheel (keyed by file name)."""
    by_minor: dict[str, list[Release]] = defaultdict(list)
    for rel in rels:
        by_minor[rel.minor].append(rel)
    out = {}
    for minor, group in by_minor.items():
        group.sort(key=lambda r: r.version)
        variants, newest_libs, newest_variant = {}, {}, "cpu"
        for rel in group:
            primary = rel.primary()
            py = _python_of(primary)
            variant, libs = cuda_build(linux_requirements(metadata[primary.filename], py))
            variants[str(rel.version)] = variant
            newest_variant, newest_libs = variant, libs
        pythons = [r.python_range() for r in group if r.python_range()]
        python = (min((p[0] for p in pythons), key=_pv), max((p[1] for p in pythons), key=_pv)) if pythons else None
        out[minor] = TorchFacts(minor=minor, releases=tuple(str(r.version) for r in group), python=python,
                                pypi=newest_variant, libs=newest_libs, from_release=str(group[-1].version),
                                variants_by_release=variants)
    return out


def companion_minors(rels: list[Release], metadata: dict[str, Metadata], project: str) -> dict[str, str]:
    """torch minor -> companion minor, from the torch pin of each companion minor's newest
    release (``torch==X.Y.Z``, else the lower bound of ``torch>=X.Y.Z``).  A torchaudio that
    pins no torch (2.11 on) follows torch's version number, as torchaudio's releases do."""
    newest: dict[str, Release] = {}
    for rel in rels:
        if rel.minor not in newest or rel.version > newest[rel.minor].version:
            newest[rel.minor] = rel
    out: dict[str, str] = {}
    for minor, rel in sorted(newest.items(), key=lambda kv: kv[1].version):
        primary = rel.primary()
        for req in linux_requirements(metadata[primary.filename], _python_of(primary)):
            if canonicalize_name(req.name) == "torch":
                pins = [s.version for s in req.specifier if s.operator == "=="] \
                    or [s.version for s in req.specifier if s.operator == ">="]
                if pins:
                    v = Version(pins[0])
                    out[f"{v.major}.{v.minor}"] = minor
                break
        else:
            if project == "torchaudio":
                out[minor] = minor
    return out


def _python_of(wheel: DistFile) -> str:
    cps = [int(t.interpreter[3:]) for t in wheel.parsed()[2] if re.fullmatch(r"cp3\d+", t.interpreter)]
    return f"3.{max(cps)}" if cps else "3.12"


def _pv(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))
