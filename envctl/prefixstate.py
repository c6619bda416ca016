"""A prefix against its lock: what it holds, and the deadline every process of a setup runs under.

Pure reads, apart from asking the prefix's python what pip installed: the conda packages
(``conda-meta``), the pip distributions, and every installed file's sha256 against what its
package recorded (RECORD for pip, conda-meta paths for conda), so "up to date" means the bytes
too, not only names and versions.  What the prefix holds is the user's disk, not envctl's data:
a record that cannot be read is named as damaged, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from envctl import children
from envctl.errors import EnvctlError, UsageError
from envctl.lock import LockedEnv
from envctl.lock.pins import normalize

# The prefix's pip-installed distributions; those conda installed (INSTALLER: conda) belong
# to the conda set and are compared there.
_LIST_DISTS = ("import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', "
               "d.metadata['Name']).lower(): d.version for d in m.distributions() if d.metadata['Name'] "
               "and (d.read_text('INSTALLER') or '').strip() != 'conda'}))")
PIP_TOOLING = ("pip", "setuptools", "wheel")
MARKER = ".envctl-prefix"
ACTIVATE = "envctl-activate.sh"
# Seconds each child process of a setup may run (ENVCTL_SETUP_TIMEOUT sets one limit for all): the
# prefix's python lists what it holds in a second; pip unpacks GBs of CUDA wheels in minutes.
DEADLINES = {"query": 60, "venv": 300, "pip": 3600}


@dataclass
class Drift:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # "name (first changed file)"

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different or self.damaged)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.different:
            parts.append("different " + ", ".join(self.different))
        if self.extra:
            parts.append("extra " + ", ".join(self.extra))
        if self.damaged:
            parts.append("damaged " + ", ".join(self.damaged))
        return "; ".join(parts) or "none"


@dataclass
class PrefixState:
    exists: bool
    python: Path
    conda: dict[str, str]  # name -> version-build
    pip: dict[str, str]
    conda_drift: Drift
    pip_drift: Drift
    complete: bool = True  # the last step of a setup (the activation file) was done

    @property
    def up_to_date(self) -> bool:
        return self.exists and self.complete and self.conda_drift.clean and self.pip_drift.clean


def _diff(have: dict[str, str], want: dict[str, str]) -> Drift:
    return Drift(
        missing=sorted(f"{n}=={v}" for n, v in want.items() if n not in have),
        extra=sorted(f"{n}=={v}" for n, v in have.items() if n not in want),
        different=sorted(f"{n} {have[n]} (lock: {v})" for n, v in want.items() if n in have and have[n] != v))


def inspect_prefix(prefix: Path, lock: LockedEnv) -> PrefixState:
    python = prefix / "bin" / "python"
    conda: dict[str, str] = {}
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        data = conda_meta(meta)  # an unreadable one is named as damaged below
        if data is not None:
            conda[data["name"]] = f"{data['version']}-{data['build']}"
    pip = _pip_dists(python) if python.exists() else {}
    want_conda = {p.name: f"{p.version}-{p.build}" for p in lock.conda}
    want_pip = {normalize(p.name): p.version for p in lock.pip}
    # An installer the lock does not name (a conda python's own pip) is not drift.
    pip = {n: v for n, v in pip.items() if n in want_pip or n not in PIP_TOOLING}
    conda_drift, pip_drift = _diff(conda, want_conda), _diff(pip, want_pip)
    conda_drift.damaged = _damaged_conda(prefix)
    pip_drift.damaged = [d for d in _damaged_pip(prefix) if d.split(" ")[0] in want_pip]
    return PrefixState(exists=prefix.exists(), python=python, conda=conda, pip=pip, conda_drift=conda_drift,
                       pip_drift=pip_drift, complete=(prefix / ACTIVATE).is_file())


def _pip_dists(python: Path) -> dict[str, str]:
    """What the prefix's python says pip installed: name -> version.  {} where it exits non-zero
    (a conda python damaged on disk answers again once the conda step has relinked it)."""
    # -I: the prefix alone, not PYTHONPATH or the user's ~/.local (a conda python reads it), whose
    # packages would be "extra" here and uninstalled by a repair.
    proc = run_step([str(python), "-I", "-c", _LIST_DISTS], kind="query",
                    shown=f"{python} (listing its distributions)",
                    hint=f"is {python} a working Python? remove {python.parent.parent} and run setup again")
    if proc.returncode != 0:
        return {}
    lines = proc.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else None  # the last line: a .pth file may print before it
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise EnvctlError(f"{python} answered the listing of its distributions with {proc.stdout[:80]!r}, "
                          f"not a JSON object of names and versions",
                          hint=f"is {python} a Python? remove {python.parent.parent} and run setup again")
    return found


def conda_meta(path: Path) -> dict | None:
    """A conda-meta record, or None where the file is not one (garbage, cut short, wrong shape)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("name", "version", "build")):
        return None
    paths = data.get("paths_data") or {}
    entries = paths.get("paths", []) if isinstance(paths, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("_path"), str)
                                                for e in entries):
        return None
    return data


def dist_name(info: Path) -> str:
    """The normalized name a ``NAME-VERSION.dist-info`` folder is for."""
    return normalize(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])


def _file_sha256(path: Path) -> str | None:
    from envctl.fsio import sha256_of
    try:
        return sha256_of(path) if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _damaged_pip(prefix: Path) -> list[str]:
    """pip distributions with a file whose sha256 differs from (or is missing against) its RECORD."""
    import base64
    import csv

    out = []
    for record in sorted(prefix.glob("lib/python*/site-packages/*.dist-info/RECORD")):
        site = record.parent.parent
        name = dist_name(record.parent)
        try:
            rows = list(csv.reader(record.read_text(encoding="utf-8", errors="replace").splitlines()))
        except csv.Error:
            out.append(f"{name} (unreadable RECORD)")
            continue
        for row in rows:
            # .pyc files are caches the interpreter rewrites (some wheels ship them): not content.
            if len(row) < 2 or not row[1].startswith("sha256=") or row[0].endswith(".pyc"):
                continue
            digest = _file_sha256(site / row[0])
            want = row[1][len("sha256="):]
            if digest is None or base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode() != want:
                out.append(f"{name} ({row[0]})")
                break
    return out


def _damaged_conda(prefix: Path) -> list[str]:
    """conda packages with a file whose sha256 differs from what conda-meta recorded for it."""
    out = []
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        data = conda_meta(meta)
        if data is None:
            out.append(f"{meta.stem} (unreadable {meta.name})")
            continue
        for entry in (data.get("paths_data") or {}).get("paths", []):
            want = entry.get("sha256_in_prefix") or entry.get("sha256")
            if not want or entry.get("path_type", "hardlink") not in ("hardlink", "copy"):
                continue
            if _file_sha256(prefix / entry["_path"]) != want:
                out.append(f"{data['name']} ({entry['_path']})")
                break
    return out


def run_step(cmd: list[str], *, kind: str, shown: str, hint: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``cmd`` under its deadline (DEADLINES[kind]); past it, one error line naming the command."""
    limit: float = DEADLINES[kind]
    raw = os.environ.get("ENVCTL_SETUP_TIMEOUT")
    if raw is not None:
        try:
            limit = float(raw)
        except ValueError:
            limit = 0
        if not 0 < limit < float("inf"):
            raise UsageError(f"ENVCTL_SETUP_TIMEOUT={raw!r} is not a number of seconds",
                             hint="give seconds (e.g. 600), or unset it for the defaults")
    try:  # bytes a broken interpreter prints are replaced, never a UnicodeDecodeError
        return children.run(cmd, timeout=limit, text=True, errors="replace", env=env)
    except subprocess.TimeoutExpired:  # killed: the step ends before envctl goes on
        raise EnvctlError(f"{shown} ran past {limit:g}s and was stopped",
                          hint=f"{hint} (ENVCTL_SETUP_TIMEOUT=SECONDS allows each step longer)") from None
    except OSError as exc:
        raise EnvctlError(f"cannot run {shown}: {exc.strerror}", hint=hint) from None
