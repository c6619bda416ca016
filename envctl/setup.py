"""``envctl setup``: the locked environment in a local prefix, without Docker.

Plan, then apply: ``inspect_prefix`` compares what a prefix holds with the lock
(pure reads), ``setup_prefix`` installs what is missing — conda packages with
py-rattler from the verified cache, then pip packages with ``--no-index
--require-hashes`` — and, with ``repair``, removes what should not be there.

A prefix is envctl's when it holds ``.envctl-prefix`` (written before anything
else) and complete when it holds ``envctl-activate.sh`` (written last, after
the final check): an interrupted setup is never called "up to date", and a
non-empty folder envctl did not make is never mixed into.  "Up to date" means
every installed file still has the hash its package recorded (RECORD for pip,
conda-meta paths for conda), not only the right names and versions.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from envctl.cache import PackageCache
from envctl.errors import EnvctlError, UsageError
from envctl.lock import LockedEnv
from envctl.lockgrammar import inside
from envctl.pipresolve import normalize
from envctl.spec import ImageSpec

# The prefix's pip-installed distributions; those conda installed (INSTALLER: conda) belong
# to the conda set and are compared there.
_LIST_DISTS = ("import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', "
               "d.metadata['Name']).lower(): d.version for d in m.distributions() if d.metadata['Name'] "
               "and (d.read_text('INSTALLER') or '').strip() != 'conda'}))")
PIP_TOOLING = ("pip", "setuptools", "wheel")
MARKER = ".envctl-prefix"
ACTIVATE = "envctl-activate.sh"


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
        data = json.loads(meta.read_text())
        conda[data["name"]] = f"{data['version']}-{data['build']}"
    pip: dict[str, str] = {}
    if python.exists():
        proc = subprocess.run([str(python), "-c", _LIST_DISTS], capture_output=True, text=True)
        if proc.returncode == 0:
            pip = json.loads(proc.stdout)
    want_conda = {p.name: f"{p.version}-{p.build}" for p in lock.conda}
    want_pip = {normalize(p.name): p.version for p in lock.pip}
    # An installer the lock does not name (a conda python's own pip) is not drift.
    pip = {n: v for n, v in pip.items() if n in want_pip or n not in PIP_TOOLING}
    conda_drift, pip_drift = _diff(conda, want_conda), _diff(pip, want_pip)
    conda_drift.damaged = _damaged_conda(prefix)
    pip_drift.damaged = [d for d in _damaged_pip(prefix) if d.split(" ")[0] in want_pip]
    return PrefixState(exists=prefix.exists(), python=python, conda=conda, pip=pip, conda_drift=conda_drift,
                       pip_drift=pip_drift, complete=(prefix / ACTIVATE).is_file())


def _file_sha256(path: Path) -> str | None:
    from envctl.cache import sha256_of

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
        name = normalize(record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0])
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
        try:
            data = json.loads(meta.read_text())
        except ValueError:
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


def check_target(prefix: Path, *, force: bool = False) -> None:
    """Refuse a prefix that is a file, or a non-empty folder envctl did not make (never mix into it,
    unless ``force``: the user says the folder may be installed into)."""
    if prefix.exists() and not prefix.is_dir():
        raise UsageError(f"--prefix {prefix} is a file, not a folder", hint="give a new or empty folder")
    if prefix.is_dir() and not (prefix / MARKER).exists() and not (prefix / ACTIVATE).exists():
        try:
            occupied = next(prefix.iterdir(), None) is not None
        except OSError as exc:
            raise EnvctlError(f"cannot read --prefix {prefix}: {exc.strerror}") from None
        if occupied and not force:
            raise UsageError(f"--prefix {prefix} is a non-empty folder that envctl did not make; not mixing into it",
                             hint="give a new or empty folder (setup makes it), or --force to install into it")


@dataclass
class SetupResult:
    prefix: Path
    changed: bool
    before: PrefixState
    after: PrefixState
    activate: Path


def setup_prefix(spec: ImageSpec, lock: LockedEnv, prefix: Path, *, cache: PackageCache, repair: bool = False,
                 force: bool = False, progress: Callable[[str], None] = lambda _m: None) -> SetupResult:
    check_target(prefix, force=force)
    before = inspect_prefix(prefix, lock)
    activate = prefix / ACTIVATE
    if before.up_to_date:
        return SetupResult(prefix, False, before, before, activate)
    # An interrupted setup (marker, no activation file) is finished by the next one.
    resumed = (prefix / MARKER).exists() and not before.complete
    fresh = not before.exists or (not before.conda and not before.pip)
    if not fresh and not repair and not resumed:
        drift = "; ".join(f"{kind}: {d.describe()}" for kind, d in
                          (("conda", before.conda_drift), ("pip", before.pip_drift)) if not d.clean)
        raise EnvctlError(f"{prefix} has drifted from the lock of {spec.name}: {drift}",
                          hint=f"run: envctl setup {spec.name} --prefix {prefix} --repair")
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / MARKER).write_text(f"made by envctl setup for {spec.name}\n")
        activate.unlink(missing_ok=True)  # complete again only when this setup finishes
    except OSError as exc:
        raise EnvctlError(f"cannot write the prefix {prefix}: {exc.strerror}",
                          hint="give a --prefix on a writable disk") from None
    if lock.conda and not before.conda_drift.clean:
        progress(f"installing {len(lock.conda)} conda packages with py-rattler")
        for damaged in before.conda_drift.damaged:  # forget it, so rattler links it afresh
            for meta in (prefix / "conda-meta").glob(f"{damaged.split(' ')[0]}-*.json"):
                meta.unlink()
        _install_conda(lock, prefix, cache, remove=[n.split("==")[0] for n in before.conda_drift.extra])
    if lock.pip:
        if not (prefix / "bin" / "python").exists():
            _make_venv(spec, prefix)
        state = inspect_prefix(prefix, lock)
        if not state.pip_drift.clean:
            progress(f"installing pip packages: {state.pip_drift.describe()}")
            _install_pip(spec, lock, prefix, cache, extra=[n.split("==")[0] for n in state.pip_drift.extra]
                         + [d.split(" ")[0] for d in state.pip_drift.damaged])
    after = inspect_prefix(prefix, lock)
    if not (after.conda_drift.clean and after.pip_drift.clean):
        raise EnvctlError(f"{prefix} still differs from the lock after setup: pip {after.pip_drift.describe()}; "
                          f"conda {after.conda_drift.describe()}", hint="remove the prefix and run setup again")
    # The last step: only now is the prefix complete (an interrupted setup never gets here).
    from envctl.lock import atomic_write

    atomic_write(activate, activation_script(spec.name, prefix, venv=(prefix / "pyvenv.cfg").exists()))
    after.complete = True
    return SetupResult(prefix, True, before, after, activate)


def activation_script(name: str, prefix: Path, *, venv: bool) -> str:
    """A POSIX-shell script to source: PATH once however often it is sourced, VIRTUAL_ENV for a
    venv and CONDA_PREFIX for a conda prefix (tools read them to find the environment), and a
    ``deactivate`` function that puts back what it changed."""
    var = "VIRTUAL_ENV" if venv else "CONDA_PREFIX"
    return f"""# source this file to use the {name} environment (made by envctl setup); `deactivate` undoes it
if [ "${{_ENVCTL_PREFIX-}}" != "{prefix}" ]; then
    # Another environment (envctl's or a venv's) is active: leave it first, as venv's activate does.
    if command -v deactivate >/dev/null 2>&1; then deactivate; fi
    _ENVCTL_PREFIX="{prefix}"
    _ENVCTL_OLD_PATH="$PATH"
    _ENVCTL_OLD_{var}="${{{var}-}}"
    _ENVCTL_HAD_{var}="${{{var}+1}}"
    deactivate() {{
        export PATH="$_ENVCTL_OLD_PATH"
        if [ -n "$_ENVCTL_HAD_{var}" ]; then export {var}="$_ENVCTL_OLD_{var}"; else unset {var}; fi
        unset _ENVCTL_PREFIX _ENVCTL_OLD_PATH _ENVCTL_OLD_{var} _ENVCTL_HAD_{var}
        unset -f deactivate
        hash -r 2>/dev/null || true
    }}
fi
case ":$PATH:" in
    *":{prefix}/bin:"*) ;;
    *) export PATH="{prefix}/bin:$PATH" ;;
esac
export {var}="{prefix}"
hash -r 2>/dev/null || true
"""


def _make_venv(spec: ImageSpec, prefix: Path) -> None:
    """A venv on the host's Python of the spec's version (python_source: base)."""
    exe = shutil.which(f"python{spec.python}")
    if exe is None and f"{sys.version_info[0]}.{sys.version_info[1]}" == spec.python:
        exe = sys.executable
    if exe is None:
        raise EnvctlError(f"{spec.name} needs Python {spec.python} on this machine (python{spec.python} not found)",
                          hint=f"install Python {spec.python}, or use an image spec whose python comes from conda")
    proc = subprocess.run([exe, "-m", "venv", "--without-pip", str(prefix)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvctlError(f"cannot make a venv at {prefix}: {proc.stderr.strip().splitlines()[-1]}")


def _install_pip(spec: ImageSpec, lock: LockedEnv, prefix: Path, cache: PackageCache, *, extra: list[str]) -> None:
    from envctl.build import requirements_txt

    python = str(prefix / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="envctl-setup-") as tmp:
        links = Path(tmp)
        mirrors = tuple(spec.pip_index.find_links)
        linked = []
        for p in lock.pip:
            src = cache.get(url=p.url, sha256=p.sha256, filename=p.filename, mirrors=mirrors)
            link = inside(links, links / p.filename)
            try:
                link.hardlink_to(src)
                linked.append((src, p.sha256))
            except OSError:
                shutil.copyfile(src, link)
        (links / "requirements.txt").write_text(requirements_txt(lock))
        pip_wheel = next((links / p.filename for p in lock.pip if p.name == "pip"), None)
        pip_cmd = [python, f"{pip_wheel}/pip"] if pip_wheel else [python, "-m", "pip"]
        if extra:
            subprocess.run(pip_cmd + ["uninstall", "-y", "-q", *extra], capture_output=True, text=True)
        proc = subprocess.run(pip_cmd + ["install", "--no-index", "--no-deps", "--require-hashes", "-q",
                                         "--disable-pip-version-check", "-r", str(links / "requirements.txt"),
                                         "--find-links", str(links)], capture_output=True, text=True)
    from envctl.cache import relinked

    for src, sha in linked:  # the temporary links came and went: the cached bytes did not change
        relinked(src, sha)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise EnvctlError(f"pip install into {prefix} failed: {tail}", hint="run with a fresh --prefix")


def _install_conda(lock: LockedEnv, prefix: Path, cache: PackageCache, *, remove: list[str]) -> None:
    from envctl.condasolve import settle_rattler_at_exit

    files = [(p, cache.get(url=p.url, sha256=p.sha256, filename=p.filename)) for p in lock.conda]
    settle_rattler_at_exit()
    asyncio.run(_rattler_install(files, prefix, cache.root / "rattler"))


async def _rattler_install(files, prefix: Path, cache_dir: Path) -> None:
    import rattler
    from rattler import RepoDataRecord

    records = []
    for pkg, path in files:
        rec = await RepoDataRecord.from_package_archive(path)
        rec.md5 = bytes.fromhex(pkg.md5) if pkg.md5 else None
        rec.channel = pkg.url.rsplit("/", 2)[0] + "/"
        records.append(rec)
    # What the prefix already holds, so rattler removes what the lock no longer names (repair).
    installed = [rattler.PrefixRecord.from_path(p) for p in sorted((prefix / "conda-meta").glob("*.json"))]
    await rattler.install(records, target_prefix=prefix, cache_dir=cache_dir, installed_packages=installed,
                          show_progress=False)
