"""Files, the lowest layer: atomic writes, documents read from regular files only, paths that
must stay inside their root, envctl's cache folder and file digests.

Everything in envctl may import this module; it imports nothing of envctl but the errors.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

from envctl.errors import EnvctlError, LockfileError


def default_root() -> Path:
    """envctl's cache folder: ``$ENVCTL_CACHE``, else the user's cache dir."""
    env = os.environ.get("ENVCTL_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("envctl"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: a failure loses nothing.

    Only a regular file (or nothing) is replaced.  A character device or a FIFO (/dev/null,
    /dev/stdout, a pipe a script reads) is written to directly: renaming over it would put a
    plain file where the system's device was.  A folder, a socket or a block device is refused."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise EnvctlError(f"cannot write {path}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            return _write_through(path, text)
        kind = "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else \
            "a block device" if stat.S_ISBLK(mode) else "not a regular file"
        raise EnvctlError(f"{path} is {kind}; not writing there", hint="give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise EnvctlError(f"cannot write {path}: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a lockfile is for everyone to read
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_through(path: Path, text: str | bytes) -> None:
    """Every byte to a device or FIFO as it is; a refused write (ENOSPC from /dev/full) is one line."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        with open(path, "wb", buffering=0) as fh:  # unbuffered: the error comes from write, not a late close
            view = memoryview(data)
            while view:
                view = view[fh.write(view):]
    except OSError as exc:
        raise EnvctlError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="check that device or pipe, or write to a file instead") from None


class NotADocument(OSError):
    """A path envctl reads a document from names a FIFO, a device, a socket or a folder."""


def read_document(path: Path) -> str:
    """The UTF-8 text of a document envctl reads (a spec, the release matrix, a mirror manifest,
    a probe JSON file), from a regular file only: opening a FIFO waits for a writer that may never
    come, and a device never ends.  Opened without blocking and then checked, so nothing can be
    swapped in between.  Raises OSError (NotADocument for the wrong kind of file), and
    UnicodeDecodeError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device")
            raise NotADocument(0, f"is {kind}, not a regular file", str(path))
        os.set_blocking(fd, True)
        return fh.read().decode("utf-8")


def inside(root: Path, path: Path) -> Path:
    """``path`` when it stays inside ``root`` once both are resolved (links and '..' followed);
    otherwise a LockfileError: nothing derived from a lock is written anywhere else."""
    resolved, base = path.resolve(), root.resolve()
    if resolved == base or not resolved.is_relative_to(base):
        raise LockfileError(f"refusing to write {path}: it is outside {root}",
                            hint="the lock names a file that is not a plain package file name; regenerate it")
    return path
