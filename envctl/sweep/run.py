"""The sweep's acting loop: for each combination, resolve, lock, build, verify and record, one
combination at a time, giving images back as it goes.

Each combination ends as one ``Cell`` recorded as a run of kind ``matrix`` (the cell is its
document); the build and the verification are recorded as ``envctl build`` and ``envctl verify``
record them.  One failing combination never stops the others: every ``EnvctlError`` becomes that
cell's one line.  Ctrl-C (or SIGTERM) stops after the current step has cleaned up: what was
recorded stays, and the next run starts where this one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from envctl.catalog import Project
from envctl.errors import BuildError, EnvctlError
from envctl.sweep.plan import (Cell, Combo, Held, cell_from_document, classify, geomean_speedups, lock_versions,
                               python_problem, settled)

if TYPE_CHECKING:
    from envctl.fleet import Target

KIND = "matrix"  # the records' kind for a sweep's cells


@dataclass
class SweepResult:
    cells: list[Cell] = field(default_factory=list)  # in the order of the combinations run
    settled: list[Cell] = field(default_factory=list)  # the records' answers (not redone)
    interrupt: BaseException | None = None  # the Ctrl-C or SIGTERM that stopped it
    seconds: float = 0.0
    peak_bytes: int = 0  # the sweep's images held at once plus the package cache, at most
    removed: list[str] = field(default_factory=list)  # names of the images given back
    evicted_files: int = 0  # package cache files given back under --max-disk
    evicted_bytes: int = 0


def recorded_cells(records=None, *, limit: int = 100_000) -> list[Cell]:
    """Every cell the records hold, newest first (a row no sweep wrote is passed over)."""
    import json

    from envctl.records import Records

    records = records or Records()
    out = []
    for row in records.execute("SELECT started, document FROM runs WHERE kind = ? ORDER BY started DESC, id DESC "
                               "LIMIT ?", (KIND, limit)):
        try:
            doc = json.loads(row["document"]) if row["document"] else None
        except ValueError:
            continue
        cell = cell_from_document(doc, when=row["started"])
        if cell is not None:
            out.append(cell)
    return out


def run_sweep(project: Project, combos: Sequence[Combo], *, gpus: str = "none", level: str | None = None,
              keep: int | None = None, max_disk: int | None = None, retry_failed: bool = False,
              targets: Mapping[str, Target] | None = None, registry: str | None = None,
              progress: Callable[[str], None] = lambda _m: None,
              on_cell: Callable[[Cell, bool], None] = lambda _c, _fresh: None) -> SweepResult:
    """Run every combination not already settled for its lock; ``on_cell(cell, fresh)`` after each
    (``fresh`` False: the records' answer).  Under ``max_disk``, room is made before each build:
    images given back first, then package files no combination left and no committed lock needs.

    A combination whose ``target`` names one of ``targets`` (fleet targets by name) is verified
    there: a remote one runs the image pushed to ``registry`` first.  Combinations of one image
    come one after another (a target each): its image is given back after the last of them."""
    from envctl.cache import PackageCache
    from envctl.sweep.room import Pins, evict_packages, give_back

    started = time.monotonic()
    result, held = SweepResult(), []
    cache = PackageCache()
    previous = recorded_cells()
    pins = Pins(project) if max_disk is not None else None
    engine = None
    try:
        for i, combo in enumerate(combos):
            cell, inputs = _resolve(project, combo)
            if cell is None:
                spec, lock_hash = inputs
                answer = settled(combo, lock_hash=lock_hash, spec_hash=spec.content_hash(), cells=previous,
                                 retry_failed=retry_failed)
                if answer is not None:
                    result.settled.append(answer)
                    result.cells.append(answer)
                    on_cell(answer, False)
                    continue
                if engine is None:
                    from envctl.engine import Engine

                    engine = Engine.connect()
                def make_room(incoming: int, left=combos[i:]) -> None:  # before a build: room for what it adds
                    give_back(engine, held, cache, result, keep=None, max_disk=max_disk, incoming=incoming,
                              progress=progress)
                    evict_packages(cache, result, budget=max_disk - sum(h.size for h in held) - incoming,
                                   needed=pins.needed(left), progress=progress)

                began = time.time()
                cell = _make(project, combo, spec, engine, cache, gpus=gpus, level=level, held=held,
                             make_room=make_room if max_disk is not None else None, progress=progress,
                             target=(targets or {}).get(combo.target) if combo.target else None,
                             registry=registry)
                _record(cell, started=began)
                if i + 1 == len(combos) or combos[i + 1].name != combo.name:  # its other targets verified
                    give_back(engine, held, cache, result, keep=keep, max_disk=max_disk, progress=progress)
            result.cells.append(cell)
            on_cell(cell, True)
        if engine is not None:  # an image whose other targets the records settled is still held
            give_back(engine, held, cache, result, keep=keep, max_disk=max_disk, progress=progress)
    except KeyboardInterrupt as exc:  # SIGTERM too (Terminated): the steps below cleaned up as they unwound
        result.interrupt = exc
    result.seconds = time.monotonic() - started
    return result


def report_cells(project: Project, combos: Sequence[Combo]) -> list[Cell]:
    """Each combination's cell from the records, for its current lock (grey: not run for it yet)."""
    previous = recorded_cells()
    out = []
    for combo in combos:
        cell, inputs = _resolve(project, combo)
        if cell is None:
            spec, lock_hash = inputs
            cell = settled(combo, lock_hash=lock_hash, spec_hash=spec.content_hash(), cells=previous) or Cell(
                combo, "grey", "not run for the current lock yet" if lock_hash else "not locked yet",
                "not run yet", lock_hash=lock_hash, python=spec.python)
        out.append(cell)
    return out


def _resolve(project: Project, combo: Combo):
    """(a grey or failed cell, None) when the combination cannot be made here, else
    (None, (spec, the current lock's hash or None))."""
    from envctl.lock.state import lock_state
    from envctl.matrix import load_matrix

    rel = load_matrix().torch.get(combo.torch)
    problem = python_problem(rel, combo.python) if rel else f"torch {combo.torch} is not in the release matrix"
    if problem:
        return _failed(combo, "plan", problem), None
    try:
        spec = project.resolve(combo.name)
        if combo.python and spec.python != combo.python:
            return _failed(combo, "plan", f"{project.spec_path(spec.name).relative_to(project.root)} pins Python "
                                          f"{spec.python}: the catalog has no spec for Python {combo.python}"), None
        state = lock_state(spec, project.lock_path(spec.name))
    except EnvctlError as exc:
        return _failed(combo, "plan", exc.message), None
    if state.state != "locked":
        return None, (spec, None)
    from envctl.lock import load_lock

    try:
        return None, (spec, load_lock(project.lock_path(spec.name)).lock_hash)
    except EnvctlError as exc:  # a lock whose body breaks the format: this combination's failure only
        return _failed(combo, "lock", exc.message, spec_hash=spec.content_hash()), None


def _failed(combo: Combo, stage: str, line: str, **known) -> Cell:
    failure, grey = classify(stage, line)
    return Cell(combo, "grey" if grey else "failed", line, failure, when=time.time(), **known)


def _make(project: Project, combo: Combo, spec, engine, cache, *, gpus: str, level: str | None,
          held: list[Held], make_room: Callable[[int], None] | None, progress: Callable[[str], None],
          target: Target | None = None, registry: str | None = None) -> Cell:
    """Lock (where it was never locked), build and verify one combination (on ``target``: the
    local engine when None).  A stale lock is this combination's failure, as ``envctl build``
    refuses it: a sweep re-locks nothing behind the user's back."""
    from envctl.lock import require_current_lock

    known: dict = {"spec_hash": spec.content_hash(), "python": spec.python}
    path = project.lock_path(spec.name)
    t0 = time.monotonic()
    try:
        if not path.exists():
            _lock(project, spec, progress=progress)
        lock = require_current_lock(spec, path)
        known["lock_s"] = round(time.monotonic() - t0, 2)
    except EnvctlError as exc:
        return _failed(combo, "lock", exc.message, **known)
    known |= {"lock_hash": lock.lock_hash, "versions": lock_versions([*lock.conda, *lock.pip])}
    t0 = time.monotonic()
    try:
        incoming = _incoming(engine, spec, lock, path, cache) if make_room is not None else None
        if incoming is not None:  # none when the image is there: making room could give it back
            make_room(incoming)
        built = _build(project, spec, lock, engine, cache, progress=progress)
    except BuildError as exc:
        return _failed(combo, "build", f"build failed at {exc.step or 'an unknown step'}: {exc.message}",
                       **known, build_s=round(time.monotonic() - t0, 2))
    except EnvctlError as exc:
        return _failed(combo, "build", exc.message, **known)
    if built.built:
        held.append(Held(built.image.id, spec.name, built.image.size))
    known |= {"size": built.image.size, "build_s": round(built.seconds, 2)}
    try:
        from envctl.fleet import executor_for
        from envctl.verify import plan_verify, run_verifications, summarize

        progress(f"verifying {spec.name}" + (f" on {target.name}" if target else ""))
        plan = plan_verify(project, spec.name, gpus=gpus, level=level, progress=progress,
                           executor=executor_for(target) if target else None, target=combo.target,
                           registry=registry if target is not None and target.on != "local" else None)
        [v] = run_verifications([plan], progress=progress)
        v.record()
    except EnvctlError as exc:
        return _failed(combo, "verify", exc.message, **known)
    known["node"] = v.where.get("node") if target is not None else None
    if v.report is None:
        return _failed(combo, "verify", v.error or "the probe printed no document", **known)
    known["verify_s"] = round(v.report.seconds, 2)
    if not v.ok:
        return _failed(combo, "verify", summarize(v.report), **known)
    return Cell(combo, "verified", summarize(v.report), when=time.time(),
                speedups=geomean_speedups(v.report.document), **known)


def _lock(project: Project, spec, *, progress: Callable[[str], None]) -> None:
    """Lock as ``envctl lock`` does (a derived spec is kept in images/ beside its first lock)."""
    from envctl.catalog import lock_into

    progress(f"locking {spec.name}")
    lock_into(project, spec, progress=progress)


def _incoming(engine, spec, lock, path, cache) -> int | None:
    """Bytes a build of ``spec`` will add, estimated from the lock (envctl.imagesize): its
    environment's layers and the downloads the package cache does not hold yet; None when an
    identical image is there (a later target of the same image: nothing is built), 0 when a
    size cannot be had (offline)."""
    from envctl import yamldoc
    from envctl.build import find_built
    from envctl.imagesize import estimate

    if find_built(engine, spec, lock) is not None:
        return None
    guess = estimate(spec, yamldoc.load(path.read_text(encoding="utf-8")), cache_root=cache.root)
    if guess is None:
        return 0
    pinned = {p.sha256 for p in [*lock.pip, *lock.conda]}
    cached = sum(e.bytes for e in cache.entries() if e.digest in pinned)  # on the disk already
    return guess.bytes - guess.base_bytes + max(0, guess.download_bytes - cached)


def _build(project: Project, spec, lock, engine, cache, *, progress: Callable[[str], None]):
    """``envctl build NAME`` without its output: an identical image already there is reused.
    Its build context goes when it is done: its links would hold on to files the cache evicts."""
    from envctl.build import drop_context
    from envctl.imagebuild import build_recorded

    progress(f"building {spec.name}")
    try:
        return build_recorded(project, spec, lock, engine, cache=cache, progress=progress)
    finally:
        drop_context(cache, spec.name)


def _record(cell: Cell, *, started: float) -> None:
    from envctl.records import record_run

    record_run(kind=KIND, image=cell.combo.name, ok=cell.ok, spec_hash=cell.spec_hash, lock_hash=cell.lock_hash,
               started=started, duration_s=time.time() - started, summary=cell.reason, target=cell.combo.target,
               document=cell.document())

