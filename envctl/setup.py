"""``envctl setup``: the locked environment in a local prefix, without Docker.

Plan, then apply: ``inspect_prefix`` (envctl.prefixstate) compares what a prefix
holds with the lock, ``setup_prefix`` installs what is missing — conda packages with
py-rattler from the verified cache, then pip packages with ``--no-index
--require-hashes`` — and, with ``repair``, removes what should not be there.

A prefix is envctl's when it holds ``.envctl-prefix`` (written before anything
else) and complete when it holds ``envctl-activate.sh`` (written last, after
the final check): an interrupted setup is never called "up to date", and a
non-empty folder envctl did not make is never mixed into.  A setup that fails
removes the prefix it made; pip runs with the host's pip configuration left out,
and every child process under a deadline.

The workflow ``envctl setup`` calls: ``plan_setup`` (the spec, its current lock,
the prefix) then ``run_setup`` (``setup_prefix``, then the smoke probe in the
prefix's python through the host executor) returns a ``SetupRun``, which the CLI
renders and then records.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from envctl.activate import activation_script
from envctl.cache import PackageCache
from envctl.catalog import Project
from envctl.errors import EnvctlError, UsageError
from envctl.lock import LockedEnv
from envctl.fsio import inside
from envctl.lock.pins import isolated_pip_env, normalize
from envctl.prefixstate import ACTIVATE, MARKER, PrefixState, conda_meta, dist_name, inspect_prefix, run_step
from envctl.smoke import SmokeRun
from envctl.spec import ImageSpec

# A step of the workflow: opened with its title, it yields the callback for the step's progress
# (the CLI's spinner, or status lines when stderr is no terminal).
Stage = Callable[[str], AbstractContextManager[Callable[[str], None]]]


def check_target(prefix: Path, *, force: bool = False) -> None:
    """Refuse a prefix that is a file, or a non-empty folder envctl did not make (never mix into it,
    unless ``force``: the user says the folder may be installed into)."""
    if prefix.exists() and not prefix.is_dir():
        raise UsageError(f"--prefix {prefix} is a file, not a folder", hint="give a new or empty folder")
    if ":" in str(prefix):  # any other character is quoted in the activation script
        raise UsageError(f"--prefix {prefix} holds a ':', which separates PATH's entries: its bin could never "
                         f"be on PATH", hint="give a folder whose path has no ':'")
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
    # A failed setup leaves no half-made prefix: the folders it made go, a folder it found empty is
    # emptied again, and one it was repairing (or resuming) stays incomplete and the error says so.
    # An interrupt (Ctrl-C, SIGTERM) is no failure: the next setup finishes what it started.
    made = None
    if not prefix.exists():
        made = prefix
        while not made.parent.exists():
            made = made.parent
    was_empty = made is None and not any(prefix.iterdir())
    try:
        after = _apply(spec, lock, prefix, before, cache=cache, progress=progress)
    except Exception as exc:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        elif was_empty:
            for child in list(prefix.iterdir()):
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        elif isinstance(exc, EnvctlError) and not activate.exists():
            exc.message += f" ({prefix} is left incomplete, without {ACTIVATE}, until a setup succeeds)"
        raise
    return SetupResult(prefix, True, before, after, activate)


def prefix_root() -> Path:
    """Where setup makes a prefix by default: a folder per image under the user's data dir."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("envctl")) / "envs"


@dataclass(frozen=True)
class SetupPlan:
    """What a setup will do, settled before anything is written."""

    spec: ImageSpec
    lock: LockedEnv
    prefix: Path  # absolute
    repair: bool = False
    force: bool = False
    probe: bool = True


@dataclass
class SetupRun:
    """A finished setup: what changed in the prefix and, when the probe ran, its run."""

    plan: SetupPlan
    result: SetupResult
    smoke: SmokeRun | None
    started: float

    @property
    def ok(self) -> bool:
        return self.smoke is None or self.smoke.ok

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        return {"image": self.plan.spec.name, "prefix": str(r.prefix), "changed": r.changed,
                "activate": str(r.activate), "probe_ok": None if self.smoke is None else self.smoke.ok,
                "drift_before": {"pip": r.before.pip_drift.describe(), "conda": r.before.conda_drift.describe()}}

    def record(self) -> int | None:
        """Add a setup that changed the prefix to the records (after it was shown: a database that
        refuses the record must not hide the report); nothing for a prefix already up to date."""
        from envctl.records import record_run

        if not self.result.changed:
            return None
        plan, report = self.plan, self.smoke.report if self.smoke is not None else None
        return record_run(kind="setup", image=plan.spec.name, ok=self.ok, image_id=str(plan.prefix),
                          spec_hash=plan.spec.content_hash(), lock_hash=plan.lock.lock_hash, started=self.started,
                          duration_s=time.time() - self.started, summary="repaired" if plan.repair else "created",
                          document=report.document if report is not None else None)


def plan_setup(project: Project | None, name: str, *, prefix: str | None = None, repair: bool = False,
               force: bool = False, probe: bool = True) -> SetupPlan:
    """The spec, its current lock and the prefix (default: ``prefix_root()/NAME``); ``project``
    found when None, after the prefix given was checked."""
    from envctl.catalog import find_project
    from envctl.lock import require_current_lock

    if prefix is not None and not prefix.strip():
        raise UsageError("--prefix is empty: it would name the current folder",
                         hint="give the folder to make, e.g. --prefix ~/envs/NAME")
    project = project or find_project()
    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    where = Path(prefix) if prefix is not None else prefix_root() / spec.name
    return SetupPlan(spec, lock, where.expanduser().resolve(), repair, force, probe)


@contextmanager
def _quiet(_title: str) -> Iterator[Callable[[str], None]]:
    yield lambda _m: None


def run_setup(plan: SetupPlan, *, cache: PackageCache | None = None, stage: Stage = _quiet,
              say: Callable[[str], None] = lambda _m: None) -> SetupRun:
    """Make or repair the prefix, then (when it changed and holds torch) run the smoke probe in its
    python on this host: quick, or only its checks after a repair.  ``stage`` opens each step,
    ``say`` tells what the probe will run."""
    from envctl.executors import HostExecutor
    from envctl.probe import probe_config
    from envctl.smoke import SmokePlan, run_smoke

    spec, lock, prefix = plan.spec, plan.lock, plan.prefix
    started = time.time()
    with stage(f"setting up {spec.name} in {prefix}") as progress:
        result = setup_prefix(spec, lock, prefix, cache=cache or PackageCache(), repair=plan.repair,
                              force=plan.force, progress=progress)
    smoke = None
    if plan.probe and result.changed and any(p.name == "torch" for p in lock.pip):
        # A repair fixed a few packages: the probe's checks (versions, drift, compile) say whether the
        # prefix works again; the benchmarks would only repeat what the first setup measured.
        python = str(prefix / "bin" / "python")
        what = "the probe's checks (no benchmarks)" if plan.repair else "the quick smoke probe"
        full = f"; the full probe: envctl smoke --python {python}" if plan.repair else ""
        say(f"running {what} in {prefix}{full}")
        probe = SmokePlan(python, "the prefix's python", spec, lock, "quick", "all", plan.repair,
                          probe_config(spec, lock, gpus="all", level="quick"), HostExecutor())
        with stage(f"probing {python}") as progress:
            smoke = run_smoke(probe, progress=progress)
    return SetupRun(plan, result, smoke, started)


def _apply(spec: ImageSpec, lock: LockedEnv, prefix: Path, before: PrefixState, *, cache: PackageCache,
           progress: Callable[[str], None]) -> PrefixState:
    """Install what ``before`` lacks, check the result, then write the activation file (the last step)."""
    activate = prefix / ACTIVATE
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / MARKER).write_text(f"made by envctl setup for {spec.name}\n")
        activate.unlink(missing_ok=True)  # complete again only when this setup finishes
    except OSError as exc:
        raise EnvctlError(f"cannot write the prefix {prefix}: {exc.strerror}",
                          hint="give a --prefix on a writable disk") from None
    if not before.conda_drift.clean:
        damaged = {d.split(" ")[0] for d in before.conda_drift.damaged}
        for meta in sorted((prefix / "conda-meta").glob("*.json")):
            data = conda_meta(meta)  # forget a damaged package, so rattler links it afresh; and a
            if data is None or data["name"] in damaged:  # record no one can read, rattler included
                meta.unlink()
        if lock.conda:
            progress(f"installing {len(lock.conda)} conda packages with py-rattler")
            _install_conda(lock, prefix, cache)
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
    from envctl.fsio import atomic_write
    atomic_write(activate, activation_script(spec.name, prefix, venv=(prefix / "pyvenv.cfg").exists()))
    after.complete = True
    return after


def _make_venv(spec: ImageSpec, prefix: Path) -> None:
    """A venv on the host's Python of the spec's version (python_source: base)."""
    exe = shutil.which(f"python{spec.python}")
    if exe is None and f"{sys.version_info[0]}.{sys.version_info[1]}" == spec.python:
        exe = sys.executable
    if exe is None:
        raise EnvctlError(f"{spec.name} needs Python {spec.python} on this machine (python{spec.python} not found)",
                          hint=f"install Python {spec.python}, or use an image spec whose python comes from conda")
    proc = run_step([exe, "-m", "venv", "--without-pip", str(prefix)], kind="venv", shown=f"{exe} -m venv {prefix}",
                    hint=f"check that {exe} makes venvs (python{spec.python} -m venv DIR)")
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
        # -I as for the listing: pip sees (and uninstalls from) the prefix only.
        pip_cmd = [python, "-I", f"{pip_wheel}/pip"] if pip_wheel else [python, "-I", "-m", "pip"]
        # The host's pip.conf, PIP_CONSTRAINT or PIP_INDEX_URL must not change what the lock installs.
        env = isolated_pip_env()
        again = f"remove {prefix} if setup made it before, and run setup again"
        if extra:
            run_step(pip_cmd + ["uninstall", "-y", "-q", *extra], kind="pip", shown=f"pip uninstall in {prefix}",
                     hint=again, env=env)
            _forget(prefix, extra)
        proc = run_step(pip_cmd + ["install", "--no-index", "--no-deps", "--require-hashes", "-q",
                                   "--disable-pip-version-check", "-r", str(links / "requirements.txt"),
                                   "--find-links", str(links)], kind="pip", shown=f"pip install into {prefix}",
                        hint=again, env=env)
    from envctl.cache import relinked

    for src, sha in linked:  # the temporary links came and went: the cached bytes did not change
        relinked(src, sha)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise EnvctlError(f"pip install into {prefix} failed: {tail}", hint=again)


def _forget(prefix: Path, names: list[str]) -> None:
    """Remove the .dist-info folder of each of ``names`` that pip left installed: one whose RECORD
    lists no files ("No files were found to uninstall") would otherwise be extra after every repair."""
    wanted = {normalize(n) for n in names}
    for info in sorted(prefix.glob("lib/python*/site-packages/*.dist-info")):
        if dist_name(info) in wanted:
            shutil.rmtree(info)


def _install_conda(lock: LockedEnv, prefix: Path, cache: PackageCache) -> None:
    from envctl.lock.conda import settle_rattler_at_exit

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
    installed = []
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            installed.append(rattler.PrefixRecord.from_path(meta))
        except Exception as exc:  # noqa: BLE001 - rattler's own IoError: valid JSON, not a full record
            raise EnvctlError(f"cannot read {meta}: {exc}",
                              hint=f"remove {meta}, then setup --repair links that package afresh") from None
    await rattler.install(records, target_prefix=prefix, cache_dir=cache_dir, installed_packages=installed,
                          show_progress=False)
