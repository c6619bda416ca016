"""Read and write ``release-matrix.yaml`` deterministically, keeping its hand-written parts.

The file has three parts: the comment header naming the sources (kept verbatim), the
``torch:`` table (rendered here, one layout, newest minor first, CUDA versions sorted), and
the curated ``arch_lists`` / ``drivers`` tables with their comments (kept verbatim).  Rendering
the data a file holds gives back the same bytes, so a refresh that finds nothing new changes
nothing, and a diff shows only what the indexes changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from envctl import yamldoc
from envctl.errors import DamagedDocumentError, EnvctlError
from envctl.matrix import check_data, parse_version
from envctl.fsio import read_document
ROW_KEYS = ("releases", "pypi", "pypi_libs", "python", "cuda", "torchvision", "torchaudio", "pytorch_channel")
LIB_KEYS = ("cuda", "cudnn", "nccl", "triton")


@dataclass(frozen=True)
class MatrixFile:
    path: Path
    text: str
    header: str  # everything before "version:"
    tail: str  # everything after the torch table
    data: dict


def read(path: Path) -> MatrixFile:
    try:
        text = read_document(path)
        data = yamldoc.parse(text)
    except (OSError, UnicodeDecodeError, yamldoc.DocumentError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise DamagedDocumentError(f"cannot read the release matrix {path}: {reason}",
                                   hint="restore it: git checkout envctl/data/release-matrix.yaml") from None
    check_data(data, str(path))
    lines = text.splitlines(keepends=True)
    try:
        first = next(i for i, ln in enumerate(lines) if ln.startswith("version:"))
        table = next(i for i, ln in enumerate(lines) if ln.rstrip() == "torch:")
    except StopIteration:
        raise EnvctlError(f"{path}: no top-level 'version:' or 'torch:' line", hint="restore the file") from None
    end = next((i for i in range(table + 1, len(lines))
                if lines[i].strip() and not lines[i].startswith((" ", "\t"))), len(lines))
    unknown = sorted({k for row in data["torch"].values() for k in row} - set(ROW_KEYS))
    if unknown:
        raise EnvctlError(f"{path}: torch rows have keys envctl does not know: {', '.join(unknown)}",
                          hint=f"known keys: {', '.join(ROW_KEYS)}")
    return MatrixFile(path=path, text=text, header="".join(lines[:first]), tail="".join(lines[end:]), data=data)


def render(data: dict, *, header: str, tail: str) -> str:
    """The file text for ``data``: header, version, refreshed date, the torch table, tail."""
    out = [header, f"version: {data['version']}\n", f'refreshed: "{data["refreshed"]}"\n', "\n", "torch:\n"]
    for minor in sorted(data["torch"], key=parse_version, reverse=True):
        out.append(f"  {_q(minor)}:\n")
        out.extend(f"    {line}\n" for line in _row(data["torch"][minor]))
    out.append("\n")
    return "".join(out) + tail


def _row(row: dict) -> list[str]:
    lines = [f"releases: [{', '.join(_q(r) for r in sorted(row['releases'], key=parse_version))}]"]
    if row.get("pypi"):
        lines.append(f"pypi: {row['pypi']}")
    libs = row.get("pypi_libs")
    if libs:
        items = [f"{k}: {_q(libs[k])}" for k in LIB_KEYS if k in libs]
        lines.append(f"pypi_libs: {{{', '.join(items)}}}")
    lines.append(f"python: [{_q(row['python'][0])}, {_q(row['python'][1])}]")
    lines.append("cuda:")
    for status in ("stable", "experimental"):
        entries = row["cuda"].get(status) or {}
        items = [f"{_q(c)}: {_q(entries[c])}" for c in sorted(entries, key=parse_version)]
        lines.append(f"  {status}: {{{', '.join(items)}}}")
    for comp in ("torchvision", "torchaudio"):
        value = row.get(comp)
        lines.append(f"{comp}: {_q(value) if value is not None else 'null'}")
    if row.get("pytorch_channel"):
        lines.append("pytorch_channel: true")
    return lines


def _q(value: object) -> str:
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
