"""What a model file is, read from its zip archive alone: TorchScript, torch.export or an
AOTInductor package, with the versions it records, never by loading it (loading is what
``envctl compat`` tests, in a sandbox). Every member is read capped (a zip bomb stops at
MAX_MEMBER) and checked for the types torch writes: a forged or damaged archive is one line.
"""

from __future__ import annotations

import json
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from envctl.errors import ArtifactError

MAX_MEMBER = 64 << 20  # bytes read from any archive member (model.json, version): a zip bomb stops here


def check_regular(what: str, path: Path) -> None:
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
