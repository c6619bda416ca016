"""The artifact registry: TorchScript (.pt) and torch.export (.pt2) files, stored by content hash.

What a file is and which versions it carries are read from the zip archive
itself, never by loading it (loading is what ``envctl compat`` tests, in a
sandbox).  Sample inputs and the reference outputs they produced are stored
beside each artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from envctl.cache import sha256_of
from envctl.errors import ArtifactError
from envctl.records import Records


@dataclass(frozen=True)
class ArchiveInfo:
    kind: str  # torchscript | export
    format_version: str | None  # TorchScript file format version / export archive .data/version
    torch_version: str | None  # export archives record it; TorchScript archives do not
    schema_version: str | None = None
    opset_version: str | None = None
    damaged: bool = False  # zip end missing (truncated): registered, expected to fail to load


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


def inspect_archive(path: Path) -> ArchiveInfo:
    """Identify a TorchScript or torch.export archive from its zip members alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            prefix = names[0].split("/", 1)[0] + "/" if names else ""

            def read(member: str) -> str | None:
                return zf.read(prefix + member).decode().strip() if prefix + member in names else None

            if read("archive_format") == "pt2" or any(n.endswith("models/model.json") for n in names):
                model = next(n for n in names if n.endswith("models/model.json"))
                meta = json.loads(zf.read(model))
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
                            hint="save models with torch.jit.save or torch.export.save") from None
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
            outputs: Path | None = None, saved_with: str | None = None) -> tuple[Artifact, bool]:
        """Register ``path``; (artifact, added). The same content twice is a no-op."""
        for what, given in (("artifact", path), ("--inputs", inputs), ("--outputs", outputs)):
            if given is not None and not given.is_file():
                raise ArtifactError(f"{what} {given} does not exist")
        info = inspect_archive(path)
        sha = sha256_of(path)
        existing = self.get(sha)
        if existing:
            return existing, False
        name = name or path.stem
        if self.by_name(name):
            raise ArtifactError(f"an artifact named {name!r} exists with other content",
                                hint="pass --name to register this file under another name")
        folder = self.folder(sha)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        suffix = ".pt2" if info.kind == "export" else ".pt"
        meta = asdict(info) | {"file": f"artifact{suffix}", "source": str(path), "saved_with": saved_with,
                               "inputs": None, "outputs": None}
        try:
            shutil.copyfile(path, tmp / f"artifact{suffix}")
            if inputs is not None:
                shutil.copyfile(inputs, tmp / "inputs.pt")
                meta["inputs"] = "inputs.pt"
            if outputs is not None:
                shutil.copyfile(outputs, tmp / "outputs.pt")
                meta["outputs"] = "outputs.pt"
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.records.write("INSERT INTO artifacts (sha256, name, kind, size, info, added) VALUES (?,?,?,?,?,?)",
                           (sha, name, info.kind, path.stat().st_size, json.dumps(meta, sort_keys=True), time.time()))
        return self.get(sha), True

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


def _artifact(row) -> Artifact:
    return Artifact(sha256=row["sha256"], name=row["name"], kind=row["kind"], size=row["size"],
                    info=json.loads(row["info"]), added=row["added"])
