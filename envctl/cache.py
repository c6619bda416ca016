"""The content-addressed package cache: every file a lock names, checked by sha256.

Files live under ``<cache>/sha256/<hex>/<filename>``.  A file is fetched once
(from a local path, a find-links folder, or its URL), verified, then renamed into
place; every use verifies it again, so a tampered or truncated file stops the
build with its name.  The folder doubles as a mirror: copy it to another
machine and builds there need no network.

Every use touches the file's ``<hex>`` folder, so its mtime is the file's last use: what
``plan_eviction`` (pure) orders by when a sweep under ``--max-disk`` must give files back.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Set
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from envctl.errors import CacheError
from envctl.fsio import default_root, inside, sha256_of
from envctl.net import ssl_context


def default_mirrors() -> tuple[str, ...]:
    """Local folders of package files to fill the cache from before any download
    (``ENVCTL_MIRRORS``, colon-separated): an ``envctl cache export`` folder, a team's
    wheel share.  A file found there is used only when its sha256 matches the lock."""
    return tuple(p for p in os.environ.get("ENVCTL_MIRRORS", "").split(os.pathsep) if p)


class PackageCache:
    def __init__(self, root: Path | None = None, mirrors: tuple[str, ...] | None = None) -> None:
        self.root = Path(root) if root else default_root()
        self.mirrors = default_mirrors() if mirrors is None else mirrors

    def path_for(self, sha256: str, filename: str) -> Path:
        files = self.root / "sha256"  # a lock's digest and file name never reach outside their folder
        folder = inside(files, files / sha256)
        return inside(folder, folder / filename)

    def get(self, *, url: str, sha256: str, filename: str, mirrors: tuple[str, ...] = ()) -> Path:
        """The verified cached file, fetching it first when absent."""
        if not sha256:
            raise CacheError(f"the lock gives no sha256 for {filename}", hint="re-lock with envctl lock")
        target = self.path_for(sha256, filename)
        if target.exists():
            _used(target)
            if _verified(target, sha256):
                return target
            actual = sha256_of(target)
            if actual != sha256:
                raise CacheError(
                    f"cached file {filename} does not match the lock: sha256 {actual[:16]}... expected "
                    f"{sha256[:16]}... ({target})",
                    hint=f"the cache was altered; delete {target.parent} and build again")
            _remember(target, sha256)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".fetch-", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            # A mirror or find-links folder may hold the same file: used only if its hash matches.
            # Declared mirrors (ENVCTL_MIRRORS, export folders) are linked; find-links folders are
            # copied: a build's output folder rewrites a same-named wheel in place.
            declared = {str(_local(m)) for m in self.mirrors if _local(m) is not None}
            folders = [f for f in (_local(m) for m in (*mirrors, *self.mirrors)) if f is not None]
            for source in [*folders, None]:
                if source is not None:
                    if not (source / filename).is_file():
                        continue
                    if str(source) in declared or (source / "envctl-mirror.json").is_file():
                        _link_or_copy(source / filename, tmp)
                    else:
                        shutil.copyfile(source / filename, tmp)
                    if sha256_of(tmp) == sha256:
                        break
                    tmp.unlink()  # may be a link to the mirror's file: never write through it
                    continue
                self._fetch(url, filename, tmp)
                actual = sha256_of(tmp)
                if actual != sha256:
                    raise CacheError(
                        f"{filename} from {url} has sha256 {actual[:16]}..., the lock says {sha256[:16]}...",
                        hint="the index changed the file: re-lock (envctl lock --upgrade NAME), or import the "
                             "verified file from a mirror (envctl cache import)")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _remember(target, sha256)
        return target

    def disk_bytes(self) -> int:
        """What the cache holds on disk now, every file under its root (a sweep weighs it against
        --max-disk beside the images it holds).  A file hard-linked twice (a build context links
        the cached wheels it sends) is counted once: it is on the disk once."""
        return _bytes(self.root.rglob("*"))

    def entries(self) -> list[CacheEntry]:
        """Every cached file with what evicting it frees and its last use (its folder's mtime,
        touched by ``get``). A file still linked elsewhere (a build context an interrupted build
        left) frees nothing when evicted, so it counts 0."""
        out = []
        for folder in sorted((self.root / "sha256").glob("*")):
            try:
                if folder.is_dir() and not folder.is_symlink():
                    out.append(CacheEntry(folder.name, _bytes(folder.iterdir(), sole=True), folder.stat().st_mtime))
            except OSError:
                continue  # removed while it was walked
        return out

    def evict(self, digest: str) -> None:
        """Remove one cached file (the next ``get`` of it fetches it again)."""
        files = self.root / "sha256"
        shutil.rmtree(inside(files, files / digest), ignore_errors=True)

    def has(self, sha256: str, filename: str) -> bool:
        return self.path_for(sha256, filename).is_file()

    def _fetch(self, url: str, filename: str, dest: Path) -> None:
        local_file = _local(url)
        if local_file is not None:
            if not local_file.is_file():
                raise CacheError(f"{filename}: {local_file} does not exist", hint="restore it or re-lock")
            shutil.copyfile(local_file, dest)
            return
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=60, context=ssl_context()) as resp, dest.open("wb") as fh:
                _copy_steadily(resp, fh)
        except OSError as exc:
            raise CacheError(f"cannot download {filename} from {url}: {exc}",
                             hint="check the network, or import the package cache from a machine that has it") from None


@dataclass(frozen=True)
class CacheEntry:
    """One cached file: its sha256, the bytes of its folder, and its last use (epoch seconds)."""

    digest: str
    bytes: int
    last_used: float


def plan_eviction(entries: Iterable[CacheEntry], *, needed: Set[str], budget: int) -> list[CacheEntry]:
    """The entries to evict so that what stays fits in ``budget`` bytes: least recently used
    first, never one whose digest is ``needed``.  When the needed ones alone exceed the budget,
    every other one is evicted and the rest stays (the caller says by how much it is over)."""
    entries = list(entries)
    total = sum(e.bytes for e in entries)
    out = []
    for entry in sorted((e for e in entries if e.digest not in needed), key=lambda e: (e.last_used, e.digest)):
        if total <= budget:
            break
        out.append(entry)
        total -= entry.bytes
    return out


def _bytes(paths: Iterable[Path], *, sole: bool = False) -> int:
    """The size of the regular files among ``paths``, each file once however many links it has
    (``sole``: only the files with no link elsewhere, what removing ``paths`` frees)."""
    total, seen = 0, set()
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue  # removed while it was walked
        if sole and st.st_nlink > 1:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:  # a symlink is not followed
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _used(path: Path) -> None:
    """Stamp the file's folder with now: its last use, for least-recently-used eviction."""
    try:
        os.utime(path.parent)
    except OSError:  # a read-only cache still works; its files just look unused
        pass


# A download fails when less than STALL_BYTES arrived in STALL_WINDOW seconds: a host that sends
# a byte per read never trips the socket timeout, and a 2 GB wheel may rightly take an hour, so
# the floor is on the rate, not on the whole transfer.
STALL_WINDOW = 60.0
STALL_BYTES = 64 << 10


def _copy_steadily(resp, fh) -> None:
    window_start, window_bytes = time.monotonic(), 0
    while chunk := resp.read1(1 << 20):
        fh.write(chunk)
        window_bytes += len(chunk)
        now = time.monotonic()
        if now - window_start >= STALL_WINDOW:
            if window_bytes < STALL_BYTES:
                raise TimeoutError(f"stalled: {window_bytes} bytes in the last {now - window_start:.0f}s")
            window_start, window_bytes = now, 0


def _link_or_copy(src: Path, dest: Path) -> None:
    """A hard link where the mirror shares the cache's filesystem (no GBs copied), else a copy.

    A linked file shares its inode with the mirror's: a later write to either changes its ctime,
    so the verification memo below hashes it again before it is trusted."""
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


# A file is hashed again whenever anything about it changed since it was last verified:
# its inode, size, mtime or ctime (every write changes ctime, and ctime cannot be set back),
# the test git's index makes of its files.  An untouched GB of CUDA wheels is not re-read.
def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def _verified(path: Path, sha256: str) -> bool:
    memo = path.with_name(f".{path.name}.verified")
    try:
        return memo.read_text() == f"{sha256} {_stamp(path)}"
    except OSError:
        return False


def relinked(path: Path, sha256: str) -> None:
    """Call after hard-linking a verified cached file elsewhere (a build context, a setup's
    find-links): the new link changes its ctime, not its bytes, so its memo is renewed instead
    of every GB being hashed again on the next build."""
    if _verified_but_ctime(path, sha256):
        _remember(path, sha256)


def _verified_but_ctime(path: Path, sha256: str) -> bool:
    memo = path.with_name(f".{path.name}.verified")
    try:
        want = memo.read_text().rsplit(" ", 1)[0]
    except OSError:
        return False
    return want == f"{sha256} {_stamp(path).rsplit(' ', 1)[0]}"


def _remember(path: Path, sha256: str) -> None:
    try:
        memo = path.with_name(f".{path.name}.verified")
        memo.write_text(f"{sha256} {_stamp(path)}")
    except OSError:  # a read-only cache still works; it just hashes every time
        pass


def _local(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(url)
    return None


def export_mirror(cache: PackageCache, files: list[tuple[str, str, str]], dest: Path,
                  mirrors: tuple[str, ...] = ()) -> int:
    """Copy every (url, sha256, filename) into ``dest`` as a flat folder, verified.

    The folder serves as pip find-links and as ``envctl cache import`` input on a machine
    that cannot reach the index (wheels do vanish from indexes; the lock alone is not enough).
    """
    import json

    from envctl.fsio import atomic_write
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheError(f"cannot make the mirror folder {dest}: {exc.strerror}", hint=_WRITE_HINT) from None
    manifest = {}
    for url, sha, filename in files:
        src = cache.get(url=url, sha256=sha, filename=filename, mirrors=mirrors)
        target = inside(dest, dest / filename)
        if not (target.is_file() and sha256_of(target) == sha):
            _copy_in(src, target)  # a new file renamed over the old: a link into a cache is never written through
        manifest[filename] = sha
    try:
        atomic_write(dest / "envctl-mirror.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise CacheError(f"cannot write {dest / 'envctl-mirror.json'}: {exc.strerror}", hint=_WRITE_HINT) from None
    return len(manifest)


_WRITE_HINT = "free space on that disk or name a writable folder; nothing half-written was left"


def _copy_in(src: Path, target: Path) -> None:
    """Copy ``src`` to ``target`` through a temporary file of its own beside it, then rename: a
    full disk leaves no truncated file, and two processes at once never share a temporary name.
    A failure to read ``src`` names ``src``; every other names ``target``, the disk that refused."""
    with src.open("rb") as fh:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise CacheError(f"cannot write {target}: {exc.strerror}", hint=_WRITE_HINT) from None
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a mirror is for every user to read
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(fh, out, 1 << 20)
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise CacheError(f"cannot write {target}: {exc.strerror or exc}", hint=_WRITE_HINT) from None
            raise


def import_mirror(cache: PackageCache, source: Path) -> int:
    """Put every package file of ``source`` into the cache under its own sha256.

    Where the folder carries the manifest ``envctl cache export`` wrote, every file must
    have the hash the manifest gives it: a truncated or swapped copy stops the import,
    named, before anything is stored.
    """
    import json

    from envctl.fsio import read_document
    if not source.is_dir():
        raise CacheError(f"{source} is not a folder", hint="give the folder envctl cache export wrote")
    root = source.resolve()
    manifest: dict[str, str] = {}
    listing = source / "envctl-mirror.json"
    if listing.exists():
        _inside(listing, root)
        try:
            manifest = json.loads(read_document(listing))
            if not isinstance(manifest, dict):
                raise ValueError("not a mapping")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CacheError(f"{listing} is not a mirror manifest ({reason})",
                             hint="export the folder again with envctl cache export") from None
    files = []
    for path in sorted(source.iterdir()):
        if not path.name.endswith((".whl", ".conda", ".tar.bz2")):
            continue
        _inside(path, root)
        if not path.is_file():
            continue
        digest = sha256_of(path)
        claimed = manifest.get(path.name)
        if claimed and claimed != digest:
            raise CacheError(f"{path} has sha256 {digest[:16]}..., the mirror's manifest says {claimed[:16]}...: "
                             f"the copy is damaged; nothing was imported",
                             hint="copy the file again from the machine that exported it")
        files.append((path, digest))
    missing = sorted(set(manifest) - {p.name for p, _ in files})
    if missing:
        raise CacheError(f"{source} lacks {len(missing)} file(s) its manifest lists, e.g. {missing[0]}; "
                         f"nothing was imported", hint="copy the whole folder envctl cache export wrote")
    for path, digest in files:
        target = cache.path_for(digest, path.name)
        if not target.exists():
            _copy_in(path, target)
    return len(files)


def _inside(path: Path, root: Path) -> None:
    """Refuse a link that leaves the mirror folder: an import copies what it reads into the
    cache, and a link named like a wheel must not carry /etc/shadow there."""
    if path.is_symlink() and not path.resolve().is_relative_to(root):
        raise CacheError(f"{path} is a link to {os.readlink(path)}, outside the mirror folder; nothing was imported",
                         hint="copy the real file into the folder, or remove the link")
