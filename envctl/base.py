"""``envctl base``: make the local Debian base image (debootstrap, then import).

No registry can be reached on air-gapped clusters and CI machines, so the base
every image starts from is made here from Debian's packages.  It carries g++
and the Python headers: torch.compile needs a C++ compiler inside the image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from envctl import children
from envctl.engine import Engine
from envctl.errors import EnvctlError

DEFAULT_REF = "envctl/debian:bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
TOOLCHAIN = ("g++", "python3-dev")


@dataclass(frozen=True)
class BasePlan:
    ref: str
    suite: str
    mirror: str
    packages: tuple[str, ...]

    def debootstrap_cmd(self, rootfs: Path) -> list[str]:
        return ["debootstrap", "--variant=minbase", f"--include={','.join(self.packages)}", self.suite,
                str(rootfs), self.mirror]


@dataclass(frozen=True)
class BaseResult:
    ref: str
    image_id: str
    size: int
    created: bool
    seconds: float


def plan_base(*, ref: str = DEFAULT_REF, suite: str = "bookworm", mirror: str = MIRROR,
              toolchain: bool = True) -> BasePlan:
    return BasePlan(ref=ref, suite=suite, mirror=mirror, packages=PACKAGES + (TOOLCHAIN if toolchain else ()))


def make_base(engine: Engine, plan: BasePlan, *, rebuild: bool = False,
              progress: Callable[[str], None] = lambda _m: None) -> BaseResult:
    """Idempotent: an existing image of that name is kept unless ``rebuild``."""
    start = time.monotonic()
    existing = engine.image(plan.ref)
    if existing and not rebuild:
        return BaseResult(plan.ref, existing.id, existing.size, False, time.monotonic() - start)
    if shutil.which("debootstrap") is None:
        raise EnvctlError("debootstrap is not installed", hint="apt-get install -y debootstrap (as root)")
    tmp = tempfile.mkdtemp(prefix="envctl-base-", dir=_scratch())
    try:
        rootfs = Path(tmp) / "rootfs"
        progress(f"debootstrap {plan.suite} with {', '.join(plan.packages)} (about a minute)")
        proc = _run_group(plan.debootstrap_cmd(rootfs))
        if proc.returncode != 0:
            tail = " | ".join(proc.stdout.strip().splitlines()[-3:] + proc.stderr.strip().splitlines()[-3:])
            raise EnvctlError(f"debootstrap of {plan.suite} from {plan.mirror} failed: {tail}",
                              hint="debootstrap needs root and access to the Debian mirror")
        # Keep the image lean: apt lists and caches are not needed at run time, and the wheels
        # ensurepip bundles are not either (envctl's environments get pip from their lock).
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/python-wheels"):
            for item in (rootfs / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        _settle_etc(rootfs)
        progress(f"importing {plan.ref}")
        tar = Path(tmp) / "rootfs.tar"
        packed = _run_group(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar), "."])
        if packed.returncode != 0:
            raise EnvctlError(f"packing the root file system failed: {packed.stderr.strip()[-300:]}",
                              hint=f"check the free space of {tmp}'s disk (TMPDIR chooses it)")
        image_id = engine.import_rootfs(tar, plan.ref, changes=[
            'CMD ["/bin/bash"]', "ENV LANG=C.UTF-8",
            f"LABEL org.opencontainers.image.title={plan.ref} envctl.base.packages={','.join(plan.packages)}"])
    finally:  # also on Ctrl-C and SIGTERM: a half-made root file system is hundreds of MB
        _remove_scratch(Path(tmp))
    info = engine.image(plan.ref)
    return BaseResult(plan.ref, image_id, info.size if info else 0, True, time.monotonic() - start)


def _settle_etc(rootfs: Path) -> None:
    """Give the base the /etc files every RUN step has mounted over it.

    BuildKit binds /etc/hosts and /etc/resolv.conf into each RUN; where the base lacks
    one it creates a stub and removes it afterwards, which leaves /etc with the build's
    time in every layer, so no two builds would give the same layer digests.  The
    host's resolv.conf that debootstrap copied is not the image's business either.
    """
    etc = rootfs / "etc"
    (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")
    (etc / "hostname").write_text("localhost\n")


def _scratch() -> str | None:
    """Where the root file system is made: TMPDIR where the user set it, else /var/tmp (a
    /tmp in RAM may be too small for the ~400 MB it takes), else Python's default."""
    if os.environ.get("TMPDIR") or not Path("/var/tmp").is_dir():
        return None  # tempfile's choice, which honours TMPDIR
    return "/var/tmp"


def _run_group(cmd: list[str]) -> subprocess.CompletedProcess:
    """``cmd`` in a process group of its own.  Interrupted (Ctrl-C, SIGTERM), the whole group is
    killed and waited for: debootstrap is a shell script whose wget and dpkg would otherwise go
    on writing into the root file system while it is being removed."""
    proc: subprocess.Popen | None = None
    try:
        with children.interrupts_deferred():
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
        out, err = proc.communicate()
    except BaseException:
        if proc is None:
            raise
        children.kill(proc, group=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the group's other members are not our children
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _remove_scratch(folder: Path) -> None:
    """Unmount what debootstrap mounted inside (proc, sys: never to be removed file by file),
    deepest first, then remove the folder."""
    prefix = str(folder.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)
