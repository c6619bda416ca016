"""The refusal of a name PyTorch never released: the nearest real images, and whether each works here.

A suggestion must lead somewhere.  Each neighbour the release matrix names (same torch, other
CUDA; same CUDA, older torch) is judged here: *locked* (its lock is current and this machine
reaches what it was locked from), *locks here* (no current lock, but every source it needs
answers) or *needs* a source this machine cannot reach (named).  The first suggestion is the
nearest one that works here whenever any neighbour does, even one further away than the usual three.

Which sources a spec needs is ``envctl.spec_sources``' answer, the lock's own; whether they
answer is one quick probe per host (``envctl.net.unreachable``), so a refusal stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from envctl import spec_sources
from envctl.errors import EnvctlError, MatrixError
from envctl.lock.state import lock_state
from envctl.matrix import Verdict, require_real
from envctl.net import unreachable
from envctl.spec import ImageSpec

if TYPE_CHECKING:
    from envctl.catalog import Project


@dataclass(frozen=True)
class Neighbour:
    """One real image near a refused name, and how far it is from working here."""

    name: str
    relation: str  # "same torch, other CUDA" / "same CUDA, older torch"
    rank: int  # 0 locked and reachable, 1 locks here, 2 needs an unreachable source (or its spec is broken)
    state: str  # what the refusal says of it

    @property
    def works_here(self) -> bool:
        return self.rank < 2

    @property
    def next_step(self) -> str:
        return f"envctl {'build' if self.rank == 0 else 'lock' if self.rank == 1 else 'show'} {self.name}"


def sources(spec: ImageSpec) -> list[tuple[str, str]]:
    """(short name, URL or path) of every source locking ``spec`` reads (the lock's own order)."""
    need = spec_sources.sources(spec)
    return ([(channel, spec_sources.channel_url(channel)) for channel in need.channels]
            + [(urlparse(url).hostname or url, url) for url in need.indexes]
            + [(link, link) for link in need.find_links])


def judge(project: Project, verdict: Verdict) -> list[Neighbour]:
    """Every real neighbour of the refused name, nearest first (same torch, then same CUDA)."""
    candidates = [(n, "same torch, other CUDA") for n in verdict.same_torch] \
        + [(n, "same CUDA, older torch") for n in verdict.same_cuda]
    specs: dict[str, ImageSpec | EnvctlError] = {}
    for name, _relation in candidates:
        try:
            specs[name] = project.resolve(name)
        except EnvctlError as exc:  # a broken hand-written spec is still a neighbour, one that does not work
            specs[name] = exc
    needed = {name: sources(spec) for name, spec in specs.items() if isinstance(spec, ImageSpec)}
    down = unreachable(sorted({url for wanted in needed.values() for _short, url in wanted}))
    out = []
    for name, relation in candidates:
        spec = specs[name]
        if isinstance(spec, EnvctlError):  # its own error is for envctl show: the refusal stays one line
            out.append(Neighbour(name, relation, 2, f"its spec does not load: envctl show {name} says why"))
            continue
        missing = list(dict.fromkeys(short for short, url in needed[name] if url in down))
        if missing:
            out.append(Neighbour(name, relation, 2, f"needs {', '.join(missing)}: unreachable here"))
        elif _locked(project, spec):
            out.append(Neighbour(name, relation, 0, "locked, builds here"))
        else:
            out.append(Neighbour(name, relation, 1, "not locked; locks and builds here"))
    return out


def _locked(project: Project, spec: ImageSpec) -> bool:
    try:
        return lock_state(spec, project.lock_path(spec.name)).current
    except EnvctlError:  # a folder where the lockfile belongs: not locked, as far as a suggestion goes
        return False


def shown(neighbours: list[Neighbour]) -> list[Neighbour]:
    """What the refusal lists: the nearest that works here first (if any does: same torch before
    older torch, locked or not), then the usual nearest three (two of the same torch, one of the
    same CUDA)."""
    best = next((n for n in neighbours if n.works_here), None)
    same_torch = [n for n in neighbours if n.relation.startswith("same torch")][:2]
    same_cuda = [n for n in neighbours if n.relation.startswith("same CUDA")][:1]
    return ([best] if best else []) + [n for n in same_torch + same_cuda if n is not best]


def refusal(project: Project, name: str, verdict: Verdict) -> MatrixError:
    """The one-line error for a name PyTorch never released, with neighbours that lead somewhere."""
    if verdict.release is None:
        require_real(name)  # a torch the matrix does not know: no neighbours, the matrix's own answer
    listed = shown(judge(project, verdict))
    text = verdict.never_released()
    if listed:
        text += "; nearest real images: " + ", ".join(f"{n.name} ({n.relation}; {n.state})" for n in listed)
    return MatrixError(text, hint=f"try: {listed[0].next_step}" if listed else None)
