"""Items 1, 8 and 9 for ``envctl setup``: no writes outside the named prefix, damaged files found
by hash, and one-line errors for a prefix that cannot be written; the host's pip configuration
ignored, a failed setup leaving no half-made prefix, a prefix python that hangs or prints garbage,
garbage records, and a prefix path that holds shell text (real processes, real files)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

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


def _site(prefix: Path) -> Path:
    return next(prefix.glob("lib/python*/site-packages"))


def _fake_python(prefix: Path, body: str) -> None:
    """An envctl prefix (marker and activation file) whose bin/python is the shell script ``body``."""
    (prefix / "bin").mkdir(parents=True)
    (prefix / ".envctl-prefix").write_text("made by envctl setup for fixture-pip\n")
    (prefix / "envctl-activate.sh").write_text("# made by a setup that succeeded\n")
    python = prefix / "bin" / "python"
    python.write_text("#!/bin/sh\n" + body)
    python.chmod(0o755)


def test_the_hosts_pip_configuration_and_variables_are_ignored(pip_project, tmp_path):
    # As on a host whose /etc/xdg/pip/pip.conf caps versions: a constraint the lock breaks, an index
    # that does not exist, in a real pip.conf and in PIP_* variables.
    (tmp_path / "cap.txt").write_text("mpmath<1.3\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {tmp_path / 'cap.txt'}\nindex-url = http://127.0.0.1:9/simple\n"
                    f"find-links = {tmp_path / 'nowhere'}\n[install]\nno-binary = :all:\n")
    hostile = {"PIP_CONFIG_FILE": str(conf), "PIP_INDEX_URL": "http://127.0.0.1:9/bogus",
               "PIP_CONSTRAINT": str(tmp_path / "cap.txt"), "PIP_REQUIRE_VIRTUALENV": "1"}
    prefix = tmp_path / "P"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env={**pip_project, **hostile})
    assert made.returncode == 0, made.stderr[-2000:]
    version = subprocess.run([str(prefix / "bin" / "python"), "-c", "import mpmath; print(mpmath.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "1.3.0"


def test_a_failed_setup_removes_the_prefix_it_made_and_empties_the_one_it_found_empty(pip_project, tmp_path):
    # No step can finish in a millisecond: the venv step fails, a real failure mid-setup.
    env = {**pip_project, "ENVCTL_SETUP_TIMEOUT": "0.001"}
    nested = tmp_path / "new" / "deeper" / "P"
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(nested), "--no-probe", env=env), 1,
                          "-m venv", str(nested), "ran past 0.001s")
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(empty), "--no-probe", env=env), 1,
                          "-m venv", "ran past 0.001s")
    assert list(empty.iterdir()) == []
    bogus = envctl("setup", "fixture-pip", "--prefix", str(nested), "--no-probe",
                   env={**pip_project, "ENVCTL_SETUP_TIMEOUT": "soon"})
    assert_one_line_error(bogus, 2, "ENVCTL_SETUP_TIMEOUT='soon' is not a number of seconds")
    assert not (tmp_path / "new").exists()


def test_a_prefix_python_that_hangs_is_stopped_at_its_deadline(pip_project, tmp_path):
    prefix = tmp_path / "P"
    _fake_python(prefix, "exec sleep 120\n")
    started = time.monotonic()
    hung = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe",
                  env={**pip_project, "ENVCTL_SETUP_TIMEOUT": "2"}, timeout=60)
    assert_one_line_error(hung, 1, f"{prefix}/bin/python (listing its distributions) ran past 2s")
    assert time.monotonic() - started < 30
    assert "ENVCTL_SETUP_TIMEOUT" in hung.stderr


def test_a_repair_whose_pip_hangs_stops_and_says_the_prefix_is_left_incomplete(pip_project, tmp_path):
    prefix = tmp_path / "P"
    # Answers the listing at once (nothing installed), then hangs as pip.
    _fake_python(prefix, 'case " $* " in *" -c "*) echo "{}" ;; *) exec sleep 120 ;; esac\n')
    hung = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", "--repair",
                  env={**pip_project, "ENVCTL_SETUP_TIMEOUT": "2"}, timeout=60)
    assert_one_line_error(hung, 1, f"pip install into {prefix} ran past 2s",
                          f"{prefix} is left incomplete, without envctl-activate.sh")
    assert (prefix / "bin" / "python").exists()  # a prefix being repaired is not removed


@pytest.mark.parametrize("garbage", ["echo 'Welcome to the garbage interpreter'", "echo '[1, 2]'",
                                     r"printf '\377\376{not json'"])
def test_a_prefix_python_that_prints_garbage_is_one_line(pip_project, tmp_path, garbage):
    prefix = tmp_path / "P"
    _fake_python(prefix, garbage + "\n")
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project),
                          1, f"{prefix}/bin/python answered the listing of its distributions with",
                          "not a JSON object")


def test_a_prefix_python_that_cannot_run_is_one_line(pip_project, tmp_path):
    prefix = tmp_path / "P"
    _fake_python(prefix, "")
    (prefix / "bin" / "python").write_bytes(b"\x7fELF garbage, no interpreter")
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project),
                          1, f"cannot run {prefix}/bin/python (listing its distributions)")


@pytest.mark.parametrize("garbage", ['{"name": "junk", "vers', "not json at all", '["a list"]',
                                     '{"name": "junk", "version": "1.0", "build": "0", "paths_data": 7}'])
def test_garbage_conda_meta_is_named_as_damaged_and_repaired(pip_project, tmp_path, garbage):
    prefix = tmp_path / "P"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert made.returncode == 0, made.stderr[-2000:]
    (prefix / "conda-meta").mkdir()
    (prefix / "conda-meta" / "junk-1.0-0.json").write_text(garbage)
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project),
                          1, "has drifted", "damaged junk-1.0-0 (unreadable junk-1.0-0.json)")
    repaired = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--repair", "--no-probe", env=pip_project)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "up to date" in envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe",
                                  env=pip_project).stderr


def test_repair_removes_an_extra_distribution_with_an_empty_record(pip_project, tmp_path):
    prefix = tmp_path / "P"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert made.returncode == 0, made.stderr[-2000:]
    stray = _site(prefix) / "stray-1.0.dist-info"
    stray.mkdir()
    (stray / "METADATA").write_text("Metadata-Version: 2.1\nName: stray\nVersion: 1.0\n")
    (stray / "INSTALLER").write_text("pip\n")
    (stray / "RECORD").write_text("")  # pip: "No files were found to uninstall"
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project),
                          1, "extra stray==1.0")
    repaired = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--repair", "--no-probe", env=pip_project)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert not stray.exists()
    assert "up to date" in envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe",
                                  env=pip_project).stderr


def test_a_prefix_path_with_shell_text_is_a_path_when_the_activation_script_is_sourced(pip_project, tmp_path):
    pwned = tmp_path / "PWNED"
    prefix = tmp_path / f"p $(touch {pwned}1) `touch {pwned}2` \"quote' back\\slash *glob ${{HOME}}" / "env"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert made.returncode == 0, made.stderr[-2000:]
    script = prefix / "envctl-activate.sh"
    for shell in ("bash", "sh"):
        out = subprocess.run([shell, "-c", '. "$1"; echo "$PATH"; echo "$VIRTUAL_ENV"; command -v python',
                              shell, str(script)], capture_output=True, text=True, cwd=tmp_path,
                             env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert out.stdout.splitlines() == [f"{prefix}/bin:/usr/bin:/bin", str(prefix), f"{prefix}/bin/python"]
    assert not list(tmp_path.glob("PWNED*"))


def test_a_prefix_with_a_colon_is_refused(pip_project, tmp_path):
    prefix = tmp_path / "a:b"
    assert_one_line_error(envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project),
                          2, str(prefix), "holds a ':'")
    assert not prefix.exists()


def test_packages_outside_the_prefix_are_neither_listed_nor_uninstalled(pip_project, tmp_path):
    # A conda python reads the user's ~/.local; any python reads PYTHONPATH: neither is the prefix.
    prefix = tmp_path / "P"
    made = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=pip_project)
    assert made.returncode == 0, made.stderr[-2000:]
    outside = tmp_path / "outside" / "intruder-1.0.dist-info"
    outside.mkdir(parents=True)
    (outside / "METADATA").write_text("Metadata-Version: 2.1\nName: intruder\nVersion: 1.0\n")
    (outside / "RECORD").write_text("intruder-1.0.dist-info/METADATA,,\n")
    env = {**pip_project, "PYTHONPATH": f"{tmp_path / 'outside'}:{os.environ.get('PYTHONPATH', '')}"}
    again = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--no-probe", env=env)
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr[-2000:]
    with _site(prefix).joinpath("mpmath", "__init__.py").open("a") as fh:  # damage, so the repair runs pip
        fh.write("# changed\n")
    repaired = envctl("setup", "fixture-pip", "--prefix", str(prefix), "--repair", "--no-probe", env=env)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert (outside / "METADATA").exists()
