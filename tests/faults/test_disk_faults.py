"""Item 9 (and 12's lock part): a broken lockfile, a full disk (a 20 MB tmpfs), a read-only mount,
a file where a folder belongs: one line naming the path, nothing half-written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from envctl.fsio import sha256_of
from tests.faults.conftest import assert_one_line_error, envctl, start_envctl


def _lock(env) -> Path:
    return Path(env["ENVCTL_PROJECT"]) / "locks" / "fixture-pip.conda-lock.yml"


def test_a_lockfile_that_is_not_utf8_or_empty_is_one_line_and_can_be_regenerated(pip_project):
    lock = _lock(pip_project)
    good = lock.read_bytes()
    try:
        for junk in (b"\xff\xfe\x00garbage", b""):
            lock.write_bytes(junk)
            for args in (["setup", "fixture-pip", "--prefix", "/nonexistent/x"], ["export", "fixture-pip"],
                         ["lock", "--check", "fixture-pip"]):
                result = envctl(*args, env=pip_project)
                assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr
                assert "changed since it was locked" not in result.stderr
            refused = envctl("lock", "fixture-pip", env=pip_project)
            assert_one_line_error(refused, 1, str(lock), "not written by envctl")
        regenerated = envctl("lock", "fixture-pip", "--force", env=pip_project)
        assert regenerated.returncode == 0, regenerated.stderr
        assert lock.read_bytes() == good
    finally:
        lock.write_bytes(good)


def test_a_lock_path_that_is_a_folder_is_one_line(pip_project):
    lock = _lock(pip_project)
    good = lock.read_bytes()
    lock.unlink()
    lock.mkdir()
    try:
        assert_one_line_error(envctl("export", "fixture-pip", env=pip_project), 1, str(lock), "is a folder")
    finally:
        lock.rmdir()
        lock.write_bytes(good)


def test_cache_export_to_a_full_disk_a_read_only_folder_or_a_file(pip_project, tmpfs, readonly_dir, tmp_path):
    subprocess.run(["dd", "if=/dev/zero", f"of={tmpfs}/filler", "bs=1M", "count=20"], capture_output=True)
    full = envctl("cache", "export", "fixture-pip", str(tmpfs / "mirror"), env=pip_project)
    assert_one_line_error(full, 1, "No space left on device")
    assert not [p for p in (tmpfs / "mirror").rglob("*") if p.name.startswith(".")] if (tmpfs / "mirror").exists() \
        else True
    assert_one_line_error(envctl("cache", "export", "fixture-pip", str(readonly_dir / "m"), env=pip_project), 1,
                          str(readonly_dir / "m"), "Read-only file system")
    file = tmp_path / "a-file"
    file.write_text("x")
    assert_one_line_error(envctl("cache", "export", "fixture-pip", str(file), env=pip_project), 1, str(file))


def test_a_read_only_cache_is_one_line(pip_project, readonly_dir, tmp_path):
    result = envctl("setup", "fixture-pip", "--prefix", str(tmp_path / "P"), "--no-probe",
                    env={**pip_project, "ENVCTL_CACHE": str(readonly_dir / "cache")})
    assert_one_line_error(result, 1, str(readonly_dir / "cache"), "Read-only file system")


def _fill(tmpfs: Path, *, leave_mb: int) -> None:
    """Fill the 20 MB tmpfs up to ``leave_mb`` MB free."""
    subprocess.run(["dd", "if=/dev/zero", f"of={tmpfs}/filler", "bs=1M", f"count={20 - leave_mb}"],
                   capture_output=True)


def test_cache_export_onto_a_disk_that_fills_midway_names_it_and_leaves_no_truncated_wheel(pip_project, tmpfs):
    """1 MB free: mpmath (0.5 MB) fits, pip (1.8 MB) does not."""
    _fill(tmpfs, leave_mb=1)
    mirror = tmpfs / "mirror"
    result = envctl("cache", "export", "fixture-pip", str(mirror), env=pip_project)
    line = assert_one_line_error(result, 1, str(mirror), "No space left on device")
    assert pip_project["ENVCTL_CACHE"] not in line  # the mirror's disk is full, not the cache's
    cached = {p.name: sha256_of(p) for p in Path(pip_project["ENVCTL_CACHE"]).rglob("*.whl")}
    left = sorted(mirror.iterdir())
    assert all(not p.name.startswith(".") for p in left), left
    assert all(sha256_of(p) == cached[p.name] for p in left), left  # whatever is there is whole


def _mirror_of(folder: Path, *, mb: int, count: int = 1) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"big{i}-1.0-py3-none-any.whl").write_bytes(os.urandom(mb << 20))
    return folder


def test_cache_import_onto_a_full_disk_leaves_no_temporary_file(tmpfs, tmp_path):
    _fill(tmpfs, leave_mb=1)
    mirror = _mirror_of(tmp_path / "mirror", mb=2)
    result = envctl("cache", "import", str(mirror), env={"ENVCTL_CACHE": str(tmpfs / "cache")})
    assert_one_line_error(result, 1, str(tmpfs / "cache"), "big0-1.0-py3-none-any.whl", "No space left on device")
    assert [p for p in (tmpfs / "cache").rglob("*") if p.is_file()] == []


def test_two_imports_at_once_do_not_share_a_temporary_file(tmp_path):
    mirror = _mirror_of(tmp_path / "mirror", mb=24, count=3)
    env = {"ENVCTL_CACHE": str(tmp_path / "cache")}
    procs = [start_envctl("cache", "import", str(mirror), env=env) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    stored = sorted((tmp_path / "cache").rglob("*.whl"))
    assert sorted(p.name for p in stored) == [f"big{i}-1.0-py3-none-any.whl" for i in range(3)]
    assert all(sha256_of(p) == p.parent.name for p in stored)
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")]
