"""The fleet: named places to run verify and compat run, read once from ``fleet.yaml`` at the project root.

    version: 1
    targets:
      h100: {on: slurm, partition: gpu, gres: "gpu:h100:1", time: "00:20:00"}
      a100: {on: slurm, partition: gpu, constraint: a100, account: ml}
      gke-l4: {on: kubernetes, context: gke, gpu_product: NVIDIA-L4, gpus: 1}
      here: {on: local}

Read strictly, as specs are: an unknown key, a wrong type or a malformed Slurm value is one
line naming the file and the key path.  ``executor_for`` turns a target into its executor; the
Slurm and Kubernetes executors are imported only when a target needs one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.catalog import Project
from envctl.errors import SpecError, UsageError
from envctl.fsio import read_document
from envctl.spec import _Reader

FILENAME = "fleet.yaml"
KINDS = ("local", "slurm", "kubernetes")
# Each kind's keys in fleet.yaml -> the executor option they set (``wait`` is seconds: wait_s).
OPTIONS = {
    "local": {},
    "slurm": {"partition": "partition", "gres": "gres", "constraint": "constraint", "nodelist": "nodelist",
              "time": "time", "account": "account", "wait": "wait_s", "spool": "spool"},
    "kubernetes": {"context": "context", "namespace": "namespace", "gpu_product": "gpu_product", "gpus": "gpus",
                   "wait": "wait_s", "driver_major": "driver_major"},
}
_TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# sbatch's formats: --gres gpu[:TYPE][:N]; --time MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
_GRES = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?(:[1-9][0-9]*)?$")
_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2}|UNLIMITED|INFINITE)$")
_WORD = re.compile(r"^[A-Za-z0-9_.,:\[\]=|&()!*-]+$")  # a partition, constraint, node list or account


@dataclass(frozen=True)
class Target:
    """A place the workflows (verify, compat run) run: its kind (``on``) and its executor's options."""

    name: str
    on: str
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of SlurmOptions / ...

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if v is not None)
        return f"{self.name} ({self.on}{': ' + shown if shown else ''})"


@dataclass(frozen=True)
class Fleet:
    path: Path
    targets: dict[str, Target]

    def target(self, name: str) -> Target:
        if name not in self.targets:
            known = ", ".join(self.targets) or "none"
            raise UsageError(f"--target {name}: no such target in {self.path}", hint=f"targets: {known}")
        return self.targets[name]


def load_fleet(project: Project) -> Fleet:
    """``fleet.yaml`` of the project, validated; a usage error when there is none."""
    from envctl import yamldoc

    path = project.root / FILENAME
    if not path.exists():
        raise UsageError(f"no {FILENAME} in {project.root}",
                         hint="name the targets there (version: 1, targets: {NAME: {on: slurm, ...}}), "
                              "or give --on slurm with its options")
    try:
        doc = yamldoc.load(read_document(path), unique_keys=True)
    except OSError as exc:
        raise SpecError(str(path), None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), None, f"not UTF-8 text (byte {exc.start})") from None
    except yamldoc.DocumentError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise SpecError(str(path), None, f"not valid YAML{where}: {exc.problem}") from None
    return parse_fleet(doc, path=path)


def parse_fleet(data: Any, *, path: Path) -> Fleet:
    """A decoded fleet document, validated (pure)."""
    top = _FleetReader(str(path), data, allowed=("version", "targets"))
    version = top._take("version", ...)
    if version != 1 or isinstance(version, bool):
        raise top.fail("version", f"{version!r} is not a fleet format this envctl reads; use version: 1")
    raw = top._take("targets", ...)
    if not isinstance(raw, dict) or not raw:
        raise top.fail("targets", "expected a mapping of target names to {on: ..., options}")
    top.finish()
    targets = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not _TARGET_NAME.match(name):
            raise SpecError(str(path), f"targets.{name}", "not a target name (lowercase letters, digits, . _ -)")
        if isinstance(body, dict) and True in body and "on" not in body:
            body = {("on" if k is True else k): v for k, v in body.items()}  # YAML 1.1 reads a bare `on` as true
        reader = _FleetReader(str(path), body, prefix=f"targets.{name}")
        on = reader.str("on", choices=KINDS)
        reader.allowed = ("on", *OPTIONS[on])
        targets[name] = Target(name, on, read_options(reader, on))
    return Fleet(path, targets)


def target_from_options(on: str, options: Mapping[str, Any]) -> Target:
    """The target ``--on KIND --partition ...`` describes, checked as fleet.yaml's are; the
    command line's unset options (None) are left out."""
    if on not in KINDS:
        raise UsageError(f"--on {on}: not a place envctl runs tasks", hint=f"use one of: {', '.join(KINDS)}")
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - set(OPTIONS[on]))
    if extra:
        raise UsageError(f"--{extra[0].replace('_', '-')} does not apply to --on {on}",
                         hint=f"--on {on} takes: {', '.join('--' + k.replace('_', '-') for k in OPTIONS[on]) or 'no options'}")
    try:
        return Target(on, on, read_options(_FleetReader("the command line", given, allowed=tuple(given)), on))
    except SpecError as exc:  # the same checks as a file's, said of the option
        raise UsageError(f"--{exc.key}: {exc.problem}") from None


def select_targets(project: Project, *, on: str | None, options: Mapping[str, Any], names: Sequence[str] = (),
                   all_targets: bool = False) -> list[Target]:
    """The targets a command line names: ``--on KIND`` with its options, ``--target NAME``
    (repeatable) or ``--all-targets`` from fleet.yaml; none for the local engine as ever."""
    given = sorted(k for k, v in options.items() if v is not None)
    if sum((on is not None, bool(names), all_targets)) > 1:
        raise UsageError("--on, --target and --all-targets exclude each other",
                         hint="name the place once: --on slurm --partition P, or targets from fleet.yaml")
    if given and on is None:
        raise UsageError(f"--{given[0].replace('_', '-')} needs --on slurm or --on kubernetes "
                         f"(or a target in fleet.yaml that sets it)")
    if on is not None:
        return [target_from_options(on, options)]
    if not (names or all_targets):
        return []
    fleet = load_fleet(project)
    if all_targets:
        return list(fleet.targets.values())
    return [fleet.target(name) for name in dict.fromkeys(names)]


def read_options(reader: _FleetReader, on: str) -> dict[str, Any]:
    """The executor options of one target: each key checked, then the reader finished (strict)."""
    out: dict[str, Any] = {}
    for key, option in OPTIONS[on].items():
        if key not in reader.data:
            continue
        if key in ("wait",):
            value = reader._take(key, None)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise reader.fail(key, f"expected seconds (a number above 0), got {value!r}")
            out[option] = float(value)
        elif key in ("gpus", "driver_major"):
            value = reader._take(key, None)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise reader.fail(key, f"expected a whole number from 0, got {value!r}")
            out[option] = value
        elif key == "spool":
            out[option] = Path(reader.str(key)).expanduser()
        elif key == "gres":
            out[option] = reader.str(key, pattern=_GRES, what="a GRES such as gpu:1 or gpu:h100:2")
        elif key == "time":
            out[option] = reader.str(key, pattern=_TIME, what="a Slurm time such as 30, 00:20:00 or 1-00:00:00")
        elif on == "slurm":
            out[option] = reader.str(key, pattern=_WORD, what=f"a Slurm {key}")
        else:
            out[option] = reader.str(key)
    reader.finish()
    return out


def executor_for(target: Target):
    """The executor that runs tasks on ``target``."""
    if target.on == "local":
        from envctl.executors import LocalEngine

        return LocalEngine()
    try:
        if target.on == "slurm":
            from envctl.executors.slurm import SlurmExecutor, SlurmOptions

            return SlurmExecutor(SlurmOptions(**target.options))
        from envctl.executors.kubernetes import KubernetesExecutor, KubernetesOptions

        return KubernetesExecutor(KubernetesOptions(**target.options))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("envctl.executors."):
            raise
        raise UsageError(f"target {target.name}: this envctl has no {target.on} executor",
                         hint="upgrade envctl, or run on a local target") from None


class _FleetReader(_Reader):
    """The spec reader (typed keys, paths like targets.h100.gres), with fleet.yaml's own allowed keys."""

    def __init__(self, path: str, data: Any, prefix: str = "", *, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(path, data, prefix)
        self.allowed = allowed

    def _allowed_hint(self) -> str:
        return f"; allowed keys: {', '.join(self.allowed)}" if self.allowed else ""
