"""Room on the disk for a sweep under ``--keep`` / ``--max-disk``: the images it built given back
(oldest first, then the engine's unused build cache), and, before a build that would not fit,
the package cache's files that no combination left to run and no committed lock needs (least
recently used first).  Files are evicted between builds, never during one: a build finds every
file it needs in the cache when it starts, or fetches it itself.

What to give back is pure (``envctl.sweep.plan.to_give_back``, ``envctl.cache.plan_eviction``);
this module reads the engine, the cache and the locks, and acts.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from envctl.cache import PackageCache, plan_eviction
from envctl.catalog import Project
from envctl.errors import EnvctlError
from envctl.sweep.plan import Combo, Held, to_give_back

if TYPE_CHECKING:
    from envctl.sweep.run import SweepResult

Progress = Callable[[str], None]


def size_text(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 100e6 else f"{n / 1e6:.1f} MB"


def give_back(engine, held: list[Held], cache: PackageCache, result: SweepResult, *, keep: int | None,
              max_disk: int | None, progress: Progress, incoming: int = 0) -> None:
    """Remove the images this sweep built that --keep / --max-disk no longer allow, oldest first
    (images that were there before the sweep are never removed), then the engine's unused build
    cache, all of it: BuildKit keeps a removed image's layers there, and cannot tell whose they
    are.  An engine that refuses says so in a line and the sweep goes on: no combination stops
    the others."""
    cache_bytes = cache.disk_bytes()
    result.peak_bytes = max(result.peak_bytes, sum(h.size for h in held) + cache_bytes)
    removed = False
    for h in to_give_back(held, keep=keep, max_disk=max_disk, cache_bytes=cache_bytes, incoming=incoming):
        progress(f"removing {h.name} ({h.size / 1e9:.1f} GB)")
        try:
            engine.remove_image(h.image_id)
        except EnvctlError as exc:  # a container still using it, say: kept, and counted as held no more
            progress(f"could not remove {h.name}: {exc.message}")
        else:
            result.removed.append(h.name)
            removed = True
        held.remove(h)
    if removed:  # the layers of a removed image come back only once the build cache lets go of them
        try:
            progress(f"gave back {engine.prune_build_cache() / 1e9:.1f} GB of unused build cache")
        except EnvctlError as exc:
            progress(f"could not prune the build cache: {exc.message}")


def evict_packages(cache: PackageCache, result: SweepResult, *, budget: int, needed: set[str],
                   progress: Progress) -> None:
    """Evict cached files no one ``needed`` until the cache fits in ``budget`` bytes (what
    --max-disk leaves beside the images held and the next build); one line when it evicted, or
    when what is needed alone is over."""
    entries = cache.entries()
    other = max(0, cache.disk_bytes() - sum(e.bytes for e in entries))  # logs, index pages, contexts: kept
    doomed = plan_eviction(entries, needed=needed, budget=budget - other)
    for entry in doomed:
        cache.evict(entry.digest)
    gone = {e.digest for e in doomed}
    kept = [e for e in entries if e.digest not in gone]
    now = cache.disk_bytes()
    if not doomed and now <= budget:
        return
    freed = sum(e.bytes for e in doomed)
    result.evicted_files += len(doomed)
    result.evicted_bytes += freed
    line = (f"package cache: evicted {len(doomed)} files ({size_text(freed)}), least recently used first; kept "
            f"{len(kept)} ({size_text(sum(e.bytes for e in kept))}), {sum(e.digest in needed for e in kept)} of them "
            f"needed by the combinations left or a committed lock; it holds {size_text(now)} of the "
            f"{size_text(max(0, budget))} --max-disk leaves it")
    if now > budget:
        line += f", {size_text(now - budget)} over: every file left is needed"
    progress(line)


class Pins:
    """The sha256 of every package the combinations left and the committed locks pin, read
    from the lock files (each read once while it is unchanged)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._read: dict[tuple[Path, int], frozenset[str]] = {}
        self.committed = self._union(committed_locks(project))

    def needed(self, combos: Iterable[Combo]) -> set[str]:
        paths = []
        for combo in combos:
            try:
                paths.append(self.project.lock_path(self.project.resolve(combo.name).name))
            except EnvctlError:
                continue  # no spec for it: it will build nothing
        return set(self.committed) | self._union(paths)

    def _union(self, paths: Iterable[Path]) -> frozenset[str]:
        from envctl.lock import load_lock

        out: set[str] = set()
        for path in paths:
            try:
                key = (path, path.stat().st_mtime_ns)
                if key not in self._read:
                    lock = load_lock(path)
                    self._read[key] = frozenset(p.sha256 for p in [*lock.pip, *lock.conda] if p.sha256)
                out |= self._read[key]
            except (OSError, EnvctlError):
                continue  # not locked yet, or a lock that breaks the format: it pins nothing
        return frozenset(out)


def committed_locks(project: Project) -> list[Path]:
    """The lock files under locks/ that git tracks (the ones a review let in, not those a sweep
    just wrote); every one there now where the project is not a git work tree."""
    try:
        out = subprocess.run(["git", "-C", str(project.root), "ls-files", "-z", "--", "locks/"],
                             capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0:
        return [project.root / name for name in out.stdout.decode(errors="replace").split("\0")
                if name.endswith(".conda-lock.yml")]
    return sorted(project.locks_dir.glob("*.conda-lock.yml"))
