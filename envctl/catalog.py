"""The project: its ``images/`` catalog, ``locks/`` and ``templates/`` folders.

Resolving an image name is the first thing every command does, so it is fast
and engine-free: a name that is not in the catalog but looks like
``pytorch-X.Y-VARIANT`` is judged against the release matrix at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from envctl.errors import UnknownImageError, UsageError
from envctl.matrix import check_image_name, require_real
from envctl.spec import ImageSpec, load_spec


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
        # Not in the catalog: answer from the matrix before anything slow happens.
        require_real(name)
        verdict = check_image_name(name)
        if verdict is not None:
            raise UnknownImageError(
                f"{name} is a real PyTorch combination ({verdict.status}) but the catalog has no "
                f"{path.relative_to(self.root)}",
                hint=f"add images/{name}.yaml (copy a neighbour such as {self._neighbour(name)})")
        known = ", ".join(self.names()) or "none"
        raise UnknownImageError(f"no image named {name!r} in {self.images_dir}; catalog: {known}",
                                hint="envctl catalog lists the images")

    def _neighbour(self, name: str) -> str:
        names = self.names()
        prefix = name.rsplit("-", 1)[0]
        same = [n for n in names if n.startswith(prefix)]
        return (same or names or ["pytorch-2.13-cpu"])[0]


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
