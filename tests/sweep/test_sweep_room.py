"""What a sweep under --max-disk keeps in the package cache: the files of the combinations left
and of the locks git tracks under locks/ (a lock the sweep itself just wrote pins nothing), read
from real lock files in a real git work tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from envctl.catalog import Project
from envctl.lock import load_lock
from envctl.sweep.plan import Combo
from envctl.sweep.room import Pins, committed_locks

REPO = Path(__file__).resolve().parents[2]
CPU, CUDA = "pytorch-2.13-cpu", "pytorch-2.14-cu130"


def _digests(root: Path, name: str) -> set[str]:
    lock = load_lock(root / "locks" / f"{name}.conda-lock.yml")
    return {p.sha256 for p in [*lock.pip, *lock.conda]}


def _project(root: Path, *, git: bool) -> Project:
    for folder in ("images", "locks"):
        shutil.copytree(REPO / folder, root / folder)
    if git:  # the cpu lock committed; the cu130 lock as a sweep leaves one: written, not committed
        run = dict(cwd=root, check=True, capture_output=True)
        subprocess.run(["git", "init", "-q"], **run)
        subprocess.run(["git", "add", "images", f"locks/{CPU}.conda-lock.yml"], **run)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], **run)
    return Project(root)


def test_only_committed_locks_pin_and_the_combinations_left_need_their_own(tmp_path):
    project = _project(tmp_path / "p", git=True)
    assert [p.name for p in committed_locks(project)] == [f"{CPU}.conda-lock.yml"]
    pins = Pins(project)
    cpu, cuda = _digests(project.root, CPU), _digests(project.root, CUDA)
    assert pins.needed([]) == cpu  # the cu130 lock is not committed: its files may go
    assert pins.needed([Combo("2.14", "cu130")]) == cpu | cuda  # unless a combination left builds it
    assert pins.needed([Combo("2.15", "cu132")]) == cpu  # no spec or no lock yet: nothing more


def test_outside_git_every_lock_there_counts_as_committed(tmp_path):
    project = _project(tmp_path / "p", git=False)
    assert {p.name for p in committed_locks(project)} == {p.name for p in (REPO / "locks").glob("*.conda-lock.yml")}
