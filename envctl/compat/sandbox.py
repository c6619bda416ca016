"""The sandbox artifacts run in under a local interpreter (``compat run --python``).

Under ``--image`` the container is the sandbox.  On the host envctl builds the same kind from what
Debian has, no Docker: bubblewrap where it works (a fresh mount namespace that holds only the
system's /usr, the interpreter's folders and the staged artifacts, read-only, and a private
writable home), else util-linux's unshare (the host's mounts, all made read-only in a mount
namespace of the run's own, but the home).  Both cut the network and give the run a pid namespace
of its own, and both run it through prlimit (memory, processes, CPU time, file size) and setpriv
(uid and gid 65534, no groups, no capabilities, no_new_privs).  Where neither can be set up,
artifacts are refused unless the user passes ``--trust``.

Every run, sandboxed or trusted, is a session of its own whose process group is killed on a
timeout, Ctrl-C or SIGTERM; the sandbox's pid namespace takes any process that left the group.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from envctl import children
from envctl.errors import EnvctlError

NOBODY = 65534
# The image sandbox's caps (execute.LIMITS), per process.  RLIMIT_DATA rather than RLIMIT_AS: CUDA
# reserves far more address space than it ever backs, and the data limit counts what is written.
MEMORY = 2 << 30
PROCESSES = 512  # RLIMIT_NPROC counts every process and thread of uid 65534 on the host
FILE_SIZE = 2 << 30
# What of the caller's environment reaches the sandbox: no tokens, no PYTHONPATH, no proxies.
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LD_LIBRARY_PATH")
# What a dynamically linked interpreter needs of /etc; the rest (shadow, ssh keys) stays out.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
       "alternatives")
_ROOTS = ("import json, os, sys; print(json.dumps([sys.prefix, sys.exec_prefix, sys.base_prefix, "
          "sys.base_exec_prefix, os.path.dirname(os.path.realpath(sys.executable)), *sys.path]))")
# unshare's answer to bwrap's read-only binds: in the run's own mount namespace every mount is
# made read-only (the host's /tmp, /var/tmp and /dev/shm are writable by anyone), then the home is
# made writable again.  A mount point whose name /proc/self/mounts escapes (a space) stays as it is.
_READ_ONLY = ('home=$1; shift; while read -r _ m _; do mount -o remount,bind,ro "$m" 2>/dev/null; done '
              '</proc/self/mounts; mount --bind "$home" "$home" && mount -o remount,bind,rw "$home" "$home" '
              '|| exit 121; exec "$@"')
_UNSHARE = ("--net", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private")
_TRUST = "pass --trust to run them unsandboxed (only artifacts you trust)"


class SandboxError(EnvctlError):
    """No sandbox can be set up for a local interpreter: the run is refused (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Sandbox:
    """How one interpreter runs artifacts: kind is bwrap, unshare or trusted (no sandbox)."""

    kind: str
    python: str
    roots: tuple[str, ...] = ()  # the interpreter's folders: bound read-only under bwrap

    @property
    def confined(self) -> bool:
        return self.kind != "trusted"

    def prepare(self, stage: Path) -> Path:
        """Open ``stage`` (a fresh root-owned folder holding what the run reads) to the sandbox user,
        read-only, and make the run's private writable folder in it: HOME, TMPDIR, working directory."""
        stage.chmod(0o755)
        if self.kind == "unshare":  # bwrap binds it wherever it is
            check_reachable(f"the staging folder {stage} (under TMPDIR)", [str(stage)], above=True)
        home = stage / "home"
        home.mkdir(mode=0o700)
        if self.confined and os.geteuid() == 0:
            os.chown(home, NOBODY, NOBODY)
        return home

    def command(self, argv: list[str], *, stage: Path, home: Path, seconds: float, gpu: bool) -> list[str]:
        """``argv`` (the interpreter and its arguments) wrapped in this sandbox.  ``stage`` is the
        root-owned folder holding what the run reads; ``seconds`` bounds its CPU time."""
        if not self.confined:
            return argv
        cpu = math.ceil(seconds) * (os.cpu_count() or 1)  # every thread's time counts
        inner = [_tool("prlimit"), f"--data={MEMORY}", f"--nproc={PROCESSES}", f"--cpu={cpu}",
                 f"--fsize={FILE_SIZE}", "--"]
        if os.geteuid() == 0:  # an unprivileged caller is unprivileged already (bwrap maps it)
            inner += [_tool("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                      "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        if self.kind == "unshare":
            return [_tool("unshare"), *_UNSHARE, "--", _tool("sh"), "-c", _READ_ONLY, "sh", str(home), *inner, *argv]
        return [*_bwrap_base(gpu), *_binds([*self.roots, str(stage)], readonly=True),
                *_binds([str(home)], readonly=False), "--chdir", str(home), "--", *inner, *argv]

    def environ(self, home: Path) -> dict[str, str] | None:
        """The run's environment (None: the caller's, when trusted)."""
        if not self.confined:
            return None
        return _kept_env() | {"HOME": str(home), "TMPDIR": str(home), "USER": "nobody", "LOGNAME": "nobody",
                              "PYTHONDONTWRITEBYTECODE": "1"}


def choose(python: str, *, trust: bool = False, kinds: tuple[str, ...] = ("bwrap", "unshare")) -> Sandbox:
    """The strongest sandbox this host can set up for ``python`` (tried in ``kinds`` order), or a
    SandboxError saying why there is none.  ``trust`` skips the sandbox."""
    if trust:
        return Sandbox("trusted", python)
    why = []
    for kind in kinds:
        problem = _try(kind)
        if problem is None:
            # bwrap binds the interpreter's folders wherever they are; unshare leaves the host's
            check_reachable(f"the interpreter {python}", [os.path.dirname(os.path.abspath(python)),
                                                          os.path.realpath(python)], above=kind == "unshare")
            return Sandbox(kind, python, _roots(python))
        why.append(problem)
    root = "" if os.geteuid() == 0 else " or run envctl as root"
    raise SandboxError(f"cannot sandbox the artifacts run by {python}: {'; '.join(why)}",
                       hint=f"install bubblewrap (apt-get install bubblewrap){root}; or {_TRUST}")


def _kept_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def _tool(name: str) -> str:
    """The tool's real path: inside bwrap only the system's folders are there, not PATH's links."""
    found = shutil.which(name)
    return os.path.realpath(found) if found else name


def _try(kind: str) -> str | None:
    """None when ``kind`` works on this host (a real namespace is made), else why not."""
    if kind == "unshare":
        if os.geteuid() != 0:
            return "unshare and setpriv need root to cut the network and drop to uid 65534"
        missing = [t for t in ("unshare", "setpriv", "prlimit", "mount", "sh") if shutil.which(t) is None]
        if missing:
            return f"{', '.join(missing)} not found (Debian's util-linux, mount and dash)"
        cmd = [_tool("unshare"), *_UNSHARE, "--", _tool("prlimit")]
    else:
        if shutil.which("bwrap") is None or shutil.which("prlimit") is None:
            return "bwrap not found (Debian's bubblewrap)"
        cmd = [*_bwrap_base(False), "--", _tool("prlimit")]  # with no arguments it lists the limits
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{kind} does not start ({exc})"
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:200]
        return f"{kind} cannot make its namespaces here ({said})"
    return None


def _bwrap_base(gpu: bool) -> list[str]:
    """bwrap's fixed part: new pid, network, IPC and UTS namespaces, the system's /usr and the
    merged-/usr links, the few files of /etc a loader needs, fresh /proc, /dev and /tmp."""
    args = [_tool("bwrap"), "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    if gpu:  # the NVIDIA device nodes and what the driver reads of /sys
        args += ["--ro-bind", "/sys", "/sys"]
        for node in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind-try", str(node), str(node)]
    return args


def _binds(paths: list[str], *, readonly: bool) -> list[str]:
    """Bind ``paths`` at their own places, parents before children; the folders above each are
    made 0755 (bwrap makes them 0700, which uid 65534 could not pass)."""
    args: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        parents = list(reversed(Path(path).parents))[1:]
        for parent in parents:
            args += ["--dir", str(parent)]
        args += ["--ro-bind" if readonly else "--bind", path, path]
    return args


def _roots(python: str) -> tuple[str, ...]:
    """The interpreter's folders: its own, its prefixes and everything on its sys.path, asked in
    the environment the run gets (a wrapper script's own PYTHONPATH counts, the caller's does not).
    An interpreter that does not answer gets the folders of its path."""
    found = {os.path.dirname(os.path.abspath(python)), os.path.dirname(os.path.realpath(python)),
             *os.environ.get("LD_LIBRARY_PATH", "").split(":")}  # kept in the run's environment
    try:
        proc = subprocess.run([python, "-c", _ROOTS], capture_output=True, text=True, timeout=10, env=_kept_env())
        listed = json.loads((proc.stdout.strip().splitlines() or ["[]"])[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError):
        listed = []
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, str):
            found.add(os.path.normpath(entry))
    found = {p for p in found if os.path.isabs(p) and os.path.isdir(p) and p != "/"}
    # a folder inside another is bound with it
    return tuple(sorted(p for p in found if not any(p.startswith(q + "/") for q in found if q != p)))


def check_reachable(what: str, paths: list[str], *, above: bool) -> None:
    """The sandbox user must be able to pass each of ``paths`` (a folder, or run it: an executable),
    and with ``above`` every folder above it too (without bwrap it sees the host's files as they are)."""
    for path in map(Path, paths):
        for place in [*(reversed(path.parents) if above else []), path]:
            try:
                mode = place.stat().st_mode
            except OSError:
                continue
            if mode & stat.S_IXOTH:
                continue
            mode_line = f"{place} is mode {stat.S_IMODE(mode):04o}"
            if above:
                raise SandboxError(f"the sandbox user (uid {NOBODY}) cannot reach {what}: {mode_line}, and bubblewrap, "
                                   f"which would bind it read-only, is not available",
                                   hint=f"install bubblewrap (apt-get install bubblewrap), or use a place outside "
                                        f"{place}; or {_TRUST}")
            raise SandboxError(f"the sandbox user (uid {NOBODY}) cannot reach {what}: {mode_line}",
                               hint=f"let others read it (chmod o+rx {place}); or {_TRUST}")


def run_contained(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cmd`` in a session of its own.  A timeout (subprocess.TimeoutExpired), Ctrl-C or SIGTERM
    (errors.Terminated) kills its whole process group and waits before it is re-raised: the
    runner's forked children would otherwise go on spinning."""
    return children.run(cmd, timeout=timeout, group=True, stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd)


def read_back(path: Path) -> bytes | None:
    """A file the sandbox wrote, read by this (root) process: a regular file only, never followed
    through a symlink the run may have put there (to /etc/shadow, say); None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fh.read()
