"""Solve an image's conda packages with py-rattler: no conda or mamba executable.

The virtual packages the solve assumes (``__cuda``, ``__glibc``, ``__linux``,
``__unix``, ``__archspec``) come from the spec's CUDA variant and target
platform, never from the host: locking a GPU image on a laptop without a GPU
gives the GPU build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from envctl.errors import LockError
from envctl.net import check_reachable
from envctl.spec_sources import channel_url

OTHER_PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")


@dataclass(frozen=True)
class CondaPackage:
    name: str
    version: str
    build: str
    subdir: str
    url: str
    sha256: str
    md5: str
    filename: str
    dependencies: dict[str, str] = field(default_factory=dict)
    size: int | None = None


def virtual_packages(*, platform: str, cuda: str | None, glibc: str, linux: str, archspec: str) -> list[str]:
    """The virtual packages the target image offers, as 'name=version' strings."""
    vps = ["__unix=0", f"__linux={linux}", f"__glibc={glibc}", f"__archspec=1={archspec}"]
    if not platform.startswith("linux"):
        raise LockError(f"platform {platform} is not supported for images", hint="use linux-64 or linux-aarch64")
    if cuda:
        vps.append(f"__cuda={cuda}")
    return sorted(vps)


def _rattler_vps(vps: list[str]):
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    out = []
    for item in vps:
        name, version, *build = item.split("=")
        out.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build[0] if build else "0")))
    return out


def solve(specs: list[str], *, channels: list[str] | tuple[str, ...], platform: str, vps: list[str],
          constraints: list[str] | None = None, cache_dir: Path | None = None,
          check_network: bool = True) -> list[CondaPackage]:
    """Solve ``specs`` for ``platform`` against ``channels``; exact records with hashes."""
    if not specs:
        return []
    urls = [channel_url(c) for c in channels]
    if check_network:
        for url in urls:
            check_reachable(url + f"/{platform}/repodata.json", what="conda channel")
    settle_rattler_at_exit()
    import asyncio  # only conda solves need it: 20 ms off every pip-only lock

    return asyncio.run(_solve(specs, urls, platform, vps, constraints or [], cache_dir))


def settle_rattler_at_exit() -> None:
    """rattler's runtime threads can crash the interpreter's finalizer (exit 134/139) when it
    exits right after an async call; a short pause at exit lets them wind down."""
    import atexit
    import time

    if not getattr(settle_rattler_at_exit, "done", False):
        atexit.register(time.sleep, 0.05)
        settle_rattler_at_exit.done = True


async def _solve(specs, urls, platform, vps, constraints, cache_dir) -> list[CondaPackage]:
    import rattler
    from rattler.exceptions import SolverError

    gateway = rattler.Gateway(cache_dir=cache_dir) if cache_dir else rattler.Gateway()
    channels = [rattler.Channel(u) for u in urls]
    try:
        records = await rattler.solve(
            sources=channels, specs=specs, gateway=gateway, platforms=[platform, "noarch"],
            virtual_packages=_rattler_vps(vps), constraints=constraints or None,
            timestamp_policy="allow-missing")
    except SolverError as exc:
        raise LockError(await _explain(str(exc), specs, channels, gateway, platform),
                        hint="relax the conflicting pins in the spec's conda list") from None
    except Exception as exc:  # rattler raises plain errors for fetch problems
        if "Fetch" in type(exc).__name__ or "fetch" in str(exc).lower():
            raise LockError(f"cannot read conda channel {', '.join(urls)}: {_first_line(str(exc))}",
                            hint="check the channel URL and the network") from None
        raise
    return sorted((_package(r) for r in records), key=lambda p: p.name)


def _package(record) -> CondaPackage:
    deps: dict[str, str] = {}
    for dep in record.depends:
        name, _, rest = dep.strip().partition(" ")
        deps[name] = rest.strip() or "*"
    url = str(record.url)
    return CondaPackage(
        name=record.name.normalized, version=str(record.version), build=str(record.build), subdir=record.subdir,
        url=url, sha256=_hex(record.sha256), md5=_hex(record.md5), filename=record.file_name,
        dependencies=dict(sorted(deps.items())), size=record.size)


def _hex(value) -> str:
    if value is None:
        return ""
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text)


async def _explain(message: str, specs, channels, gateway, platform) -> str:
    """The solver's own words on one line, plus where a package missing here does exist."""
    body = message.replace("Cannot solve the request because of:", "")
    text = " ".join(ln.strip(" \u2502\u251c\u2514\u2500") for ln in body.splitlines() if ln.strip())
    notes = []
    for name in sorted(set(re.findall(r"No candidates were found for ([A-Za-z0-9_.-]+)", message))):
        if await _has_package(gateway, channels, platform, name):
            continue  # it exists here, only not in the versions asked for: the solver said so
        elsewhere = [other for other in OTHER_PLATFORMS
                     if other != platform and await _has_package(gateway, channels, other, name)]
        notes.append(f"{name} exists only for {', '.join(elsewhere)}, not {platform}" if elsewhere
                     else f"{name} is in none of the channels")
    return f"conda solve failed for {platform}: {text}" + "".join(f"; {n}" for n in notes)


async def _has_package(gateway, channels, platform: str, name: str) -> bool:
    subdirs = [platform] if platform == "noarch" else [platform, "noarch"]
    try:
        found = await gateway.query(channels, subdirs, [name], recursive=False)
    except Exception:  # noqa: BLE001 - a channel without this subdir simply has no such package
        return False
    return any(len(group) for group in found)
