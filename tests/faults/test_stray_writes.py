"""Item 11: envctl writes only where it is told to.  An empty folder argument is not the current
folder; a mirror's link does not carry a file from outside the mirror into the cache; the tools
envctl runs (uv, the docker CLI) and its base-image builds keep their files in envctl's places."""

from __future__ import annotations

import os
from pathlib import Path

from tests.faults.conftest import assert_one_line_error, envctl


def test_an_empty_folder_argument_is_refused_and_nothing_is_written_here(pip_project, tmp_path):
    here = tmp_path / "cwd"
    here.mkdir()
    assert_one_line_error(envctl("cache", "export", "fixture-pip", "", env=pip_project, cwd=here), 2, "empty")
    assert_one_line_error(envctl("cache", "import", "", env=pip_project, cwd=here), 2, "empty")
    assert list(here.iterdir()) == []


def test_cache_import_refuses_a_link_out_of_the_mirror(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$not-for-the-cache\n")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "good-1.0-py3-none-any.whl").write_bytes(b"a wheel")
    os.symlink(secret, mirror / "evil-1.0-py3-none-any.whl")
    cache = tmp_path / "cache"
    result = envctl("cache", "import", str(mirror), env={"ENVCTL_CACHE": str(cache)})
    assert_one_line_error(result, 1, str(mirror / "evil-1.0-py3-none-any.whl"), "outside the mirror folder")
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_a_link_inside_the_mirror_is_imported(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "files").mkdir(parents=True)
    (mirror / "files" / "real.bin").write_bytes(b"a wheel")
    os.symlink(Path("files") / "real.bin", mirror / "good-1.0-py3-none-any.whl")
    result = envctl("cache", "import", str(mirror), env={"ENVCTL_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert [p.read_bytes() for p in (tmp_path / "cache").rglob("*.whl")] == [b"a wheel"]
