"""The artifact registry: TorchScript (.pt), torch.export (.pt2) and AOTInductor package (.pt2)
files, stored by content hash.

What a file is and which versions it carries are read from the zip archive
itself, never by loading it (loading is what ``envctl compat`` tests, in a
sandbox).  Sample inputs and the reference outputs they produced are stored
beside each artifact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from envctl.fsio import sha256_of
from envctl.errors import ArtifactError, DamagedRecordsError, RecordsError
from envctl.records import Records

MAX_MEMBER = 64 << 20  # bytes read from any archive member (model.json, version): a zip bomb stops here


def _check_regular(what: str, path: Path) -> None:
    """A regular file: not missing, not a folder, not a device or pipe (/dev/zero, /dev/stdin)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ArtifactError(f"{what} {path} does not exist" if not path.exists() and not path.is_symlink()
                            else f"{what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise ArtifactError(f"{what} {path} is a folder, not a file", hint="give the saved model file")
    if not stat.S_ISREG(mode):
        raise ArtifactError(f"{what} {path} is not a regular file (a device or pipe)",
                            hint="save it to a file first")


def check_tensor_file(what: str, path: Path) -> None:
    """Sample inputs and reference outputs are torch.save archives (a zip holding data.pkl)."""
    try:
        with zipfile.ZipFile(path) as zf:
            if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist()):
                raise ArtifactError(f"{what} {path} is a zip archive but not a torch.save file (no data.pkl)",
                                    hint="save tensors with torch.save((x,), PATH)")
    except (zipfile.BadZipFile, OSError):
        raise ArtifactError(f"{what} {path} is not a torch.save file", hint="save tensors with torch.save((x,), PATH)") from None


def _read_capped(zf: zipfile.ZipFile, member: str) -> bytes:
    if zf.getinfo(member).file_size > MAX_MEMBER:
        raise ArtifactError(f"archive member {member} claims {zf.getinfo(member).file_size} bytes, more than "
                            f"{MAX_MEMBER >> 20} MB: not a model archive envctl reads",
                            hint="a real model.json is far smaller; is the file a zip bomb?")
    try:
        with zf.open(member) as fh:
            data = fh.read(MAX_MEMBER + 1)
    except (RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:
        # An encrypted member, a compression zipfile lacks, a corrupt deflate stream: torch writes none.
        raise ArtifactError(f"archive member {member} cannot be read ({exc})",
                            hint="save models with torch.jit.save, torch.export.save or "
                                 "torch._inductor.aoti_compile_and_package") from None
    if len(data) > MAX_MEMBER:
        raise ArtifactError(f"archive member {member} inflates past {MAX_MEMBER >> 20} MB: not read")
    return data


def _json_member(zf: zipfile.ZipFile, member: str, *texts: str) -> dict:
    """A JSON object member of the archive whose ``texts`` keys are strings where present, as torch
    writes them: a list, null or a number there is a forged or damaged archive, said in one line."""
    try:
        meta = json.loads(_read_capped(zf, member))
    except RecursionError:  # nested past the parser's depth; json raises no ValueError for it
        meta = None
    if not isinstance(meta, dict):
        bad = "is not a JSON object"
    elif key := next((k for k in texts if not isinstance(meta.get(k), (str, type(None)))), None):
        bad = f"has a {key} that is not a string"
    elif not isinstance(meta.get("schema_version") or {}, dict):
        bad = "has a schema_version that is not a JSON object"
    else:
        return meta
    raise ArtifactError(f"archive member {member} {bad}: not a model archive torch wrote",
                        hint="save models with torch.export.save or torch._inductor.aoti_compile_and_package")


@dataclass(frozen=True)
class ArchiveInfo:
    kind: str  # torchscript | export | aoti
    format_version: str | None  # TorchScript file format version / export archive .data/version
    torch_version: str | None  # export archives record it; TorchScript archives do not
    schema_version: str | None = None
    opset_version: str | None = None
    damaged: bool = False  # zip end missing (truncated): registered, expected to fail to load
    device: str | None = None  # AOTInductor packages: the device they were compiled for


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


def inspect_archive(path: Path) -> ArchiveInfo:
    """Identify a TorchScript, torch.export or AOTInductor archive from its zip members alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            prefix = names[0].split("/", 1)[0] + "/" if names else ""

            def read(member: str) -> str | None:
                return _read_capped(zf, prefix + member).decode().strip() if prefix + member in names else None

            compiled = [n for n in names if n.startswith(prefix + "data/aotinductor/")]
            if compiled:  # aoti_compile_and_package: the compiled model (.so) and its metadata
                meta = next((_json_member(zf, n, "AOTI_DEVICE_KEY") for n in compiled
                             if n.endswith("wrapper_metadata.json")), {})
                return ArchiveInfo(kind="aoti", format_version=read(".data/version") or read("archive_version"),
                                   torch_version=None, device=meta.get("AOTI_DEVICE_KEY"))
            if read("archive_format") == "pt2" or any(n.endswith("models/model.json") for n in names):
                model = next(n for n in names if n.endswith("models/model.json"))
                meta = _json_member(zf, model, "torch_version")
                schema = meta.get("schema_version") or {}
                return ArchiveInfo(
                    kind="export", format_version=read(".data/version") or read("archive_version"),
                    torch_version=meta.get("torch_version"),
                    schema_version=f"{schema.get('major')}.{schema.get('minor')}" if schema else None,
                    opset_version=json.dumps(meta.get("opset_version"), sort_keys=True))
            if prefix + "data.pkl" in names and any(n.startswith(prefix + "code/") for n in names):
                return ArchiveInfo(kind="torchscript",
                                   format_version=read(".data/version") or read("version"), torch_version=None)
    except zipfile.BadZipFile as exc:
        damaged = _damaged_archive(path)
        if damaged is not None:
            return damaged
        raise ArtifactError(f"{path} is not a TorchScript or torch.export archive ({exc})",
                            hint="save models with torch.jit.save, torch.export.save or "
                                 "torch._inductor.aoti_compile_and_package") from None
    except (KeyError, ValueError, StopIteration) as exc:
        raise ArtifactError(f"{path} is a zip archive but not a readable model archive ({exc})") from None
    raise ArtifactError(f"{path} is a zip archive but neither TorchScript (code/, data.pkl) nor torch.export "
                        f"(models/model.json)", hint="save models with torch.jit.save or torch.export.save")


def _damaged_archive(path: Path) -> ArchiveInfo | None:
    """A zip whose end is missing (a truncated copy): the local headers still name the members,
    so it is registered as what it was, and ``envctl compat`` reports how it fails to load."""
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    if not head.startswith(b"PK\x03\x04"):
        return None
    if b"/data/aotinductor/" in head:
        return ArchiveInfo(kind="aoti", format_version=None, torch_version=None, damaged=True)
    if b"/models/model.json" in head or b"archive_format" in head:
        return ArchiveInfo(kind="export", format_version=None, torch_version=None, damaged=True)
    if b"/data.pkl" in head or b"/code/" in head:
        return ArchiveInfo(kind="torchscript", format_version=None, torch_version=None, damaged=True)
    return None


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
                _check_regular(what, given)
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
