"""A wheel's core metadata without downloading the wheel.

First the PEP 658 file (the wheel URL + ``.metadata``, checked against the hash the index
gives for it); where the index has none, the wheel's own ``*.dist-info/METADATA`` read out of
the zip through HTTP range requests: the end of central directory record, the central
directory, then just that one member.  A 500 MB torch wheel costs about 1.3 MB of transfer.
What was read is cached by the wheel's sha256, so a file is read once, ever.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from envctl.errors import PackageIndexError
from envctl.pypi import http
from envctl.pypi.simple import DistFile

TAIL = 64 * 1024  # the EOCD record (and often the central directory) sits in the last 64 KiB
_EOCD, _EOCD64_LOC, _CDH, _LFH = b"PK\x05\x06", b"PK\x06\x07", b"PK\x01\x02", b"PK\x03\x04"
_METADATA_RE = re.compile(r"^[^/]+\.dist-info/METADATA$")


@dataclass(frozen=True)
class Metadata:
    name: str
    version: str
    requires_dist: tuple[str, ...]
    requires_python: str | None
    source: str  # "pep658", "range" or "cache"


def parse_metadata(text: str, *, where: str, source: str) -> Metadata:
    fields = header_fields(text)
    name, version = fields.get("name", [None])[0], fields.get("version", [None])[0]
    if not name or not version:
        raise PackageIndexError(f"metadata of {where} has no Name/Version header: not a METADATA file",
                                hint="the index serves a damaged .metadata file or wheel; report it to its owner")
    return Metadata(name=name.strip(), version=version.strip(),
                    requires_dist=tuple(r.strip() for r in fields.get("requires-dist", ())),
                    requires_python=(fields.get("requires-python", [""])[0]).strip() or None, source=source)


def header_fields(text: str) -> dict[str, list[str]]:
    """The header fields of a core metadata file (RFC 822 style), by lower-case name, as
    ``email.parser.HeaderParser`` reads them: continuation lines joined, headers ending at the
    first blank or non-header line.  Four times faster than the email parser (a lock reads one
    file per package)."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for line in text.split("\n\n", 1)[0].split("\n"):  # not the long description after
        if line[:1] in (" ", "\t"):
            if current is not None:
                current.append(line)  # a folded line continues the field before it
            continue  # (before any field: passed over, as the email parser does)
        if line.startswith("From "):
            continue  # an mbox "From " line, which the email parser also passes over
        name, colon, value = line.partition(":")
        if not (colon and name.isascii() and name.isprintable() and " " not in name):  # RFC 5322's field name
            break  # a blank line (or the body) ends the headers
        current = [value.lstrip(" \t")]
        fields.setdefault(name.lower(), []).append(current)  # type: ignore[arg-type]
    return {k: ["\n".join(parts) for parts in values] for k, values in fields.items()}  # type: ignore[misc]


def read_metadata(dist: DistFile, *, cache_dir: Path | None = None,
                  fetched: tuple[str, str] | None = None) -> Metadata:
    """The core metadata of one wheel: cache, PEP 658 file, or range requests, in that order.
    ``fetched``: what ``fetch_metadata_text`` already gave for this very file (URL and sha256)."""
    cached = cache_dir / f"{dist.sha256}.METADATA" if cache_dir is not None and dist.sha256 else None
    if cached is not None and cached.is_file():
        meta = parse_metadata(cached.read_text("utf-8", "replace"), where=dist.filename, source="cache")
        return _checked(meta, dist)
    text, source = fetched or fetch_metadata_text(dist)
    meta = _checked(parse_metadata(text, where=dist.filename, source=source), dist)
    if cached is not None:
        from envctl.fsio import atomic_write
        try:
            atomic_write(cached, text)
        except Exception:  # noqa: BLE001 - an unwritable cache only costs speed
            pass
    return meta


def fetch_metadata_text(dist: DistFile) -> tuple[str, str]:
    """The ``METADATA`` text of one wheel from its host, and how it was read ("pep658" or "range")."""
    if dist.metadata is not False:  # PyPI serves .metadata files its JSON does not always announce
        resp = http.get(dist.url + ".metadata", allow=(404, 403), what="metadata file")
        if resp.status == 200:
            if dist.metadata_sha256 and hashlib.sha256(resp.body).hexdigest() != dist.metadata_sha256:
                raise PackageIndexError(f"{dist.url}.metadata does not match the sha256 the index gives for it",
                                        hint="the index or a proxy serves a damaged file; try again later")
            return resp.body.decode("utf-8", "replace"), "pep658"
    return metadata_by_range(dist.url), "range"


def _checked(meta: Metadata, dist: DistFile) -> Metadata:
    version = dist.parsed()[0]
    from packaging.version import InvalidVersion, Version

    try:
        same = Version(meta.version) == version
    except InvalidVersion:
        same = False
    if not same:
        raise PackageIndexError(f"metadata of {dist.filename} says version {meta.version!r}, its file name {version}",
                                hint="the index serves metadata of another file; report it to its owner")
    return meta


def metadata_by_range(url: str) -> str:
    """``*.dist-info/METADATA`` of the wheel at ``url``, through HTTP range requests."""
    tail, total = http.get_range(url, None, TAIL, what="wheel")
    tail_start = total - len(tail)
    cd_offset, cd_size = _central_directory(url, tail, tail_start)
    if cd_offset >= tail_start:
        cd = tail[cd_offset - tail_start:cd_offset - tail_start + cd_size]
    else:
        cd, _ = http.get_range(url, cd_offset, cd_size, what="wheel")
    entry = _find_metadata(url, cd)
    method, comp_size, offset = entry
    # the local header's name/extra lengths may differ from the central directory's: read generously
    want = 30 + 1024 + comp_size
    if offset >= tail_start and offset + want <= total:
        blob = tail[offset - tail_start:offset - tail_start + want]
    else:
        blob, _ = http.get_range(url, offset, min(want, total - offset), what="wheel")
    if blob[:4] != _LFH:
        raise _bad(url, "the METADATA member's local header is missing")
    name_len, extra_len = struct.unpack("<HH", blob[26:30])
    start = 30 + name_len + extra_len
    if len(blob) < start + comp_size:
        more, _ = http.get_range(url, offset, start + comp_size, what="wheel")
        blob = more
    data = blob[start:start + comp_size]
    if method == 8:
        try:
            data = zlib.decompressobj(-15).decompress(data)
        except zlib.error as exc:
            raise _bad(url, f"METADATA does not inflate ({exc})") from None
    elif method != 0:
        raise _bad(url, f"METADATA uses zip compression method {method} (wheels use 0 or 8)")
    return data.decode("utf-8", "replace")


def _central_directory(url: str, tail: bytes, tail_start: int) -> tuple[int, int]:
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise _bad(url, "no end-of-central-directory record in its last 64 KiB: not a zip file")
    entries, cd_size, cd_offset = struct.unpack("<HII", tail[at + 10:at + 20])
    if 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:  # zip64
        loc = at - 20
        if loc < 0 or tail[loc:loc + 4] != _EOCD64_LOC:
            raise _bad(url, "a zip64 archive without its zip64 locator")
        (eocd64,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        rec = tail[eocd64 - tail_start:eocd64 - tail_start + 56] if eocd64 >= tail_start \
            else http.get_range(url, eocd64, 56, what="wheel")[0]
        cd_size, cd_offset = struct.unpack("<QQ", rec[40:56])
    if cd_offset + cd_size > tail_start + len(tail):
        raise _bad(url, "its central directory lies past the end of the file")
    return cd_offset, cd_size


def _find_metadata(url: str, cd: bytes) -> tuple[int, int, int]:
    """(compression method, compressed size, local header offset) of the METADATA member.
    Found by searching the directory for the name, not by walking its 10,000+ entries."""
    needle = b".dist-info/METADATA"
    at = cd.find(needle)
    while at >= 0:
        pos = cd.rfind(_CDH, 0, at)
        if pos >= 0 and pos + 46 <= len(cd):
            method, = struct.unpack("<H", cd[pos + 10:pos + 12])
            comp, uncomp, nlen, xlen = struct.unpack("<IIHH", cd[pos + 20:pos + 32])
            (offset,) = struct.unpack("<I", cd[pos + 42:pos + 46])
            name = cd[pos + 46:pos + 46 + nlen].decode("utf-8", "replace")
            if pos + 46 + nlen == at + len(needle) and _METADATA_RE.match(name):
                extra = cd[pos + 46 + nlen:pos + 46 + nlen + xlen]
                comp, offset = _zip64_fields(extra, comp, uncomp, offset)
                return method, comp, offset
        at = cd.find(needle, at + 1)
    raise _bad(url, "no *.dist-info/METADATA in its central directory")


def _zip64_fields(extra: bytes, comp: int, uncomp: int, offset: int) -> tuple[int, int]:
    i = 0
    while i + 4 <= len(extra):
        hid, size = struct.unpack("<HH", extra[i:i + 4])
        if hid == 1:
            vals, j = extra[i + 4:i + 4 + size], 0
            if uncomp == 0xFFFFFFFF:
                j += 8
            if comp == 0xFFFFFFFF:
                (comp,) = struct.unpack("<Q", vals[j:j + 8])
                j += 8
            if offset == 0xFFFFFFFF:
                (offset,) = struct.unpack("<Q", vals[j:j + 8])
        i += 4 + size
    return comp, offset


def _bad(url: str, why: str) -> PackageIndexError:
    return PackageIndexError(f"cannot read the metadata of wheel {url}: {why}",
                             hint="the file is damaged or not a wheel; check it on the index")
