"""The package cache: hash checks, and export/import as a mirror for offline machines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envctl.cache import PackageCache, export_mirror, import_mirror, sha256_of
from envctl.errors import CacheError

try:
    from tests.fixtures.conda_channel import build_channel
except ImportError:  # pragma: no cover
    from fixtures.conda_channel import build_channel


def _files(channel: Path) -> list[tuple[str, str, str]]:
    return [(p.as_uri(), sha256_of(p), p.name) for p in sorted(channel.rglob("*.conda"))]


def test_mirror_round_trip_serves_a_machine_without_the_source(tmp_path):
    channel = build_channel(tmp_path / "fixture")
    files = _files(channel)
    here = PackageCache(tmp_path / "cache-here")
    count = export_mirror(here, files, tmp_path / "mirror")
    assert count == len(files) and (tmp_path / "mirror" / "envctl-mirror.json").exists()
    shutil.rmtree(channel)  # the source vanishes (as wheels vanish from indexes)
    there = PackageCache(tmp_path / "cache-there")
    assert import_mirror(there, tmp_path / "mirror") == len(files)
    for url, sha, filename in files:
        assert sha256_of(there.get(url=url, sha256=sha, filename=filename)) == sha


def test_a_wrong_file_from_the_source_is_refused_and_not_cached(tmp_path):
    src = tmp_path / "pkg-1.0-0.conda"
    src.write_bytes(b"real bytes")
    cache = PackageCache(tmp_path / "cache")
    with pytest.raises(CacheError, match="has sha256"):
        cache.get(url=src.as_uri(), sha256="0" * 64, filename=src.name)
    assert not list((tmp_path / "cache").rglob("*.conda"))
