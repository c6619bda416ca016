"""Item 11: envctl writes only where it is told to.  An empty folder argument is not the current
folder; a mirror's link does not carry a file from outside the mirror into the cache; the tools
envctl runs (uv, the docker CLI) and its base-image builds keep their files in envctl's places."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import alive, assert_one_line_error, descendants, envctl, start_envctl, wait_for


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


def test_a_lock_writes_nothing_into_home_and_uv_keeps_its_places_in_envctls_cache(pip_project, tmp_path):
    from envctl.lock.uv import _env

    home = tmp_path / "home"
    home.mkdir()
    env = {**pip_project, "HOME": str(home), "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "XDG_CACHE_HOME": ""}
    result = envctl("lock", "fixture-pip", "--upgrade", "mpmath", env=env)
    assert result.returncode == 0, result.stderr
    assert list(home.iterdir()) == []
    given = _env(tmp_path / "cache" / "uv")
    for var in ("UV_CACHE_DIR", "UV_CREDENTIALS_DIR", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        assert Path(given[var]).is_relative_to(tmp_path / "cache"), (var, given[var])
    assert given["UV_NO_CONFIG"] == "1"


def test_the_docker_cli_gets_envctls_config_folder_where_the_user_has_none(tmp_path, monkeypatch):
    from envctl.engine.builders import cli_env

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    assert cli_env() == {"DOCKER_CONFIG": str(tmp_path / "cache" / "docker-config")}
    (tmp_path / "home" / ".docker").mkdir(parents=True)  # the user's logins and plugins: kept
    assert cli_env() == {}


@pytest.mark.engine
def test_base_works_under_tmpdir_and_sigterm_leaves_nothing_there(trickling_index, tmp_path, docker_client):
    """debootstrap's first download stalls on the trickling server; SIGTERM then ends it all."""
    url, connections = trickling_index
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = start_envctl("base", "--tag", "envctl-test/stray-base:never", "--rebuild",
                        "--mirror", url.replace("/simple", "/debian"), env={"TMPDIR": str(scratch)})
    try:
        wait_for(lambda: connections, timeout=60)  # debootstrap's wget is reading the Release file
        made = [p.name for p in scratch.iterdir()]
        helpers = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, proc.stderr.read()[-2000:]
    assert [n for n in made if n.startswith("envctl-base-")], made  # TMPDIR, not /var/tmp
    assert list(scratch.iterdir()) == []
    assert helpers and not [p for p in helpers if alive(p)]
