"""Locking against the offline fixture channel (conda) and the local wheel folder (pip)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envctl.catalog import Project
from envctl.errors import LockError, StaleLockError
from envctl.lock import load_lock, lock_image, require_current_lock, write_lock
from envctl.lock.state import lock_state
from envctl.spec import parse_spec

try:
    from tests.fixtures.conda_channel import build_channel
except ImportError:  # pragma: no cover - pytest rootdir without the tests package
    from fixtures.conda_channel import build_channel


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> Path:
    return build_channel(tmp_path_factory.mktemp("channel"))


def fixture_spec(channel: Path, conda: list[str], *, cuda: str = "cpu", name: str = "fixture-env") -> dict:
    return {"version": 1, "name": name, "python": "3.11", "torch": "2.13.0", "cuda": cuda,
            "torch_source": "base", "python_source": "base", "channels": [str(channel)],
            "conda": conda}


def spec_of(data: dict, path: str = "images/fixture-env.yaml"):
    # torch_source base: the fixture channel has no pytorch, the lock holds the listed packages only.
    return parse_spec(data, path=path)


def test_transitive_solve_pins_every_package_with_hashes(channel):
    result = lock_image(spec_of(fixture_spec(channel, ["footools"])))
    pkgs = {p.name: p for p in result.conda["linux-64"]}
    assert set(pkgs) == {"footools", "libfoo", "zlibx"}
    assert pkgs["zlibx"].version == "1.3.0"
    summary = result.summary()["platforms"]["linux-64"]
    assert summary["conda"] == 3 and summary["bytes"] == sum(p.size for p in pkgs.values()) > 0
    for p in pkgs.values():
        assert len(p.sha256) == 64 and len(p.md5) == 32 and p.url.endswith(p.filename)


def test_lockfile_is_byte_identical_and_read_by_conda_lock(channel, tmp_path):
    from conda_lock.lockfile import parse_conda_lock_file

    spec = spec_of(fixture_spec(channel, ["footools", "pyshim"]))
    first, second = lock_image(spec), lock_image(spec)
    assert first.text == second.text
    path = tmp_path / "fixture-env.conda-lock.yml"
    assert write_lock(path, first.text) is True
    assert write_lock(path, second.text) is False  # unchanged
    parsed = parse_conda_lock_file(path)
    names = sorted(p.name for p in parsed.package)
    assert names == ["footools", "libfoo", "pyshim", "zlibx"]
    assert all(p.hash.md5 and p.hash.sha256 for p in parsed.package)
    env = load_lock(path)
    assert env.lock_hash == first.lock_hash and env.inputs_hash == spec.lock_inputs_hash()


def test_virtual_cuda_comes_from_the_spec_not_the_host(channel):
    # This machine has no GPU; the cu126 spec must still get the CUDA build.
    gpu = lock_image(spec_of(fixture_spec(channel, ["gpukit"], cuda="cu126")))
    cpu = lock_image(spec_of(fixture_spec(channel, ["gpukit"], cuda="cpu")))
    assert gpu.conda["linux-64"][0].build == "cuda_0"
    assert cpu.conda["linux-64"][0].build == "cpu_0"
    assert "__cuda=12.6" in gpu.text


def test_unsatisfiable_names_conflict_and_keeps_old_lock(channel, tmp_path):
    good = lock_image(spec_of(fixture_spec(channel, ["footools"])))
    path = tmp_path / "fixture-env.conda-lock.yml"
    write_lock(path, good.text)
    before = path.read_bytes()
    with pytest.raises(LockError) as info:
        lock_image(spec_of(fixture_spec(channel, ["footools", "oldzlib-user"])))
    assert "oldzlib-user 1.0.0 would require zlibx <1.0" in str(info.value)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_package_only_for_another_platform(channel):
    with pytest.raises(LockError, match="macstuff exists only for osx-arm64, not linux-64"):
        lock_image(spec_of(fixture_spec(channel, ["macstuff"])))


def test_unreachable_channel_names_url_and_reason():
    data = fixture_spec(Path("/nonexistent"), ["footools"])
    data["channels"] = ["http://127.0.0.1:9/mirror"]
    with pytest.raises(LockError, match=r"http://127.0.0.1:9/mirror/linux-64/repodata.json is unreachable: "
                                        r"connection refused"):
        lock_image(spec_of(data))


def test_upgrade_one_package_keeps_the_others(channel, tmp_path):
    spec = spec_of(fixture_spec(channel, ["footools", "zlibx"]))
    # An old lock with zlibx 1.2.0: made with a pin, then the pin is lifted.
    pinned = lock_image(spec_of(fixture_spec(channel, ["footools", "zlibx 1.2.*"])))
    path = tmp_path / "fixture-env.conda-lock.yml"
    write_lock(path, pinned.text)
    previous = {"linux-64": load_lock(path)}
    kept = lock_image(spec, previous=previous)  # re-lock without --upgrade keeps zlibx 1.2.0
    assert {p.name: p.version for p in kept.conda["linux-64"]}["zlibx"] == "1.2.0"
    upgraded = lock_image(spec, previous=previous, upgrade=("zlibx",))
    versions = {p.name: p.version for p in upgraded.conda["linux-64"]}
    assert versions["zlibx"] == "1.3.0" and versions["libfoo"] == "1.0.0"
    with pytest.raises(LockError, match="cannot upgrade nothere"):
        lock_image(spec, previous=previous, upgrade=("nothere",))


def test_check_detects_stale_and_missing(project):
    proj = Project(project)
    spec = proj.resolve("pytorch-2.13-cpu")
    path = proj.lock_path(spec.name)
    assert lock_state(spec, path).state == "locked"
    spec_path = proj.spec_path(spec.name)
    data = yaml.safe_load(spec_path.read_text())
    data["pip"] = ["numpy==2.3.4"]
    spec_path.write_text(yaml.safe_dump(data))
    changed = proj.resolve("pytorch-2.13-cpu")
    assert lock_state(changed, path).state == "stale"
    with pytest.raises(StaleLockError, match="changed since it was locked"):
        require_current_lock(changed, path)
    assert lock_state(proj.resolve("pytorch-2.8-cu126"), proj.lock_path("pytorch-2.8-cu126")).state == "not locked"


def test_hand_edited_lock_is_detected_and_refused(project):
    proj = Project(project)
    spec = proj.resolve("pytorch-2.13-cpu")
    path = proj.lock_path(spec.name)
    path.write_text(path.read_text().replace("version: 2.3.5", "version: 1.0.0", 1))
    assert lock_state(spec, path).state == "edited"
    with pytest.raises(StaleLockError, match="edited by hand"):
        require_current_lock(spec, path)


def test_written_lockfiles_are_readable_by_everyone(tmp_path):
    import os

    path = tmp_path / "x.conda-lock.yml"
    write_lock(path, "# AUTO GENERATED by envctl - DO NOT EDIT\n")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_refuses_to_overwrite_a_foreign_file(tmp_path):
    path = tmp_path / "x.conda-lock.yml"
    path.write_text("hand written\n")
    with pytest.raises(LockError, match="not written by envctl"):
        write_lock(path, "new\n")
    assert path.read_text() == "hand written\n"


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(p.name.removesuffix(".conda-lock.yml") for p in (REPO / "locks").glob("*.conda-lock.yml")))
def test_conda_locks_own_parser_reads_every_committed_lock_to_the_same_packages(name):
    # envctl reads locks as plain YAML for speed; conda-lock (and micromamba) must agree with it.
    from conda_lock.lockfile import parse_conda_lock_file

    from envctl.lock import load_lock

    path = REPO / "locks" / f"{name}.conda-lock.yml"
    theirs = parse_conda_lock_file(path)
    ours = load_lock(path)
    assert sorted((d.name, d.version, d.url, d.hash.sha256) for d in theirs.package if d.manager == "pip") == \
        sorted((p.name, p.version, p.url, p.sha256) for p in ours.pip)
    assert sorted((d.name, d.version, d.hash.md5) for d in theirs.package if d.manager == "conda") == \
        sorted((p.name, p.version, p.md5) for p in ours.conda)


def _render_with_conda_lock_models(spec, result) -> str:
    """The lockfile body as conda-lock's own models write it: the reference for envctl's render."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta
    from conda_lock.models.channel import Channel

    from envctl.lock import conda as condasolve
    from envctl.lock import target

    packages = []
    for platform in spec.platforms:
        for p in result.conda.get(platform, []):
            packages.append(LockedDependency(
                name=p.name, version=p.version, manager="conda", platform=platform,
                dependencies=p.dependencies, url=p.url, hash=HashModel(md5=p.md5, sha256=p.sha256),
                build=p.build, categories={"main"}))
        for p in result.pip.get(platform, []):
            packages.append(LockedDependency(
                name=p.name, version=p.version, manager="pip", platform=platform,
                dependencies=p.dependencies, url=p.url, hash=HashModel(sha256=p.sha256), categories={"main"}))
    t = target(spec.platforms[0])
    meta = LockMeta(
        content_hash={pl: spec.lock_inputs_hash() for pl in spec.platforms},
        channels=[Channel.from_string(condasolve.channel_url(c)) for c in spec.channels],
        platforms=list(spec.platforms), sources=[f"images/{spec.name}.yaml"],
        custom_metadata={
            "envctl.image": spec.name, "envctl.python": spec.python, "envctl.cuda": spec.cuda,
            "envctl.python_source": spec.python_source, "envctl.torch": spec.torch,
            "envctl.virtual_packages": ",".join(condasolve.virtual_packages(
                platform=spec.platforms[0], cuda=spec.cuda_version, **t))})
    lockfile = Lockfile(package=packages, metadata=meta)
    lockfile.alphasort_inplace()
    lockfile.filter_virtual_packages_inplace()
    return yaml.safe_dump(lockfile.to_v1().dict_for_output(), sort_keys=False, default_flow_style=False)


def test_lockfile_body_is_what_conda_locks_own_models_write(channel, monkeypatch):
    # conda and pip packages, two platforms, https channels (one with a password) beside the fixture folder.
    from envctl.lock import LockResult, render

    monkeypatch.setenv("MY_CHANNEL_PASSWORD", "s3cretpw")
    data = fixture_spec(channel, ["footools", "pyshim"]) | {
        "platforms": ["linux-64", "linux-aarch64"],
        "channels": [str(channel), "https://conda.example.org/forge/", "https://:s3cretpw@conda.example.org/private"]}
    spec = spec_of(data)
    solved = lock_image(spec_of(fixture_spec(channel, ["footools", "pyshim"])))
    committed = load_lock(REPO / "locks" / "pytorch-2.14-cu130.conda-lock.yml")
    result = LockResult(spec=spec, text="", lock_hash="")
    for platform in spec.platforms:
        result.conda[platform] = list(reversed(solved.conda["linux-64"]))
        result.pip[platform] = list(reversed(committed.pip))
    ours = render(spec, result)[0].split("\n", 5)[5]  # after envctl's comment header
    assert ours == _render_with_conda_lock_models(spec, result)
    assert "manager: conda" in ours and "manager: pip" in ours and "linux-aarch64" in ours


def test_a_channel_password_goes_through_conda_locks_env_var_substitution(monkeypatch):
    from envctl.lock.lockfile import _channel

    monkeypatch.setenv("MY_CHANNEL_PASSWORD", "s3cretpw")
    channel = _channel("https://:s3cretpw@conda.example.org/private")
    assert "s3cretpw" not in str(channel) and channel["used_env_vars"] == ["MY_CHANNEL_PASSWORD"]
