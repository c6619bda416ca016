"""Items 1, 8 and 9 for ``envctl setup``: no writes outside the named prefix, damaged files found
by hash, and one-line errors for a prefix that cannot be written."""

from __future__ import annotations

import subprocess

from tests.faults.conftest import assert_one_line_error, envctl


def test_empty_prefix_is_refused_and_nothing_is_written(pip_project, tmp_path):
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", "", env=pip_project, cwd=cwd), 2,
                          "--prefix is empty")
    assert list(cwd.iterdir()) == []


def test_a_non_empty_folder_envctl_did_not_make_is_refused(pip_project, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(folder), env=pip_project), 2,
                          str(folder), "non-empty folder that envctl did not make")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_prefix_at_a_file_or_read_only_mount_is_one_line(pip_project, tmp_path, readonly_dir):
    file = tmp_path / "a-file"
    file.write_text("x")
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(file), env=pip_project), 2,
                          str(file), "is a file")
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(readonly_dir / "P"), env=pip_project), 1,
                          str(readonly_dir / "P"), "Read-only file system")


def test_damaged_file_is_found_by_hash_and_repaired(pip_project, tmp_path):
    prefix = tmp_path / "P"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert made.returncode == 0, made.stderr[-2000:]
    init = next(prefix.glob("lib/python*/site-packages/mpmath/__init__.py"))
    with init.open("a") as fh:
        fh.write("raise ImportError('damaged')\n")
    drifted = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert_one_line_error(drifted, 1, "damaged mpmath (mpmath/__init__.py)")
    repaired = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--repair", "--no-probe", env=pip_project)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert subprocess.run([str(prefix / "bin" / "python"), "-c", "import mpmath"]).returncode == 0
    again = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert "up to date" in again.stderr
