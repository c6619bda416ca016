"""The artifact registry: TorchScript (.pt), torch.export (.pt2) and AOTInductor package (.pt2)
files, stored by content hash.

What a file is and which versions it carries are read from the zip archive (envctl.archive)
itself, never by loading it (loading is what ``envctl compat`` tests, in a
sandbox).  Sample inputs and the reference outputs they produced are stored
beside each artifact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from envctl.archive import ArchiveInfo, check_regular, check_tensor_file, inspect_archive
from envctl.fsio import sha256_of
from envctl.errors import ArtifactError, DamagedRecordsError, RecordsError
from envctl.records import Records

@dataclass(frozen=True)
class Artifact:
    sha256: str
    name: str
    kind: str
    size: int
    info: dict
    added: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Removal:
    """What ``remove`` did: the registration and this many compat results went; the folder too
    unless ``files_left``."""

    artifact: Artifact
    compat_results: int
    folder: str
    files_left: bool

    def to_dict(self) -> dict:
        return {"removed": self.artifact.to_dict(), "compat_results": self.compat_results, "folder": self.folder,
                "files_left": self.files_left}


def default_root() -> Path:
    env = os.environ.get("ENVCTL_ARTIFACTS")
    if env:
        return Path(env).expanduser()
    from envctl.records import default_path

    return default_path().parent / "artifacts"


class Registry:
    def __init__(self, records: Records, root: Path | None = None) -> None:
        self.records = records
        self.root = Path(root) if root else default_root()

    def folder(self, sha256: str) -> Path:
        return self.root / sha256

    def add(self, path: Path, *, name: str | None = None, inputs: Path | None = None,
            outputs: Path | None = None, saved_with: str | None = None,
            reference: Callable[[Path, str, str], Path] | None = None,
            replace: bool = False) -> tuple[Artifact, str]:
        """Register ``path``; (artifact, what happened: added | unchanged | replaced).

        The same content twice is a no-op.  ``replace``: the artifact of that name (if any) gives way
        to this file, inputs and outputs, and its compat results go (they were about the old files).

        All or nothing: the files (and the reference outputs ``reference(folder, kind, file)``
        computes) go to a private temporary folder, which is renamed into the store, and only
        then is the registration written; parallel adds of one file end in one registration.
        A replace that fails anywhere leaves the old artifact as it was.
        """
        for what, given in (("artifact", path), ("--inputs", inputs), ("--outputs", outputs)):
            if given is not None:
                check_regular(what, given)
        info = inspect_archive(path)
        for what, given in (("--inputs", inputs), ("--outputs", outputs)):
            if given is not None:
                check_tensor_file(what, given)
        sha = sha256_of(path)
        name = name or path.stem
        existing, named = self.get(sha), self.by_name(name)
        if replace and existing is not None and existing.name != name:
            raise ArtifactError(f"{path} is registered as {existing.name!r}, so it cannot replace {name!r}",
                                hint=f"envctl artifacts add --replace {path} --name {existing.name} replaces "
                                     f"that one's inputs and outputs")
        if replace and named is not None:
            return self._replace(named, path, sha, info, inputs=inputs, outputs=outputs, saved_with=saved_with,
                                 reference=reference), "replaced"
        if existing:
            return existing, "unchanged"
        if named is not None and named.sha256 == sha:  # a parallel add of this file registered it meanwhile
            return named, "unchanged"
        if named is not None:
            raise ArtifactError(f"an artifact named {name!r} exists with other content",
                                hint="pass --name to register this file under another name, or --replace to "
                                     "replace it")
        tmp, meta = self._stage(path, sha, info, inputs=inputs, outputs=outputs, saved_with=saved_with,
                                reference=reference)
        try:
            self._place(tmp, self.folder(sha))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        try:
            self.records.write(*_insert(sha, name, info.kind, path, meta), what=f"the registration of {name}",
                               payload=meta | {"sha256": sha})
        except RecordsError:
            if self.get(sha):  # a parallel add of the same file registered it first
                return self.get(sha), "unchanged"
            raise
        return self.get(sha), "added"

    def _stage(self, path: Path, sha: str, info: ArchiveInfo, *, inputs: Path | None, outputs: Path | None,
               saved_with: str | None, reference: Callable[[Path, str, str], Path] | None) -> tuple[Path, dict]:
        """The artifact's finished folder under a private temporary name, and its registration's info."""
        suffix = ".pt2" if info.kind in ("export", "aoti") else ".pt"
        meta = asdict(info) | {"file": f"artifact{suffix}", "source": str(path), "saved_with": saved_with,
                               "inputs": None, "outputs": None, "hashes": {}}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".add-{sha[:12]}-", dir=self.root))
        except OSError as exc:
            raise ArtifactError(f"cannot write the artifact store {self.root}: {exc.strerror}",
                                hint="set ENVCTL_ARTIFACTS to a writable folder with free space") from None
        try:
            try:
                shutil.copyfile(path, tmp / meta["file"])
                for key, given in (("inputs", inputs), ("outputs", outputs)):
                    if given is not None:
                        shutil.copyfile(given, tmp / f"{key}.pt")
                        meta[key] = f"{key}.pt"
                tmp.chmod(0o755)
            except OSError as exc:
                raise ArtifactError(f"cannot write the artifact store {self.root}: {exc.strerror}",
                                    hint="set ENVCTL_ARTIFACTS to a writable folder with free space") from None
            if reference is not None:
                reference(tmp, info.kind, meta["file"])
                meta["outputs"] = "outputs.pt"
            for key in ("inputs", "outputs"):
                if meta[key]:
                    meta["hashes"][meta[key]] = sha256_of(tmp / meta[key])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp, meta

    def _replace(self, old: Artifact, path: Path, sha: str, info: ArchiveInfo, **given) -> Artifact:
        """Swap ``old`` for the new files: the new folder is finished before anything of the old one
        moves, and the registration changes in one transaction; the old folder goes last."""
        tmp, meta = self._stage(path, sha, info, **given)
        folder, trash = self.folder(sha), None
        try:
            if sha == old.sha256 and folder.exists():  # same file, new inputs/outputs: the old folder
                trash = Path(tempfile.mkdtemp(prefix=".old-", dir=self.root))  # steps aside until the end
                os.rename(folder, trash / "x")
            try:
                self._place(tmp, folder)
                self.records.write_many(
                    [("DELETE FROM compat WHERE artifact_sha256 = ?", (old.sha256,)),
                     ("DELETE FROM artifacts WHERE sha256 = ?", (old.sha256,)),
                     _insert(sha, old.name, info.kind, path, meta)],
                    what=f"the replacement of {old.name}", payload=meta | {"sha256": sha})
            except BaseException:  # the new folder goes (it was never registered), the old one comes back
                shutil.rmtree(folder, ignore_errors=True)
                if trash is not None:
                    os.rename(trash / "x", folder)
                raise
        except OSError as exc:
            raise ArtifactError(f"cannot write the artifact store {self.root}: {exc.strerror}; {old.name} is "
                                f"unchanged", hint="set ENVCTL_ARTIFACTS to a writable folder with free space") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if trash is not None:  # the old folder after a replace, an empty one after a rollback
                shutil.rmtree(trash, ignore_errors=True)
        if sha != old.sha256:
            shutil.rmtree(self.folder(old.sha256), ignore_errors=True)
        return self.get(sha)

    def remove(self, name: str) -> Removal:
        """Forget an artifact: its registration and compat results (one transaction), then its folder."""
        art = self.select([name])[0]
        results = next(iter(self.records.execute("SELECT COUNT(*) FROM compat WHERE artifact_sha256 = ?",
                                                 (art.sha256,))))[0]
        self.records.write_many([("DELETE FROM compat WHERE artifact_sha256 = ?", (art.sha256,)),
                                 ("DELETE FROM artifacts WHERE sha256 = ?", (art.sha256,))],
                                what=f"the removal of {art.name}", payload={"remove": art.to_dict()})
        # Unregistered now: a folder left by a failure here is replaced by a later add of the file.
        folder = self.folder(art.sha256)
        shutil.rmtree(folder, ignore_errors=True)
        return Removal(artifact=art, compat_results=results, folder=str(folder), files_left=folder.exists())

    def _place(self, tmp: Path, folder: Path) -> None:
        """Rename the finished folder into the store; a leftover of an unregistered add is replaced."""
        try:
            os.rename(tmp, folder)
            return
        except OSError:
            if not folder.exists():
                raise
        trash = Path(tempfile.mkdtemp(prefix=".old-", dir=self.root))
        try:
            os.rename(folder, trash / "x")
        except OSError:
            pass  # a parallel add moved it already
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.exists():
                raise
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, artifact: Artifact) -> None:
        """The stored files still have the hashes they were registered with (checked on every use)."""
        folder = self.folder(artifact.sha256)
        files = {artifact.info["file"]: artifact.sha256, **(artifact.info.get("hashes") or {})}
        for name, want in sorted(files.items()):
            path = folder / name
            try:
                actual = sha256_of(path) if path.is_file() else None
            except OSError:
                actual = None
            if actual != want:
                problem = "is missing" if actual is None else f"has sha256 {actual[:12]}..., not {want[:12]}..."
                raise ArtifactError(f"stored file {path} of artifact {artifact.name} {problem}; the store was "
                                    f"altered", hint=f"remove {folder} and its registration, then add the file again")

    def set_outputs(self, artifact: Artifact, outputs: Path) -> Artifact:
        shutil.copyfile(outputs, self.folder(artifact.sha256) / "outputs.pt")
        info = dict(artifact.info, outputs="outputs.pt")
        self.records.write("UPDATE artifacts SET info = ? WHERE sha256 = ?",
                           (json.dumps(info, sort_keys=True), artifact.sha256))
        return self.get(artifact.sha256)

    def get(self, sha256: str) -> Artifact | None:
        rows = list(self.records.execute("SELECT * FROM artifacts WHERE sha256 = ?", (sha256,)))
        return _artifact(rows[0]) if rows else None

    def by_name(self, name: str) -> Artifact | None:
        rows = list(self.records.execute("SELECT * FROM artifacts WHERE name = ?", (name,)))
        return _artifact(rows[0]) if rows else None

    def list(self) -> list[Artifact]:
        return [_artifact(r) for r in self.records.execute("SELECT * FROM artifacts ORDER BY name")]

    def select(self, names: list[str] | None) -> list[Artifact]:
        if not names:
            return self.list()
        out = []
        for n in names:
            art = self.by_name(n) or self.get(n)
            if art is None:
                raise ArtifactError(f"no artifact named {n!r}", hint="envctl artifacts list shows them")
            out.append(art)
        return out


def _insert(sha: str, name: str, kind: str, path: Path, meta: dict) -> tuple[str, tuple]:
    return ("INSERT INTO artifacts (sha256, name, kind, size, info, added) VALUES (?,?,?,?,?,?)",
            (sha, name, kind, path.stat().st_size, json.dumps(meta, sort_keys=True), time.time()))


# A file of an artifact's own folder, as envctl names them (artifact.pt, inputs.pt): never a path.
_MEMBER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def _artifact(row) -> Artifact:
    """An artifact as the records database holds it; its info is checked, since its file names
    become paths in the store and in compat runs."""
    try:
        info = json.loads(row["info"])
        problem = None if isinstance(info, dict) else "not a JSON object"
    except (TypeError, ValueError) as exc:
        info, problem = {}, f"not JSON ({exc})"
    if problem is None:
        bad = [k for k in ("file", "inputs", "outputs") if (k == "file" or info.get(k) is not None)
               and not (isinstance(info.get(k), str) and _MEMBER.fullmatch(info[k]))]
        hashes = info.get("hashes") or {}
        if not (isinstance(hashes, dict) and all(isinstance(k, str) and _MEMBER.fullmatch(k) for k in hashes)):
            bad.append("hashes")
        problem = f"{', '.join(bad)}: not a file name of the artifact's folder" if bad else None
    if problem:
        raise DamagedRecordsError(f"artifact {row['name']!r} in the records database: its info is {problem}",
                                  hint="the database was altered; remove the artifact's row and add it again: "
                                       "envctl artifacts add FILE")
    return Artifact(sha256=row["sha256"], name=row["name"], kind=row["kind"], size=row["size"], info=info,
                    added=row["added"])
