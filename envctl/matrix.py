"""The PyTorch release matrix: which torch/CUDA/Python combinations exist.

The facts live in ``data/release-matrix.yaml`` (sources named there); this
module only reads them and answers questions: is a combination real, what are
the nearest real ones, which GPUs a build has kernels for, which driver a CUDA
runtime needs.  Pure: no network, no engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NoReturn

from envctl import yamldoc
from envctl.data import read as read_data
from envctl.errors import DamagedDocumentError, MatrixError

VARIANT_RE = re.compile(r"^(cpu|cu(\d{2,3}))$")
# pytorch-X.Y-VARIANT, optionally with a flavour suffix (pytorch-2.13-cpu-dev).
IMAGE_NAME_RE = re.compile(r"^pytorch-(\d+)\.(\d+)-(cpu|cu\d{2,3})(?:-[a-z0-9][a-z0-9.]*)*$")


def parse_version(text: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0); '12.6' -> (12, 6); '2.10.0a0+b4e4' -> (2, 10, 0)."""
    core = re.match(r"^\s*(\d+(?:\.\d+)*)", str(text))
    if not core:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(p) for p in core.group(1).split("."))


def minor_of(version: str) -> str:
    parts = parse_version(version)
    return f"{parts[0]}.{parts[1] if len(parts) > 1 else 0}"


def variant_to_cuda(variant: str) -> str | None:
    """'cu126' -> '12.6', 'cu118' -> '11.8', 'cu130' -> '13.0', 'cpu' -> None."""
    m = VARIANT_RE.match(variant)
    if not m:
        raise ValueError(f"not a CUDA variant: {variant!r} (expected cpu or cuXYZ, e.g. cu126)")
    if m.group(1) == "cpu":
        return None
    digits = m.group(2)
    return f"{digits[:-1]}.{digits[-1]}"


def cuda_to_variant(cuda: str | None) -> str:
    if cuda is None:
        return "cpu"
    major, minor = parse_version(cuda)[:2]
    return f"cu{major}{minor}"


def _in_range(version: tuple[int, ...], expr: str) -> bool:
    m = re.match(r"^(>=|<=|<|>|==)\s*([\d.]+)$", expr.strip())
    if not m:
        raise ValueError(f"bad range {expr!r} in release matrix")
    op, bound = m.group(1), parse_version(m.group(2))
    n = max(len(version), len(bound))
    v = version + (0,) * (n - len(version))
    b = bound + (0,) * (n - len(bound))
    return {">=": v >= b, "<=": v <= b, "<": v < b, ">": v > b, "==": v == b}[op]


@dataclass(frozen=True)
class TorchRelease:
    minor: str
    releases: tuple[str, ...]
    python: tuple[str, str]
    stable: dict[str, str]
    experimental: dict[str, str]
    torchvision: str | None  # None: no release for this torch yet
    torchaudio: str | None
    pytorch_channel: bool = False
    pypi: str | None = None  # the CUDA variant of PyPI's Linux x86_64 wheel
    pypi_libs: dict[str, str] = field(default_factory=dict)  # its cuda/cudnn/nccl/triton pins

    @property
    def variants(self) -> list[str]:
        """Every variant this torch minor was built for, cpu first, then by CUDA version."""
        cudas = sorted({**self.stable, **self.experimental}, key=parse_version)
        return ["cpu"] + [cuda_to_variant(c) for c in cudas]

    def status_of(self, variant: str) -> str | None:
        """'stable', 'experimental' or None (never released)."""
        cuda = variant_to_cuda(variant)
        if cuda is None or cuda in self.stable:
            return "stable"
        if cuda in self.experimental:
            return "experimental"
        return None

    def cudnn_for(self, variant: str) -> str | None:
        cuda = variant_to_cuda(variant)
        if cuda is None:
            return None
        return self.stable.get(cuda) or self.experimental.get(cuda)

    def python_ok(self, python: str) -> bool:
        lo, hi = (parse_version(v) for v in self.python)
        return lo <= parse_version(python)[:2] <= hi


@dataclass(frozen=True)
class Verdict:
    """What the matrix says about one torch minor + variant."""

    torch_minor: str
    variant: str
    status: str | None  # stable / experimental / None
    release: TorchRelease | None
    same_torch: list[str] = field(default_factory=list)  # image names, same torch other CUDA
    same_cuda: list[str] = field(default_factory=list)  # image names, same CUDA older torch

    @property
    def exists(self) -> bool:
        return self.status is not None

    def never_released(self) -> str:
        """What is wrong with a combination that does not exist, and what its torch has instead."""
        return (f"torch {self.torch_minor} was never released for CUDA {variant_to_cuda(self.variant)}; "
                f"torch {self.torch_minor} has {', '.join(self.release.variants)}")

    def explain(self) -> str:
        name = f"pytorch-{self.torch_minor}-{self.variant}"
        if self.release is None:
            return f"{name}: torch {self.torch_minor} is not in the release matrix"
        if self.exists:
            return f"{name}: torch {self.torch_minor} was released for {self.variant} ({self.status})"
        text = self.never_released()
        near = []
        if self.same_torch:
            near.append(f"{', '.join(self.same_torch[:2])} (same torch, other CUDA)")
        if self.same_cuda:
            near.append(f"{self.same_cuda[0]} (same CUDA, older torch)")
        if near:
            text += f"; nearest real images: {'; '.join(near)}"
        return text


MATRIX_FILE = "envctl/data/release-matrix.yaml"
_RESTORE = f"restore it: git checkout {MATRIX_FILE} (or reinstall envctl)"


def check_data(data: Any, where: str = MATRIX_FILE) -> dict:
    """The release matrix's data, or one DamagedDocumentError naming the key that breaks the
    layout its header describes (every command that names an image reads this file)."""
    def bad(key: str, problem: str) -> NoReturn:
        raise DamagedDocumentError(f"{where}: {key}: {problem}", hint=_RESTORE)

    def versions(values: Any, key: str) -> None:
        for i, value in enumerate(values):
            if not (isinstance(value, str) and re.match(r"^\d+(\.\d+)*", value)):
                bad(f"{key}[{i}]", f"{value!r} is not a version string")

    if not isinstance(data, dict):
        raise DamagedDocumentError(f"{where} is not a release matrix (empty, or not a mapping)", hint=_RESTORE)
    if data.get("version") != 1:
        bad("version", f"{data.get('version')!r}, expected 1")
    if not isinstance(data.get("torch"), dict) or not data["torch"]:
        bad("torch", "not a table of torch minors")
    for minor, row in data["torch"].items():
        key = f"torch.{minor}"
        if not (isinstance(minor, str) and re.fullmatch(r"\d+\.\d+", minor)) or not isinstance(row, dict):
            bad(key, 'not a torch minor such as "2.13" with its table')
        if not isinstance(row.get("releases"), list) or not row["releases"]:
            bad(f"{key}.releases", "not a list of releases")
        versions(row["releases"], f"{key}.releases")
        if not (isinstance(row.get("python"), list) and len(row["python"]) == 2):
            bad(f"{key}.python", "not [oldest, newest]")
        versions(row["python"], f"{key}.python")
        cuda = row.get("cuda")
        for status in ("stable", "experimental"):
            table = cuda.get(status) if isinstance(cuda, dict) else None
            if not (isinstance(table, dict) and all(isinstance(v, str) for v in table.values())):
                bad(f"{key}.cuda.{status}", "not a mapping of CUDA version to cuDNN version")
            versions(list(table), f"{key}.cuda.{status}")
        for name in ("torchvision", "torchaudio", "pypi"):
            if not (row.get(name) is None or isinstance(row[name], str)) or (name != "pypi" and name not in row):
                bad(f"{key}.{name}", "not a version string or null")
        if not isinstance(row.get("pypi_libs") or {}, dict):
            bad(f"{key}.pypi_libs", "not a mapping")
    if not isinstance(data.get("arch_lists"), dict):
        bad("arch_lists", "not a mapping of CUDA version to arch lists")
    for cuda, entries in data["arch_lists"].items():
        for i, entry in enumerate(entries if isinstance(entries, list) else [None]):
            if not (isinstance(entry, dict) and isinstance(entry.get("arches"), list)):
                bad(f"arch_lists.{cuda}[{i}]", "not an entry {arches: [...]}")
            try:
                _in_range((0,), str(entry.get("torch", ">=0")))
            except ValueError:
                bad(f"arch_lists.{cuda}[{i}].torch", f"{entry['torch']!r} is not a range such as '>=2.11'")
    drivers = data.get("drivers")
    if not (isinstance(drivers, dict) and all(isinstance(v, str) for v in drivers.values())):
        bad("drivers", "not a mapping of CUDA major version to driver version")
    return data


class Matrix:
    """Queries over the release matrix data file."""

    def __init__(self, data: dict) -> None:
        check_data(data)
        self.refreshed = str(data.get("refreshed", ""))
        self.torch: dict[str, TorchRelease] = {}
        for minor, row in data["torch"].items():
            self.torch[minor] = TorchRelease(
                minor=minor,
                releases=tuple(row["releases"]),
                python=(row["python"][0], row["python"][1]),
                stable=dict(row["cuda"]["stable"]),
                experimental=dict(row["cuda"]["experimental"]),
                torchvision=row["torchvision"],
                torchaudio=row["torchaudio"],
                pytorch_channel=bool(row.get("pytorch_channel", False)),
                pypi=row.get("pypi"),
                pypi_libs=dict(row.get("pypi_libs") or {}),
            )
        self._arch_lists = data["arch_lists"]
        self._drivers = data["drivers"]

    # -- lookups ---------------------------------------------------------
    def minors(self) -> list[str]:
        return sorted(self.torch, key=parse_version)

    def release(self, torch_version: str) -> TorchRelease | None:
        return self.torch.get(minor_of(torch_version))

    def verdict(self, torch_minor: str, variant: str) -> Verdict:
        rel = self.torch.get(torch_minor)
        if rel is None:
            return Verdict(torch_minor, variant, None, None)
        status = rel.status_of(variant)
        same_torch = [f"pytorch-{torch_minor}-{v}" for v in self._nearest_variants(rel, variant)]
        same_cuda = []
        if variant != "cpu":
            older = [m for m in self.minors()
                     if parse_version(m) < parse_version(torch_minor)
                     and self.torch[m].status_of(variant) is not None]
            same_cuda = [f"pytorch-{m}-{variant}" for m in reversed(older)]
        return Verdict(torch_minor, variant, status, rel, same_torch, same_cuda)

    def _nearest_variants(self, rel: TorchRelease, variant: str) -> list[str]:
        """Other variants of the same torch, closest CUDA first, stable before experimental."""
        cuda = variant_to_cuda(variant)
        target = parse_version(cuda) if cuda else (0, 0)
        gpu = [v for v in rel.variants if v not in ("cpu", variant)]

        def key(v: str) -> tuple:
            c = parse_version(variant_to_cuda(v))
            distance = abs((c[0] * 10 + c[1]) - (target[0] * 10 + target[1]))
            return (rel.status_of(v) != "stable", distance, c)

        return sorted(gpu, key=key)

    def arch_list(self, cuda: str, torch_version: str) -> tuple[list[str], bool]:
        """Compute capabilities compiled into the wheels, and whether the newest ships PTX."""
        entries = self._arch_lists.get(cuda)
        if not entries:
            return [], False
        tv = parse_version(torch_version)
        for entry in entries:
            if "torch" not in entry or _in_range(tv, entry["torch"]):
                return list(entry["arches"]), bool(entry.get("ptx", False))
        return [], False

    def min_driver(self, cuda: str) -> str | None:
        return self._drivers.get(str(parse_version(cuda)[0]))


@lru_cache(maxsize=1)
def load_matrix() -> Matrix:
    # every command that takes an image name reads it before anything else: parsed once per content
    try:
        data = yamldoc.load(read_data("release-matrix.yaml"))
    except yamldoc.DocumentError as exc:
        raise DamagedDocumentError(f"{MATRIX_FILE} is not YAML: {exc}", hint=_RESTORE) from None
    return Matrix(data)


def check_image_name(name: str) -> Verdict | None:
    """For a name of the form pytorch-X.Y-VARIANT, the matrix verdict; None otherwise."""
    m = IMAGE_NAME_RE.match(name)
    if not m:
        return None
    return load_matrix().verdict(f"{m.group(1)}.{m.group(2)}", m.group(3))


def require_real(name: str) -> Verdict | None:
    """Raise MatrixError when ``name`` parses as an image name PyTorch never released."""
    verdict = check_image_name(name)
    if verdict is not None and not verdict.exists:
        raise MatrixError(verdict.explain(), hint=_suggestion_hint(verdict))
    return verdict


def _suggestion_hint(verdict: Verdict) -> str | None:
    if verdict.release is None:
        known = load_matrix().minors()
        return f"known torch versions: {known[0]} .. {known[-1]}"
    near = verdict.same_torch[:2] + verdict.same_cuda[:1]
    return f"try: envctl show {near[0]}" if near else None
