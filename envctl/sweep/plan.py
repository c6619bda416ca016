"""The sweep's planning, pure: which combinations a range names, which of them the records
already settle for their lock, how a failure line is classed, which images to give back.

Nothing here touches an engine, an index or the records database: the acting loop
(``envctl.sweep.run``) reads those and hands their answers in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from envctl.errors import DamagedDocumentError
from envctl.matrix import Matrix, TorchRelease, parse_version

VARIANT_CHOICES = "default, all, or a list such as cpu,cu126"
STATES = ("verified", "failed", "grey")


@dataclass(frozen=True)
class Combo:
    """One cell of the sweep: a torch minor, a variant, the Python asked for (None: the spec's),
    and where it is verified (None: the local engine)."""

    torch: str
    variant: str
    python: str | None = None
    target: str | None = None

    @property
    def name(self) -> str:
        return f"pytorch-{self.torch}-{self.variant}"

    @property
    def label(self) -> str:
        return self.name + (f" (Python {self.python})" if self.python else "") + (
            f" on {self.target}" if self.target else "")


@dataclass(frozen=True)
class Cell:
    """What a sweep found for one combination; kept as a record's document (kind ``matrix``)."""

    combo: Combo
    state: str  # verified | failed | grey (could not be made here, or not run yet)
    reason: str  # the one line: what passed, or why not
    failure: str | None = None  # the class of a failure (sweep-failures.yaml)
    lock_hash: str | None = None
    spec_hash: str | None = None
    python: str | None = None  # the Python of the image (the spec's)
    size: int | None = None  # bytes of the image
    lock_s: float | None = None
    build_s: float | None = None
    verify_s: float | None = None
    versions: dict[str, str] = field(default_factory=dict)  # torch, cuda, cudnn, nccl, triton of the lock
    speedups: dict[str, float] = field(default_factory=dict)  # compile mode -> geometric mean over rows
    when: float | None = None  # when its run began
    node: str | None = None  # the node a fleet target verified it on (Slurm, Kubernetes)

    @property
    def ok(self) -> bool:
        return self.state == "verified"

    def document(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("combo", "when")}
        return out | {"torch": self.combo.torch, "variant": self.combo.variant, "requested_python": self.combo.python,
                      "target": self.combo.target}


def cell_from_document(doc: Any, *, when: float | None = None) -> Cell | None:
    """A recorded cell, or None for a document no sweep wrote (a record is untrusted input)."""
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("torch", "variant", "state")) \
            or doc["state"] not in STATES:
        return None
    combo = Combo(doc["torch"], doc["variant"], _str(doc.get("requested_python")), _str(doc.get("target")))

    def num(key: str) -> float | None:
        value = doc.get(key)  # JSON reads Infinity and NaN too: a time or size is finite and >= 0
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e15
        return value if ok else None

    def table(key: str, kind: type) -> dict:
        value = doc.get(key)
        if not isinstance(value, dict):
            return {}
        return {str(k): v for k, v in value.items() if isinstance(v, kind) and (kind is str or 0 < v < 1e6)}

    return Cell(combo, doc["state"], str(doc.get("reason") or ""), _str(doc.get("failure")),
                _str(doc.get("lock_hash")), _str(doc.get("spec_hash")), _str(doc.get("python")),
                int(num("size")) if num("size") is not None else None, num("lock_s"), num("build_s"),
                num("verify_s"), table("versions", str), table("speedups", float), when, _str(doc.get("node")))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def combinations(matrix: Matrix, *, since: str = "2.0", until: str | None = None, variants: str = "default",
                 pythons: Sequence[str] = (), targets: Sequence[str | None] = (None,)) -> list[Combo]:
    """Every real torch minor x variant in [since, until], oldest first, times each Python and target.

    ``variants``: ``default`` (the variant of PyPI's wheel, the one `pip install torch` gives;
    cpu where PyPI has none), ``all`` (every variant the release was built for), or a comma list
    (each where that torch was released for it)."""
    lo, hi = parse_version(since)[:2], parse_version(until)[:2] if until else None
    out = []
    for minor in matrix.minors():
        if parse_version(minor) < lo or (hi is not None and parse_version(minor) > hi):
            continue
        rel = matrix.torch[minor]
        for variant in _variants(rel, variants):
            for python in pythons or (None,):
                out.extend(Combo(minor, variant, python, target) for target in targets)
    return out


def _variants(rel: TorchRelease, choice: str) -> list[str]:
    if choice == "default":
        return [rel.pypi or "cpu"]
    if choice == "all":
        return rel.variants
    return [v for v in (p.strip() for p in choice.split(",")) if v and rel.status_of(v) is not None]


def check_variants(choice: str) -> str | None:
    """What is wrong with a --variants value, or None."""
    if choice in ("default", "all"):
        return None
    bad = [v for v in choice.split(",") if not re.fullmatch(r"cpu|cu\d{2,3}", v.strip())]
    return f"--variants {choice}: {', '.join(bad) or 'empty'} is not a variant" if bad or not choice else None


def python_problem(rel: TorchRelease, python: str | None) -> str | None:
    """Why ``rel`` cannot run on ``python`` (its wheels' CPython range), or None."""
    if python is None or rel.python_ok(python):
        return None
    lo, hi = rel.python
    return f"no wheel for Python {python}: torch {rel.minor} has wheels for CPython {lo} to {hi}"


@lru_cache(maxsize=1)
def _classes() -> tuple[tuple[str, str, bool, re.Pattern], ...]:
    from envctl import yamldoc
    from envctl.data import read

    where = "envctl/data/sweep-failures.yaml"
    try:
        doc = yamldoc.load(read("sweep-failures.yaml"))
        if doc.get("version") != 1:
            raise ValueError(f"version {doc.get('version')!r}, expected 1")
        return tuple((str(c["class"]), str(c["stage"]), bool(c.get("grey")), re.compile(c["pattern"], re.I))
                     for c in doc["classes"])
    except (yamldoc.DocumentError, ValueError, KeyError, TypeError, AttributeError, re.error) as exc:
        raise DamagedDocumentError(f"{where}: not a table of failure classes ({exc})",
                                   hint=f"restore it: git checkout {where} (or reinstall envctl)") from None


def classify(stage: str, line: str) -> tuple[str, bool]:
    """(the class of a failure at ``stage``, whether it is grey): the data file's first match,
    else "<stage> failed"."""
    for name, where, grey, pattern in _classes():
        if where == stage and pattern.search(line):
            return name, grey
    return f"{stage} failed", False


def settled(combo: Combo, *, lock_hash: str | None, spec_hash: str | None, cells: Iterable[Cell],
            retry_failed: bool = False) -> Cell | None:
    """The newest recorded cell that already answers ``combo`` for these inputs: verified (or,
    unless ``retry_failed``, failed) for the same lock hash; a lock that failed (red, or grey: its
    source unreachable) for the same spec when there is still no lock.  ``cells`` newest first.
    None: it is to be done."""
    for cell in cells:
        if (cell.combo.name, cell.combo.target) != (combo.name, combo.target):
            continue
        if cell.state == "grey" and (cell.lock_hash is not None or cell.spec_hash is None):
            continue  # interrupted, or nothing tried (no spec, no wheel for that Python): judged afresh
        if lock_hash:
            same = cell.lock_hash == lock_hash
        else:  # no lock yet: the lock failed before, for this very spec
            same = cell.lock_hash is None and spec_hash is not None and cell.spec_hash == spec_hash
        if same and (cell.ok or not retry_failed):
            return cell
        return None  # the newest record is for other inputs: redo
    return None


@dataclass(frozen=True)
class Held:
    """An image the sweep built and still holds."""

    image_id: str
    name: str
    size: int


def to_give_back(held: Sequence[Held], *, keep: int | None, max_disk: int | None, cache_bytes: int = 0,
                 incoming: int = 0) -> list[Held]:
    """The images to remove, oldest first, so that at most ``keep`` stay and they, the package
    cache and what a build about to start will add (``incoming`` bytes: its downloads and its
    image) stay under ``max_disk`` bytes.  ``held`` oldest first."""
    out = []
    left = list(held)
    while left and ((keep is not None and len(left) > keep) or (
            max_disk is not None and sum(h.size for h in left) + cache_bytes + incoming > max_disk)):
        out.append(left.pop(0))
    return out


def tally(cells: Iterable[Cell]) -> Counter:
    """Failures by class, most frequent first when read with ``most_common``."""
    return Counter(c.failure or "failed" for c in cells if not c.ok)


def geomean_speedups(document: dict[str, Any]) -> dict[str, float]:
    """Per compile mode of a probe document, the geometric mean of its rows' speedups over eager."""
    import math

    by_mode: dict[str, list[float]] = {}
    for row in document.get("benchmarks") or []:
        sp = row.get("speedup") if isinstance(row, dict) else None
        mode = row.get("mode") if isinstance(row, dict) else None
        if isinstance(mode, str) and mode.startswith("compile-") and isinstance(sp, dict) \
                and isinstance(sp.get("median"), (int, float)) and sp["median"] > 0:
            by_mode.setdefault(mode, []).append(float(sp["median"]))
    return {m: round(math.exp(sum(map(math.log, v)) / len(v)), 3) for m, v in sorted(by_mode.items())}


def lock_versions(packages: Iterable[Any]) -> dict[str, str]:
    """torch, cuda, cudnn, nccl and triton of a lock's packages, conda and pip (name/version
    objects); the CUDA runtime as the matrix names it (cuda-toolkit or conda's cuda-version /
    cudatoolkit, else the runtime wheel or package)."""
    out: dict[str, str] = {}
    for p in packages:
        name = p.name.lower().replace("_", "-")
        if name in ("torch", "pytorch"):
            out["torch"] = p.version
        elif name in ("cuda-toolkit", "cuda-version", "cudatoolkit") or (
                name.startswith(("nvidia-cuda-runtime", "cuda-cudart")) and "cuda" not in out):
            out["cuda"] = p.version
        elif name.startswith("nvidia-cudnn") or name == "cudnn":
            out["cudnn"] = p.version
        elif name.startswith("nvidia-nccl") or name == "nccl":
            out["nccl"] = p.version
        elif name in ("triton", "pytorch-triton"):
            out["triton"] = p.version
    return out
