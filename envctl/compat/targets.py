"""Where ``envctl compat`` runs artifacts: a built image or a local interpreter, and the options
that choose the runtime (Python or libtorch from C++) and the device."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from envctl.errors import UsageError

RUNTIMES = ("python", "libtorch")
DEVICES = ("auto", "cpu", "cuda")
MAX_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class Target:
    label: str  # the image name, or python:PATH
    kind: str  # image | python
    ref: str  # image id, or interpreter path

    @property
    def key(self) -> str:
        return self.ref if self.kind == "image" else f"python:{self.ref}"


def python_target(given: str) -> Target:
    """An interpreter by path, or by a command name looked up on PATH (``python3``)."""
    path = Path(given).expanduser()
    if os.sep not in given and not path.exists():
        found = shutil.which(given)
        if found is None:
            raise UsageError(f"no interpreter {given} on PATH",
                              hint="give a command on PATH or the path of a python executable, e.g. ~/envs/x/bin/python")
        path = Path(found)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UsageError(f"no interpreter at {given} (not an executable file)",
                          hint="give a command on PATH or the path of a python executable, e.g. ~/envs/x/bin/python")
    path = path.absolute()
    return Target(label=f"python:{path}", kind="python", ref=str(path))


def image_target(project, engine, name: str) -> Target:
    from envctl.build import require_built
    from envctl.lock import require_current_lock

    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    image = require_built(engine, spec, lock)
    return Target(label=spec.name, kind="image", ref=image.id)


def check_timeout(value: float) -> float:
    """Seconds per artifact: finite, positive, at most a day (0, -5, nan, inf are not timeouts)."""
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise UsageError(f"--timeout {value}: give seconds per artifact, more than 0 and at most {MAX_TIMEOUT:.0f}")
    return value


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{option} {value}: choose one of {', '.join(choices)}")
    return value


def column(label: str, runtime: str, device: str, on: str | None = None) -> str:
    """The matrix column of one target run: the image (or interpreter), the fleet target it ran on
    (none for this machine), the runtime and the device."""
    return f"{label}{f' on {on}' if on else ''} {runtime}/{device}"
