"""Prove the offline fixture channel behaves as the envctl tests expect.

Everything here runs offline against ``tests/fixtures/conda_channel.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pathlib
import time

import pytest
import rattler
from rattler import (
    BuildString,
    Gateway,
    GenericVirtualPackage,
    PackageName,
    RepoDataRecord,
    Version,
)
from rattler.exceptions import GatewayError, SolverError

try:  # rootdir on sys.path (python -m pytest / tests is a package)
    from tests.fixtures.conda_channel import PACKAGES, PREFIX_PLACEHOLDER, build_channel
except ImportError:  # plain `pytest`, rootdir-less "prepend" import of tests/
    from fixtures.conda_channel import PACKAGES, PREFIX_PLACEHOLDER, build_channel

LINUX = ["linux-64", "noarch"]


def vp(name: str, version: str, build: str = "0") -> GenericVirtualPackage:
    return GenericVirtualPackage(PackageName(name), Version(version), BuildString(build))


LINUX_VPS = [vp("__unix", "0"), vp("__linux", "6.0"), vp("__glibc", "2.36")]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> pathlib.Path:
    return build_channel(tmp_path_factory.mktemp("fixture-channel"))


@pytest.fixture
def gateway(tmp_path) -> Gateway:
    # Own repodata cache per test: never touches ~/.cache/rattler.
    return Gateway(cache_dir=tmp_path / "rattler-repodata-cache")


def solve(channel, specs, gateway, *, platforms=LINUX, virtual_packages=(), **kw):
    return run(
        rattler.solve(
            [channel.as_uri()],
            specs,
            gateway=gateway,
            platforms=platforms,
            virtual_packages=list(virtual_packages),
            **kw,
        )
    )


def nvb(records) -> dict[str, tuple[str, str]]:
    return {r.name.normalized: (str(r.version), str(r.build)) for r in records}


# --------------------------------------------------------------------------- build


def test_build_is_fast_deterministic_and_complete(tmp_path):
    t0 = time.perf_counter()
    a = build_channel(tmp_path / "a")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5, elapsed
    b = build_channel(tmp_path / "b")

    def digest(root):
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    da, db = digest(a), digest(b)
    assert da == db  # byte-identical archives + repodata across builds
    expected = {f"{s.subdir}/{s.filename}" for s in PACKAGES}
    assert {k for k in da if k.endswith(".conda")} == expected
    for sub in ("linux-64", "noarch", "osx-arm64"):
        repodata = json.loads((a / sub / "repodata.json").read_text())
        names = set(repodata["packages.conda"])
        assert names == {s.filename for s in PACKAGES if s.subdir == sub}
        for fn, rec in repodata["packages.conda"].items():
            assert rec["sha256"] == da[f"{sub}/{fn}"]


# --------------------------------------------------------------------------- solve


def test_transitive_solve_picks_latest_zlibx(channel, gateway):
    records = solve(channel, ["footools"], gateway)
    assert nvb(records) == {
        "footools": ("2.0.0", "h2c3d4e5_0"),
        "libfoo": ("1.0.0", "h1b2c3d4_0"),
        "zlibx": ("1.3.0", "h0a1b2c3_0"),
    }
    by_name = {r.name.normalized: r for r in records}
    z = by_name["zlibx"]
    assert z.url == f"{channel.as_uri()}/linux-64/zlibx-1.3.0-h0a1b2c3_0.conda"
    assert z.file_name == "zlibx-1.3.0-h0a1b2c3_0.conda"
    assert z.subdir == "linux-64"
    assert z.channel == channel.as_uri() + "/"
    assert z.sha256.hex() == hashlib.sha256((channel / "linux-64" / z.file_name).read_bytes()).hexdigest()
    assert len(z.md5.hex()) == 32 and z.size > 0
    assert by_name["footools"].depends == ["libfoo 1.0.*", "zlibx"]


def test_pinned_spec_keeps_old_zlibx(channel, gateway):
    records = solve(channel, ["footools", "zlibx 1.2.*"], gateway)
    assert nvb(records)["zlibx"] == ("1.2.0", "h0a1b2c3_0")


def test_locked_packages_keep_old_zlibx(channel, gateway):
    old = solve(channel, ["zlibx 1.2.*"], gateway)
    records = solve(channel, ["footools"], gateway, locked_packages=old)
    assert nvb(records)["zlibx"][0] == "1.2.0"
    # ...and without the lock the same request upgrades.
    assert nvb(solve(channel, ["footools"], gateway))["zlibx"][0] == "1.3.0"


def test_noarch_package_solves(channel, gateway):
    records = solve(channel, ["pyshim"], gateway)
    assert nvb(records) == {"pyshim": ("3.11.0", "0")}
    assert records[0].subdir == "noarch"


def test_unsatisfiable_raises_solver_error(channel, gateway):
    with pytest.raises(SolverError) as exc_info:
        solve(channel, ["oldzlib-user", "footools"], gateway)
    msg = str(exc_info.value)
    assert msg.startswith("Cannot solve the request because of:")
    assert "oldzlib-user" in msg and "zlibx <1.0" in msg


def test_gpukit_picks_cuda_build_only_with_cuda_virtual_package(channel, gateway):
    with_cuda = solve(channel, ["gpukit"], gateway, virtual_packages=[*LINUX_VPS, vp("__cuda", "12.6")])
    assert nvb(with_cuda) == {"gpukit": ("1.0.0", "cuda_0")}
    without = solve(channel, ["gpukit"], gateway, virtual_packages=LINUX_VPS)
    assert nvb(without) == {"gpukit": ("1.0.0", "cpu_0")}
    too_old = solve(channel, ["gpukit"], gateway, virtual_packages=[*LINUX_VPS, vp("__cuda", "11.8")])
    assert nvb(too_old) == {"gpukit": ("1.0.0", "cpu_0")}
    # Omitting virtual_packages entirely means "none" (no host detection).
    assert nvb(solve(channel, ["gpukit"], gateway, virtual_packages=())) == {"gpukit": ("1.0.0", "cpu_0")}


def test_forcing_cuda_build_without_cuda_is_unsatisfiable(channel, gateway):
    with pytest.raises(SolverError, match="__cuda"):
        solve(channel, ["gpukit * cuda_*"], gateway, virtual_packages=LINUX_VPS)


def test_other_platform_only_package(channel, gateway):
    with pytest.raises(SolverError, match="No candidates were found for macstuff"):
        solve(channel, ["macstuff"], gateway)
    records = solve(channel, ["macstuff"], gateway, platforms=["osx-arm64", "noarch"])
    assert nvb(records) == {"macstuff": ("1.0.0", "h4e5f6a7_0")}
    assert records[0].subdir == "osx-arm64"


def test_unreachable_channel_raises_gateway_error(gateway):
    with pytest.raises(GatewayError, match="Connection refused"):
        run(rattler.solve(["http://127.0.0.1:9/"], ["footools"], gateway=gateway, platforms=LINUX, virtual_packages=[]))


def test_missing_local_channel_raises_gateway_error(tmp_path, gateway):
    with pytest.raises(GatewayError, match="could not find subdir 'noarch'"):
        solve(tmp_path / "nope", ["footools"], gateway)


# --------------------------------------------------------------------------- install


def _conda_meta(prefix: pathlib.Path) -> set[str]:
    return {p.name for p in (prefix / "conda-meta").glob("*.json")}


def test_install_writes_conda_meta_for_exactly_the_solved_packages(channel, gateway, tmp_path):
    records = solve(channel, ["footools"], gateway)
    prefix = tmp_path / "env"
    run(
        rattler.install(
            records,
            target_prefix=prefix,
            cache_dir=tmp_path / "pkgs",
            show_progress=False,
        )
    )
    expected = {r.file_name.removesuffix(".conda") + ".json" for r in records}
    assert _conda_meta(prefix) == expected == {
        "footools-2.0.0-h2c3d4e5_0.json",
        "libfoo-1.0.0-h1b2c3d4_0.json",
        "zlibx-1.3.0-h0a1b2c3_0.json",
    }
    meta = json.loads((prefix / "conda-meta" / "zlibx-1.3.0-h0a1b2c3_0.json").read_text())
    z = next(r for r in records if r.name.normalized == "zlibx")
    assert meta["sha256"] == z.sha256.hex() and meta["url"] == z.url
    assert meta["files"] == ["share/zlibx/VERSION"]
    assert (prefix / "share" / "zlibx" / "VERSION").read_text() == "1.3.0 h0a1b2c3_0\n"
    # Prefix placeholder in the text-mode script was replaced with the real prefix.
    script = (prefix / "bin" / "footools").read_text()
    assert PREFIX_PLACEHOLDER not in script and f'PREFIX="{prefix}"' in script


def test_offline_install_from_lock_info_and_flat_folder(channel, gateway, tmp_path):
    """Rebuild installable records from (url, sha256, md5, fn) + a folder of .conda files."""
    solved = solve(channel, ["footools"], gateway)
    remote = "https://conda.anaconda.org/envctl-test/"
    lock = [
        {
            "url": f"{remote}{r.subdir}/{r.file_name}",
            "sha256": r.sha256.hex(),
            "md5": r.md5.hex(),
            "fn": r.file_name,
        }
        for r in solved
    ]
    folder = tmp_path / "pkgs-folder"
    folder.mkdir()
    for r in solved:
        (folder / r.file_name).write_bytes((channel / r.subdir / r.file_name).read_bytes())

    async def rebuild():
        out = []
        for entry in lock:
            rec = await RepoDataRecord.from_package_archive(folder / entry["fn"])
            # rattler does NOT verify hashes of file:// packages: do it here.
            assert rec.sha256.hex() == entry["sha256"]
            rec.md5 = bytes.fromhex(entry["md5"])  # from_package_archive leaves md5=None
            rec.channel = remote  # from_package_archive leaves channel=None
            out.append(rec)
        return out

    records = run(rebuild())
    assert {r.url for r in records} == {(folder / e["fn"]).as_uri() for e in lock}
    prefix = tmp_path / "env"
    run(rattler.install(records, target_prefix=prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    assert _conda_meta(prefix) == {e["fn"].removesuffix(".conda") + ".json" for e in lock}
    meta = json.loads((prefix / "conda-meta" / "libfoo-1.0.0-h1b2c3d4_0.json").read_text())
    entry = next(e for e in lock if e["fn"].startswith("libfoo-"))
    assert meta["sha256"] == entry["sha256"] and meta["md5"] == entry["md5"]
    assert meta["channel"] == remote
    assert meta["depends"] == ["zlibx >=1.2"]
