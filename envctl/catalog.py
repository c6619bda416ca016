"""The project: its ``images/`` catalog, ``locks/`` and ``templates/`` folders.

Resolving an image name is the first thing every command does, so it is fast and engine-free.
A spec under ``images/`` always wins; a renamed image's old name resolves to the new one (with
a note); a real ``pytorch-X.Y-VARIANT`` without a file gets the spec the release matrix implies
(``envctl.derived``); a name PyTorch never released is refused with the nearest real images and
whether each works here (``envctl.nearest``: this module sits with the locks for that).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from envctl.derived import Derivation, derive
from envctl.errors import RenamedImageNote, UnknownImageError, UsageError
from envctl.fsio import atomic_write
from envctl.matrix import check_image_name
from envctl.spec import ImageSpec, defaults, load_spec

# The index a derived spec takes PyPI's wheels from, where a site mirrors PyPI (tests: a local index).
INDEX_ENV = "ENVCTL_INDEX_URL"


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    def lock_path(self, name: str) -> Path:
        return self.locks_dir / f"{name}.conda-lock.yml"

    def spec_path(self, name: str) -> Path:
        return self.images_dir / f"{name}.yaml"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.images_dir.glob("*.yaml"))

    def specs(self) -> list[ImageSpec]:
        return [load_spec(self.spec_path(n)) for n in self.names()]

    def resolve(self, name: str) -> ImageSpec:
        """The spec for ``name``; a clear error for an impossible or unknown name."""
        from envctl.spec import NAME_RE

        if not NAME_RE.match(name):
            raise UnknownImageError(f"{name!r} is not an image name (lowercase letters, digits, '.', '_', '-')",
                                    hint="envctl catalog lists the images")
        path = self.spec_path(name)
        if path.exists():  # a FIFO or folder too: load_spec names what is wrong with it
            return load_spec(path)
        renamed = defaults()["renamed"].get(name)
        if renamed:
            warnings.warn(RenamedImageNote(f"{name} is now called {renamed['name']}; the old name works "
                                           f"until envctl {renamed['until']}"), stacklevel=2)
            return self.resolve(renamed["name"])
        # Not in the catalog: answer from the matrix before anything slow happens.
        derived = self.derived(name)
        if derived is not None:
            return derived.spec
        verdict = check_image_name(name)
        if verdict is not None and not verdict.exists:
            from envctl.nearest import refusal

            raise refusal(self, name, verdict)
        if verdict is not None:
            raise UnknownImageError(
                f"{name} is a real PyTorch combination ({verdict.status}) but the catalog has no "
                f"{path.relative_to(self.root)}",
                hint=f"add images/{name}.yaml (copy a neighbour such as {self._neighbour(name)})")
        known = ", ".join(self.names()) or "none"
        raise UnknownImageError(f"no image named {name!r} in {self.images_dir}; catalog: {known}",
                                hint="envctl catalog lists the images")

    def derived(self, name: str) -> Derivation | None:
        """The spec the release matrix implies for ``name`` while images/ has none (else None)."""
        path = self.spec_path(name)
        if path.exists():
            return None
        return derive(name, path=str(path), index_url=os.environ.get(INDEX_ENV) or None)

    def keep_derived(self, name: str) -> Path | None:
        """Write a derived spec to images/ (done when it is first locked); None when a file exists."""
        derived = self.derived(name)
        if derived is None:
            return None
        atomic_write(self.spec_path(name), derived.text)
        return self.spec_path(name)

    def _neighbour(self, name: str) -> str:
        names = self.names()
        prefix = name.rsplit("-", 1)[0]
        same = [n for n in names if n.startswith(prefix)]
        return (same or names or ["pytorch-2.13-cpu"])[0]


def lock_into(project: Project, spec: ImageSpec, *, upgrade: tuple[str, ...] = (), upgrade_all: bool = False,
              force: bool = False, progress=lambda _msg: None) -> dict:
    """Lock ``spec`` into ``project``: solve, write ``locks/NAME.conda-lock.yml`` (only when it
    changed), and keep a derived spec beside its first lock.  Returns the lock's summary with
    ``path``, ``changed``, ``seconds`` and ``spec_written`` (paths relative to the project).

    A re-lock prefers the pins of the lock on disk that the spec still allows (``upgrade_all``
    drops that preference; ``upgrade`` re-resolves the packages it names, keeping the rest)."""
    import time

    from envctl.lock import load_lock, lock_image, write_lock

    path = project.lock_path(spec.name)
    start = time.monotonic()
    previous = {pl: load_lock(path, platform=pl) for pl in spec.platforms} if upgrade else None
    current = previous if upgrade else _current_lock(path, spec.platforms)
    result = lock_image(spec, previous=previous, upgrade=tuple(upgrade), progress=progress, current=current,
                        keep_current=not upgrade_all)
    changed = write_lock(path, result.text, force=force)
    # A derived spec is kept beside its first lock (after it: a lock that cannot be written
    # leaves no spec behind, and the same spec is derived again until one is)
    written = project.keep_derived(spec.name)
    return result.summary() | {"path": str(path.relative_to(project.root)), "changed": changed,
                               "seconds": round(time.monotonic() - start, 2),
                               "spec_written": str(written.relative_to(project.root)) if written else None}


def _current_lock(path: Path, platforms) -> dict | None:
    """The lock on disk, as hints: the pins uv prefers and the files to read ahead (its parse may
    come from envctl.yamldoc's cache).  None when there is none or it cannot be read (the lock
    is then written from scratch, as it would be anyway)."""
    from envctl.errors import EnvctlError
    from envctl.lock import load_lock

    if not path.is_file():
        return None
    try:
        return {pl: load_lock(path, platform=pl, hints_only=True) for pl in platforms}
    except (EnvctlError, OSError, ValueError, KeyError, TypeError):
        return None


def find_project(start: Path | None = None) -> Project:
    """The project root: $ENVCTL_PROJECT, or the nearest folder upwards holding images/."""
    env = os.environ.get("ENVCTL_PROJECT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "images").is_dir():
            raise UsageError(f"ENVCTL_PROJECT={env} has no images/ folder",
                              hint="point ENVCTL_PROJECT at an envctl project (the folder holding images/)")
        return Project(root)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "images").is_dir():
            return Project(folder)
    # Where envctl was run (or pointed) is the user's input: a usage error, exit 2.
    raise UsageError(f"no envctl project found from {here} (no images/ folder here or above)",
                      hint="cd into the envctl checkout, or set ENVCTL_PROJECT=/path/to/project")
