"""The package cache: hash checks, and export/import as a mirror for offline machines."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envctl.cache import PackageCache, export_mirror, import_mirror
from envctl.fsio import sha256_of
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


def test_import_refuses_a_truncated_file_its_manifest_disowns_and_stores_nothing(tmp_path):
    channel = build_channel(tmp_path / "fixture")
    files = _files(channel)
    export_mirror(PackageCache(tmp_path / "cache-here"), files, tmp_path / "mirror")
    victim = tmp_path / "mirror" / files[0][2]
    victim.write_bytes(victim.read_bytes()[:100])  # a copy cut short
    there = PackageCache(tmp_path / "cache-there")
    with pytest.raises(CacheError) as err:
        import_mirror(there, tmp_path / "mirror")
    assert str(victim) in str(err.value) and "manifest says" in str(err.value)
    assert not (tmp_path / "cache-there").exists() or not list((tmp_path / "cache-there").rglob("*.conda"))


def test_a_mirror_file_with_another_hash_is_passed_over_for_the_source(tmp_path):
    src = tmp_path / "src" / "pkg-1.0-0.conda"
    src.parent.mkdir()
    src.write_bytes(b"the real bytes")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / src.name).write_bytes(b"another build of it")
    cache = PackageCache(tmp_path / "cache", mirrors=(str(mirror),))
    got = cache.get(url=src.as_uri(), sha256=sha256_of(src), filename=src.name)
    assert got.read_bytes() == b"the real bytes"  # the mirror's copy did not match the lock
    assert (mirror / src.name).read_bytes() == b"another build of it"  # and was left as it was


def test_a_mirror_on_the_same_filesystem_is_linked_and_a_later_change_to_it_is_caught(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    wheel = mirror / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"the real bytes")
    sha = sha256_of(wheel)
    cache = PackageCache(tmp_path / "cache", mirrors=(str(mirror),))
    got = cache.get(url="https://example.invalid/pkg.whl", sha256=sha, filename=wheel.name)
    assert got.stat().st_ino == wheel.stat().st_ino  # a hard link, not a second copy of the GBs
    wheel.write_bytes(b"tampered in the mirror")  # the same inode: the cached file changes too
    with pytest.raises(CacheError, match="does not match the lock"):
        cache.get(url="https://example.invalid/pkg.whl", sha256=sha, filename=wheel.name)


def test_a_find_links_folder_is_copied_not_linked_so_a_rebuilt_wheel_there_spares_the_cache(tmp_path):
    links = tmp_path / "dist"  # a build's output folder, named as find-links: rewritten in place
    links.mkdir()
    wheel = links / "mypkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"first build")
    sha = sha256_of(wheel)
    cache = PackageCache(tmp_path / "cache", mirrors=())
    got = cache.get(url=wheel.as_uri(), sha256=sha, filename=wheel.name, mirrors=(str(links),))
    assert got.stat().st_ino != wheel.stat().st_ino
    wheel.write_bytes(b"second build")
    assert cache.get(url=wheel.as_uri(), sha256=sha, filename=wheel.name).read_bytes() == b"first build"


def test_exporting_into_a_linked_mirror_replaces_files_instead_of_writing_through(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "pkg-1.0-py3-none-any.whl").write_bytes(b"A")
    a = sha256_of(mirror / "pkg-1.0-py3-none-any.whl")
    cache = PackageCache(tmp_path / "cache", mirrors=(str(mirror),))
    linked = cache.get(url="https://example.invalid/pkg.whl", sha256=a, filename="pkg-1.0-py3-none-any.whl")
    src = tmp_path / "src" / "pkg-1.0-py3-none-any.whl"  # the same name with other bytes, from elsewhere
    src.parent.mkdir()
    src.write_bytes(b"B")
    export_mirror(cache, [(src.as_uri(), sha256_of(src), src.name)], mirror)
    assert linked.read_bytes() == b"A" and (mirror / src.name).read_bytes() == b"B"


def test_linking_a_cached_file_into_a_build_context_keeps_its_verification(tmp_path):
    from envctl import cache as cache_module
    from envctl.build.context import _link

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "big-1.0-py3-none-any.whl").write_bytes(b"GBs of CUDA")
    sha = sha256_of(mirror / "big-1.0-py3-none-any.whl")
    cache = PackageCache(tmp_path / "cache", mirrors=())
    path = cache.get(url=(mirror / "big-1.0-py3-none-any.whl").as_uri(), sha256=sha, filename="big-1.0-py3-none-any.whl")
    assert cache_module._verified(path, sha)
    (tmp_path / "ctx").mkdir()
    _link(path, tmp_path / "ctx" / path.name)  # a new link changes the file's ctime
    assert cache_module._verified(path, sha)  # ... and the memo follows: no GB hashed again
    path.write_bytes(b"tampered")
    assert not cache_module._verified(path, sha)


def test_eviction_takes_the_least_recently_used_files_no_one_needs_until_the_rest_fits():
    from envctl.cache import CacheEntry, plan_eviction

    entries = [CacheEntry("old", 40, 1.0), CacheEntry("needed-oldest", 50, 0.5), CacheEntry("mid", 30, 2.0),
               CacheEntry("new", 20, 3.0)]
    assert plan_eviction(entries, needed=set(), budget=140) == []  # it fits: nothing goes
    assert [e.digest for e in plan_eviction(entries, needed={"needed-oldest"}, budget=100)] == ["old"]
    assert [e.digest for e in plan_eviction(entries, needed={"needed-oldest"}, budget=80)] == ["old", "mid"]
    # the needed file alone is over the budget: everything else goes, it stays
    assert [e.digest for e in plan_eviction(entries, needed={"needed-oldest"}, budget=10)] == ["old", "mid", "new"]


def test_the_cache_records_each_use_and_evicts_a_file_whole(tmp_path):
    import os

    cache = PackageCache(tmp_path / "cache", mirrors=())
    files = []
    for name in ("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl"):
        src = tmp_path / name
        src.write_bytes(name.encode() * 1000)
        files.append((str(src), sha256_of(src), name))
        cache.get(url=str(src), sha256=files[-1][1], filename=name)
    for _url, sha, _name in files:  # both last used long ago
        os.utime(cache.path_for(sha, "x").parent, (1_000_000, 1_000_000))
    cache.get(url=files[0][0], sha256=files[0][1], filename=files[0][2])  # a is used again now
    used = {e.digest: e for e in cache.entries()}
    assert used[files[0][1]].last_used > used[files[1][1]].last_used == 1_000_000
    assert used[files[1][1]].bytes >= 22_000
    before = cache.disk_bytes()
    cache.evict(files[1][1])
    assert not cache.has(files[1][1], files[1][2]) and [e.digest for e in cache.entries()] == [files[0][1]]
    assert before - cache.disk_bytes() == used[files[1][1]].bytes


def test_a_file_linked_into_a_build_context_is_on_the_disk_once(tmp_path):
    src = tmp_path / "a-1.0-py3-none-any.whl"
    src.write_bytes(b"x" * 5000)
    cache = PackageCache(tmp_path / "cache", mirrors=())
    path = cache.get(url=str(src), sha256=sha256_of(src), filename=src.name)
    before = cache.disk_bytes()
    (tmp_path / "cache" / "contexts").mkdir()
    (tmp_path / "cache" / "contexts" / src.name).hardlink_to(path)
    assert cache.disk_bytes() == before
    # evicting it now would free nothing: the eviction plan counts it 0 until the link is gone
    [linked] = [e.bytes for e in cache.entries()]
    (tmp_path / "cache" / "contexts" / src.name).unlink()
    assert [e.bytes for e in cache.entries()] == [linked + 5000]  # the wheel's 5000 bytes free again
