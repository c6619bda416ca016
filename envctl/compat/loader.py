"""The libtorch runtime's C++ loader: compiled once per image (or interpreter) against that
environment's own torch, inside it, and cached on the host by image id and source hash."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from envctl import children
from envctl.compat.targets import Target
from envctl.errors import ProbeError

PROBES = Path(__file__).resolve().parent.parent / "probes"
SOURCE = PROBES / "compat_loader.cpp"
BINARY = "compat_loader"
BUILD_LIMITS = {"mem_limit": "4g", "nano_cpus": 2_000_000_000, "pids_limit": 512}
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Loader:
    folder: Path  # holds compat_loader; mounted read-only at /opt/envctl-loader in images
    built: bool  # compiled by this call (False: found in the cache)
    seconds: float | None


def cache_root() -> Path:
    from envctl.fsio import default_root
    return default_root() / "compat-loader"


def _key(target: Target) -> str:
    source = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    if target.kind == "image":
        return f"{target.ref.split(':')[-1][:16]}-{source}"
    try:  # the installed torch's version, read without importing torch
        version = subprocess.run([target.ref, "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    where = hashlib.sha256(f"{os.path.realpath(target.ref)}|{version}".encode()).hexdigest()[:16]
    return f"py-{where}-{source}"


def ensure_loader(target: Target, *, engine=None) -> Loader:
    """The cached loader of ``target``, compiled first when there is none (about a minute)."""
    folder = cache_root() / _key(target)
    if (folder / BINARY).is_file():
        return Loader(folder, False, None)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
        tmp.chmod(0o777)  # the sandboxed build runs as nobody
    except OSError as exc:
        raise ProbeError(f"cannot write the loader cache {folder.parent}: {exc.strerror}",
                         hint="set ENVCTL_CACHE to a writable folder") from None
    start = time.monotonic()
    try:
        if target.kind == "image":
            result = engine.run(
                target.ref, ["python", "/opt/envctl-probe/compat_runner.py", "--build-loader",
                             f"/opt/envctl-probe/{SOURCE.name}", f"/out/{BINARY}"],
                mounts=[(str(PROBES), "/opt/envctl-probe", True), (str(tmp), "/out", False)],
                network="none", timeout=BUILD_TIMEOUT, sandbox=True, **BUILD_LIMITS)
            stdout, code, timed_out = result.stdout, result.exit_code, result.timed_out
        else:
            try:
                # a group of its own: on a timeout or an interrupt its g++ is killed with it
                proc = children.run([target.ref, str(PROBES / "compat_runner.py"), "--build-loader", str(SOURCE),
                                     str(tmp / BINARY)], timeout=BUILD_TIMEOUT, group=True, text=True)
                stdout, code, timed_out = proc.stdout, proc.returncode, False
            except subprocess.TimeoutExpired:
                stdout, code, timed_out = "", None, True
        if timed_out or code != 0 or not (tmp / BINARY).is_file():
            why = f"no answer within {BUILD_TIMEOUT:.0f}s" if timed_out else _why(stdout, code)
            raise ProbeError(f"cannot build the libtorch loader in {target.label}: {why}",
                             hint="the environment needs g++ and a torch wheel with its headers (torch/include)")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / BINARY).is_file():  # else a parallel build placed it first: the same source
                raise
        folder.chmod(0o755)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Loader(folder, True, round(time.monotonic() - start, 1))


def _why(stdout: str, code: int | None) -> str:
    """The build's error from the runner's JSON line, else its last line."""
    import json

    last = (stdout.strip().splitlines() or [f"exit {code}"])[-1]
    try:
        return str(json.loads(last).get("error") or last)[:700]
    except (ValueError, AttributeError):
        return last[:700]
