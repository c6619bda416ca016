"""Locking the pip part with uv against a local index: the wheel the target installs, the same
lock pip's resolver gives, the host's uv settings ignored, --upgrade keeping every other pin."""

from __future__ import annotations

import hashlib

import pytest

from envctl.errors import LockError
from envctl.lock import lock_image, write_lock, load_lock
from envctl.spec import parse_spec
from envctl.pypi.simple import DistFile
from envctl.lock.uv import explain_failure
from envctl.lock.wheels import parse_compiled, rank_wheels, supported_tags

try:
    from tests.fixtures.pypi_index import LocalIndex, make_wheel, serve
except ImportError:  # pragma: no cover
    from fixtures.pypi_index import LocalIndex, make_wheel, serve

CP311 = "cp311-cp311"


@pytest.fixture
def app_index(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVCTL_CACHE", str(tmp_path / "cache"))
    files = tmp_path / "idx" / "files"
    index = LocalIndex(root=tmp_path / "idx")
    # fastlib 2.0: four builds; Python 3.11 on glibc 2.28 x86_64 installs the manylinux_2_28 one
    for tag in (f"{CP311}-manylinux_2_17_x86_64.manylinux2014_x86_64", f"{CP311}-manylinux_2_28_x86_64",
                f"{CP311}-musllinux_1_2_x86_64", f"{CP311}-macosx_11_0_arm64", "cp310-cp310-manylinux_2_28_x86_64",
                f"{CP311}-manylinux_2_34_x86_64"):
        index.add("fastlib", make_wheel(files, "fastlib", "2.0", tag, []))
    index.add("fastlib", make_wheel(files, "fastlib", "1.0", f"{CP311}-manylinux_2_17_x86_64", []))
    index.add("pip", make_wheel(files, "pip", "26.0", "py3-none-any", []))  # a base-Python venv locks pip too
    index.add("helper", make_wheel(files, "helper", "1.0", "py3-none-any", []))
    index.add("helper", make_wheel(files, "helper", "1.1", "py3-none-any", []))
    index.add("demo-app", make_wheel(files, "demo-app", "3.0", "py3-none-any",
                                     ["fastlib>=1.0", "helper", 'pytest; extra == "test"',
                                      'winonly; sys_platform == "win32"'], metadata_file=False))
    index, shutdown = serve(index)
    yield index
    shutdown()


def _spec(index, pip, name="demo-env"):
    return parse_spec({"version": 1, "name": name, "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
                       "torch_source": "base", "python_source": "base", "channels": [], "pip": pip,
                       "pip_index": {"index_url": index.simple}}, path=f"images/{name}.yaml")


def _wheel_sha(index, filename):
    return hashlib.sha256((index.root / "files" / filename).read_bytes()).hexdigest()


def test_uv_locks_the_wheel_the_target_installs(app_index):
    pkgs = {p.name: p for p in lock_image(_spec(app_index, ["demo-app==3.0"])).pip["linux-64"]}
    assert set(pkgs) == {"demo-app", "fastlib", "helper", "pip"}  # pytest (extra) and winonly (marker) left out
    fast = pkgs["fastlib"]
    assert fast.version == "2.0" and fast.filename == "fastlib-2.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert fast.url == f"{app_index.url}/files/{fast.filename}" and fast.sha256 == _wheel_sha(app_index, fast.filename)
    assert fast.size == (app_index.root / "files" / fast.filename).stat().st_size
    assert pkgs["demo-app"].dependencies == {"fastlib": ">=1.0", "helper": "*"} and pkgs["demo-app"].requested
    assert pkgs["helper"].version == "1.1" and not pkgs["helper"].requested


def test_uv_and_pip_give_byte_identical_lockfiles(app_index, monkeypatch):
    spec = _spec(app_index, ["demo-app==3.0"])
    with_uv = lock_image(spec).text
    monkeypatch.setenv("ENVCTL_RESOLVER", "pip")
    assert lock_image(spec).text == with_uv


def test_html_only_index_locks_the_same(app_index):
    spec = _spec(app_index, ["demo-app==3.0"])
    as_json = lock_image(spec).text
    app_index.mode = "html"
    assert lock_image(spec).text == as_json


def test_host_uv_and_pip_settings_are_ignored(app_index, monkeypatch, tmp_path):
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "http://127.0.0.1:9/other")
    monkeypatch.setenv("UV_CONSTRAINT", str(tmp_path / "nope.txt"))
    monkeypatch.setenv("UV_PYTHON_PLATFORM", "aarch64-apple-darwin")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    (tmp_path / "uv.toml").write_text('index-url = "http://127.0.0.1:9/simple"\n')
    monkeypatch.chdir(tmp_path)
    pkgs = {p.name: p for p in lock_image(_spec(app_index, ["demo-app==3.0"])).pip["linux-64"]}
    assert pkgs["fastlib"].filename.endswith("manylinux_2_28_x86_64.whl")


def test_upgrade_one_package_keeps_every_other_pin(app_index, tmp_path):
    old = lock_image(_spec(app_index, ["demo-app==3.0", "fastlib==1.0", "helper==1.0"]))
    path = tmp_path / "demo-env.conda-lock.yml"
    write_lock(path, old.text)
    previous = {"linux-64": load_lock(path)}
    spec = _spec(app_index, ["demo-app==3.0"])
    kept = {p.name: p.version for p in lock_image(spec, previous=previous).pip["linux-64"]}
    assert kept == {"demo-app": "3.0", "fastlib": "1.0", "helper": "1.0", "pip": "26.0"}
    up = {p.name: p.version for p in lock_image(spec, previous=previous, upgrade=("helper",)).pip["linux-64"]}
    assert up == {"demo-app": "3.0", "fastlib": "1.0", "helper": "1.1", "pip": "26.0"}


def test_no_matching_version_is_one_line(app_index):
    with pytest.raises(LockError) as info:
        lock_image(_spec(app_index, ["fastlib==9.9"]))
    text = str(info.value)
    assert "\n" not in text and text.startswith("no wheel of fastlib for Python 3.11 on linux-64")


def test_conflict_is_one_line(app_index):
    with pytest.raises(LockError) as info:
        lock_image(_spec(app_index, ["demo-app==3.0", "fastlib<1.0"]))
    assert "\n" not in str(info.value) and ("conflict" in str(info.value) or "no wheel of" in str(info.value))


def test_unreachable_index_names_the_url():
    spec = parse_spec({"version": 1, "name": "demo-env", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
                       "torch_source": "base", "python_source": "base", "channels": [], "pip": ["helper"],
                       "pip_index": {"index_url": "http://127.0.0.1:9/simple"}}, path="images/demo-env.yaml")
    with pytest.raises(LockError, match=r"package index http://127.0.0.1:9/simple is unreachable: connection refused"):
        lock_image(spec)


def test_wheel_pick_follows_pip_tag_priority():
    tags = supported_tags("3.11", "linux-64", "2.28")
    assert tags.index("cp311-cp311-manylinux_2_28_x86_64") < tags.index("cp311-abi3-manylinux_2_28_x86_64") \
        < tags.index("py3-none-any")
    names = ["a-1-cp311-abi3-manylinux_2_17_x86_64.whl", "a-1-cp311-cp311-manylinux_2_17_x86_64.whl",
             "a-1-cp311-cp311-manylinux_2_35_x86_64.whl", "a-1-cp312-cp312-manylinux_2_17_x86_64.whl",
             "a-1.tar.gz"]  # 2_35 needs a newer glibc, cp312 another Python, the sdist a build
    ranked = rank_wheels([DistFile(filename=n, url=f"https://x/{n}", sha256=None) for n in names], tags)
    assert [f.filename for f in ranked] == names[1::-1]


def test_uv_output_is_read_with_hashes_and_source():
    text = ("numpy==2.3.5 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # from https://pypi.org/simple\n"
            "torch==2.13.0+cpu \\\n    --hash=sha256:cc\n    # from file:///opt/wheels\n")
    pins = parse_compiled(text)
    assert [(p.name, p.version, sorted(p.hashes), p.source) for p in pins] == [
        ("numpy", "2.3.5", ["aa", "bb"], "https://pypi.org/simple"), ("torch", "2.13.0+cpu", ["cc"], "file:///opt/wheels")]


def test_uv_failure_text_becomes_one_line():
    stderr = ("  × No solution found when resolving dependencies:\n  ╰─▶ Because there is no version of "
              "fastlib==9.9 and you require fastlib==9.9, we can conclude that your requirements are "
              "unsatisfiable.\n")
    assert explain_failure(stderr, ["fastlib==9.9"], "3.11", "linux-64").startswith(
        "no wheel of fastlib for Python 3.11 on linux-64 (uv: Because there is no version of fastlib==9.9")


def test_relocking_keeps_the_pins_on_disk_that_the_spec_allows_unless_told_to_upgrade_all(app_index, tmp_path):
    # As pip-compile and uv keep an existing output's pins: a re-lock moves nothing by itself.
    old = lock_image(_spec(app_index, ["demo-app==3.0", "fastlib==1.0", "helper==1.0"]))
    path = tmp_path / "demo-env.conda-lock.yml"
    write_lock(path, old.text)
    current = {"linux-64": load_lock(path)}
    spec = _spec(app_index, ["demo-app==3.0"])  # the pins loosened: 2.0 and 1.1 are newer
    kept = {p.name: p.version for p in lock_image(spec, current=current).pip["linux-64"]}
    assert kept == {"demo-app": "3.0", "fastlib": "1.0", "helper": "1.0", "pip": "26.0"}
    fresh = {p.name: p.version for p in lock_image(spec, current=current, keep_current=False).pip["linux-64"]}
    assert fresh == {"demo-app": "3.0", "fastlib": "2.0", "helper": "1.1", "pip": "26.0"}
    # a spec pin the lock contradicts wins over the lock's preference
    moved = {p.name: p.version for p in lock_image(_spec(app_index, ["demo-app==3.0", "helper==1.1"]),
                                                   current=current).pip["linux-64"]}
    assert moved["helper"] == "1.1" and moved["fastlib"] == "1.0"


def test_a_target_python_the_host_lacks_is_neither_searched_for_nor_downloaded(app_index, tmp_path, monkeypatch):
    # the image's Python (3.14 here; the host runs another) is only a target: uv must not look
    # for it on the host nor download a managed one into the user's home (where it can, online;
    # offline it retries for seconds first)
    import sys
    from pathlib import Path

    from envctl.lock.uv import compile_command, resolve

    cmd = compile_command("uv", Path("in"), Path("out"), python="3.14", platform="linux-64", glibc="2.28",
                          index_url=app_index.simple, workdir=tmp_path)
    assert cmd[cmd.index("--python-version") + 1] == "3.14"
    assert cmd[cmd.index("--python") + 1] == sys.executable and "--no-python-downloads" in cmd
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    pkgs = resolve(["helper"], python="3.14", platform="linux-64", glibc="2.28", index_url=app_index.simple,
                   cache_root=tmp_path / "cache")
    assert [(p.name, p.version) for p in pkgs] == [("helper", "1.1")]
    assert not (home / ".local" / "share" / "uv").exists()


def test_a_relock_reads_the_metadata_of_the_files_on_disk_beside_uv_but_only_trusts_what_uv_names(app_index, tmp_path):
    # the lock on disk names helper's real sha256 at another host, whose .metadata lies about its
    # dependencies: the prefetch reads it beside uv, but uv's pylock names the index's own URL, so
    # the lie is neither used nor cached
    import shutil
    from dataclasses import replace

    from envctl.fsio import default_root
    spec = _spec(app_index, ["demo-app==3.0"])
    first = lock_image(spec)
    path = tmp_path / "demo-env.conda-lock.yml"
    write_lock(path, first.text)
    shutil.rmtree(default_root() / "pypi" / "metadata")  # cold: every file's metadata read again
    elsewhere = LocalIndex(root=tmp_path / "elsewhere")
    liar = make_wheel(tmp_path / "elsewhere" / "files", "helper", "1.1", "py3-none-any", ["evil>=6"])
    elsewhere.add("helper", liar)
    elsewhere, shutdown = serve(elsewhere)
    try:
        on_disk = load_lock(path)
        helper = next(p for p in on_disk.pip if p.name == "helper")
        forged = [replace(p, url=f"{elsewhere.url}/files/{liar.name}") if p is helper else p for p in on_disk.pip]
        again = lock_image(spec, current={"linux-64": replace(on_disk, pip=forged)})
        assert ("/files/" + liar.name + ".metadata") in [p for p, _s, _r in elsewhere.log]  # read beside uv
    finally:
        shutdown()
    assert again.text == first.text  # helper's dependencies and URL come from the index uv read
    cached = default_root() / "pypi" / "metadata" / f"{helper.sha256}.METADATA"
    assert "evil" not in cached.read_text()


def test_pylock_gives_the_wheel_the_target_installs_and_refuses_one_without_a_hash():
    from envctl.lock.pylock import preferences, read_wheels

    tags = supported_tags("3.11", "linux-64", "2.28")
    text = ('lock-version = "1.0"\ncreated-by = "uv"\n\n[[packages]]\nname = "a"\nversion = "1"\nwheels = [\n'
            '  { url = "https://x/a-1-cp311-cp311-manylinux_2_17_x86_64.whl", size = 5, hashes = { sha256 = "s1" } },\n'
            '  { url = "https://x/a-1-cp311-cp311-manylinux_2_28_x86_64.whl", size = 7, hashes = { sha256 = "s2" } },\n'
            '  { url = "https://x/a-1-cp311-cp311-manylinux_2_35_x86_64.whl", size = 9, hashes = { sha256 = "s3" } },\n'
            ']\n')
    [wheel] = read_wheels(text.replace("manylinux_2_28_x86_64.whl", "manylinux_2_28_x86_64.whl#sha256=s2"), tags)
    assert (wheel.filename, wheel.sha256, wheel.size) == ("a-1-cp311-cp311-manylinux_2_28_x86_64.whl", "s2", 7)
    assert wheel.url == "https://x/a-1-cp311-cp311-manylinux_2_28_x86_64.whl"  # a fragment is no part of the URL
    no_hash = text.replace('hashes = { sha256 = "s2" }', "hashes = {}").replace("manylinux_2_17", "macosx_11_0_arm64")
    with pytest.raises(LockError, match=r"uv resolved a==1 but gave no wheel with a URL and sha256"):
        read_wheels(no_hash, tags)
    with pytest.raises(LockError, match="pylock.toml envctl cannot read"):
        read_wheels("lock-version = [", tags)
    assert 'name = "we\\"ird"' in preferences(['we"ird==1.0'])


def test_envctl_lock_from_a_pipe_writes_the_lock_prints_plain_lines_and_never_imports_rich(app_index, tmp_path):
    # CI and scripts run `envctl lock` with stderr piped: status lines are plain text, and the
    # 20 ms of rich's imports are not paid (a terminal gets rich's spinner and colours)
    import os
    import subprocess
    import sys

    import yaml

    root = tmp_path / "proj"
    (root / "images").mkdir(parents=True)
    (root / "images" / "demo-env.yaml").write_text(yaml.safe_dump(
        {"version": 1, "name": "demo-env", "python": "3.11", "torch": "2.13.0", "cuda": "cpu",
         "torch_source": "base", "python_source": "base", "channels": [], "pip": ["demo-app==3.0"],
         "pip_index": {"index_url": app_index.simple}}))
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["ENVCTL_PROJECT"] = str(root)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", "lock", "demo-env"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m == "rich" or m.startswith("rich.")}
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert said[0] == "locking demo-env" and said[-1].startswith("wrote locks/demo-env.conda-lock.yml (linux-64: 0 conda + 4 pip")
    assert "fastlib-2.0-cp311-cp311-manylinux_2_28_x86_64.whl" in (root / "locks" / "demo-env.conda-lock.yml").read_text()
