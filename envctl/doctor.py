"""``envctl doctor``: what on this host stands in the way of an image.

The rules (driver against CUDA, GPU capability against the arch list) are pure
functions over values, tested with the release matrix's numbers; gathering the
host's facts (nvidia-smi, the engine, disk, virtual packages) is separate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from envctl.matrix import load_matrix, parse_version
from envctl.net import redact
from envctl.spec import ImageSpec
from envctl.spec_sources import channel_url, sources

# Generous sizes of an image for the free-disk check when neither a built image nor the lock's
# file sizes can be had (offline, no lock); otherwise envctl.imagesize estimates from the lock.
IMAGE_BYTES = {"cpu": 3 * 10**9, "cuda": 15 * 10**9}


@dataclass(frozen=True)
class ImageFacts:
    """What the lock and a built image say about the image itself (None: not known)."""

    cuda: str | None = None  # the CUDA runtime the locked wheels carry, e.g. "13.0"
    size: int | None = None  # bytes of the built image
    estimate: int | None = None  # bytes the image will take, estimated from the lock (none built)
    source: str = ""  # where the size or the estimate came from
    download: int | None = None  # bytes of the lock's files (what a package cache holds)
    environment: int | None = None  # bytes of the installed environment (what a setup prefix holds)


def locked_cuda(lock) -> str | None:
    """major.minor of the CUDA runtime wheel in a lock (nvidia-cuda-runtime[-cuXX]), if any."""
    for p in lock.pip:
        if p.name == "nvidia-cuda-runtime" or p.name.startswith("nvidia-cuda-runtime-cu"):
            major_minor = parse_version(p.version)[:2]
            return ".".join(map(str, major_minor))
    return None


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # ok | warn | fail | info
    message: str
    blocking: bool = False


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: str
    driver: str


@dataclass
class HostFacts:
    engine_version: str | None = None
    engine_error: str | None = None
    nvidia_runtime: bool = False
    gpus: list[Gpu] = field(default_factory=list)
    driver_error: str | None = None
    free_bytes: int | None = None
    disk_path: str = "/"
    virtual_packages: list[str] = field(default_factory=list)


def check_driver(driver: str, cuda: str) -> Finding:
    """A CUDA runtime of this major needs at least the driver in the release matrix."""
    need = load_matrix().min_driver(cuda)
    if need is None:
        return Finding("driver", "warn", f"no minimum driver known for CUDA {cuda}")
    if parse_version(driver) < parse_version(need):
        return Finding("driver", "fail", f"driver {driver} is older than {need}, which CUDA {cuda} needs: "
                       f"upgrade the NVIDIA driver to >= {need} or use an image with an older CUDA", True)
    return Finding("driver", "ok", f"driver {driver} meets CUDA {cuda}'s minimum {need}")


def check_capability(gpu_name: str, capability: str, cuda: str, torch_version: str, variant: str) -> Finding:
    """A GPU runs only kernels built for its capability (or PTX of an older one, JIT-compiled)."""
    arches, ptx = load_matrix().arch_list(cuda, torch_version)
    if not arches:
        return Finding("gpu arch", "warn", f"no arch list known for CUDA {cuda}")
    cap = parse_version(capability)
    listed = [parse_version(a) for a in arches]
    span = f"{arches[0]}..{arches[-1]}" + (" +PTX" if ptx else "")
    if cap in listed or (ptx and cap > max(listed)):
        return Finding("gpu arch", "ok", f"{gpu_name} capability {capability} is covered by {variant} ({span})")
    return Finding("gpu arch", "fail", f"{gpu_name} capability {capability} is not in the {variant} arch list "
                   f"{span}: kernels fail with 'no kernel image is available'; use an image whose CUDA covers "
                   f"{capability}", True)


USES = ("build", "setup")


def evaluate(facts: HostFacts, spec: ImageSpec | None, image: ImageFacts | None = None, *,
             use: str = "build") -> list[Finding]:
    """The findings; ``use`` says which path they block: the Docker one (build, verify) or setup's."""
    out: list[Finding] = []
    image = image or ImageFacts()
    if facts.engine_version:
        out.append(Finding("docker", "ok", f"Docker engine {facts.engine_version} reachable"))
    else:
        blocks = spec is not None and use == "build"
        out.append(Finding("docker", "fail" if blocks else "warn",
                           f"Docker engine not reachable: {facts.engine_error}; start it (scripts/engine-up.sh "
                           f"or systemctl start docker), or use envctl setup, which needs no engine", blocks))
    gpu_image = spec is not None and spec.is_gpu
    if not facts.gpus:
        why = facts.driver_error or "nvidia-smi not found"
        out.append(Finding("gpu", "info" if not gpu_image else "warn",
                           f"no NVIDIA GPU or driver on this host ({why}): CPU images run here; "
                           f"GPU images build but their GPU checks cannot run"))
    else:
        names = ", ".join(f"{g.index}: {g.name} (sm {g.capability})" for g in facts.gpus)
        out.append(Finding("gpu", "ok", f"GPUs {names}; driver {facts.gpus[0].driver}"))
    if gpu_image and facts.gpus:
        out.append(check_driver(facts.gpus[0].driver, image.cuda or spec.cuda_version))
        for g in facts.gpus:
            out.append(check_capability(f"GPU {g.index} ({g.name})", g.capability, spec.cuda_version,
                                        spec.torch, spec.cuda))
        if facts.engine_version:
            out.append(Finding("nvidia runtime", "ok" if facts.nvidia_runtime else "fail",
                               "NVIDIA container runtime present" if facts.nvidia_runtime else
                               "no NVIDIA container runtime in the engine: install nvidia-container-toolkit "
                               "and run nvidia-ctk runtime configure --runtime=docker", not facts.nvidia_runtime))
    if facts.free_bytes is not None:
        need = image.size or image.estimate or IMAGE_BYTES["cuda" if gpu_image else "cpu"]
        what = (f"the image is {need / 1e9:.1f} GB ({image.source})" if image.size else
                f"the image will take about {need / 1e9:.1f} GB ({image.source})" if image.estimate else
                f"an image needs about {need / 1e9:.0f} GB")
        status = "ok" if facts.free_bytes >= need else "fail"
        out.append(Finding("disk", status, f"{facts.free_bytes / 1e9:.0f} GB free at {facts.disk_path}"
                           + (f"; {what}" if spec is not None else "")
                           + ("" if status == "ok" else ": free space (docker system prune)"), status == "fail"))
    if facts.virtual_packages:
        out.append(Finding("virtual packages", "info", "host offers " + ", ".join(facts.virtual_packages)
                           + " (envctl lock never uses these: it takes them from the spec)"))
    return out


def image_facts(spec: ImageSpec, lock_path: Path, *, engine_timeout: int = 5) -> ImageFacts:
    """The image's CUDA from its current lock, and its size from the built image when there is one,
    else estimated from the lock's file sizes (envctl.imagesize).

    The lockfile is read as plain YAML, not through conda-lock: doctor must run on a GPU host
    that has little more than Python, and quickly.
    """
    from envctl import yamldoc
    from envctl.errors import EnvctlError
    from envctl.lock import LockedEnv
    from envctl.lock.state import lock_state, read_header

    try:
        if lock_state(spec, lock_path).state != "locked":
            return ImageFacts()
        data = yamldoc.load(lock_path.read_text(encoding="utf-8"), cache=False)
        lock_hash = read_header(lock_path)[2] or ""
    except (EnvctlError, OSError, ValueError):  # yamldoc.DocumentError is a ValueError
        return ImageFacts()
    pins = [_Pin(str(p.get("name", "")), str(p.get("version", ""))) for p in (data or {}).get("package") or []
            if isinstance(p, dict) and p.get("manager") == "pip" and p.get("platform") == spec.platforms[0]]
    cuda = locked_cuda(LockedEnv(spec.name, spec.platforms[0], "", lock_hash, [], pins))
    built = base = None
    try:
        from envctl.build import find_built
        from envctl.engine import Engine

        engine = Engine.connect(timeout=engine_timeout)
        built = find_built(engine, spec, LockedEnv(spec.name, spec.platforms[0], "", lock_hash, [], []))
        base = engine.image(spec.base) if built is None else None
    except EnvctlError:
        pass
    from envctl.imagesize import estimate

    guess = estimate(spec, data, base_bytes=base.size if base else None)
    download = guess.download_bytes if guess else None
    environment = guess.bytes - guess.base_bytes if guess else None
    if built is not None:
        return ImageFacts(cuda=cuda, size=built.size, source=f"built image {built.short_id}",
                          download=download, environment=environment)
    if guess is None:
        return ImageFacts(cuda=cuda)
    return ImageFacts(cuda=cuda, estimate=guess.bytes, source=guess.source, download=download,
                      environment=environment)


@dataclass(frozen=True)
class _Pin:
    name: str
    version: str


def gather(*, engine_timeout: int = 5) -> HostFacts:
    facts = HostFacts()
    try:
        from envctl.engine import Engine

        engine = Engine.connect(timeout=engine_timeout)
        info = engine.info()
        facts.engine_version = str(info.get("ServerVersion") or engine.version())
        facts.nvidia_runtime = "nvidia" in (info.get("Runtimes") or {})
        facts.disk_path = info.get("DockerRootDir") or "/var/lib/docker"
    except Exception as exc:  # noqa: BLE001 - any failure is reported as "not reachable"
        facts.engine_error = engine_cause(str(exc))
    facts.gpus, facts.driver_error = _nvidia_smi()
    path = Path(facts.disk_path)
    while not path.exists():
        path = path.parent
    facts.free_bytes = shutil.disk_usage(path).free
    facts.virtual_packages = _virtual_packages()
    return facts


def engine_cause(text: str) -> str:
    """The cause in a few words, from the engine error's nest of wrapped exceptions."""
    import os

    socket = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    low = text.lower()
    if "filenotfounderror" in low or "no such file" in low:
        return f"no engine socket at {socket}"
    if "connectionrefused" in low or "connection refused" in low:
        return f"connection refused at {socket}"
    if "permissionerror" in low or "permission denied" in low:
        return f"permission denied on {socket} (join the docker group, or run as root)"
    if "did not answer within" in low:
        return f"{socket} did not answer within" + text.lower().split("did not answer within", 1)[1]
    cause = text.split("not reachable: ", 1)[-1]
    return cause.split(" (", 1)[0].strip() or "unknown cause"


def _nvidia_smi() -> tuple[list[Gpu], str | None]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "nvidia-smi not found"
    try:
        proc = subprocess.run([exe, "--query-gpu=index,name,compute_cap,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return [], "nvidia-smi timed out"
    if proc.returncode != 0:
        return [], (proc.stdout + proc.stderr).strip().splitlines()[0] if (proc.stdout + proc.stderr).strip() else "nvidia-smi failed"
    gpus = []
    for line in proc.stdout.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        idx, cap, driver = parts[0], parts[-2], parts[-1]
        name = ", ".join(parts[1:-2])  # a GPU name may itself hold a comma
        if not re.match(r"^\d+\.\d+$", cap):
            return gpus, f"nvidia-smi reports no compute capability for GPU {idx} ({cap})"
        gpus.append(Gpu(int(idx), name, cap, driver))
    return gpus, None


def _virtual_packages() -> list[str]:
    try:
        import rattler

        from envctl.lock.conda import settle_rattler_at_exit

        settle_rattler_at_exit()
        out = []
        for vp in rattler.VirtualPackage.detect():
            g = vp.into_generic()
            build = str(g.build_string)
            out.append(f"{g.name.normalized}={g.version}" + (f"={build}" if build != "0" else ""))
        return sorted(out)
    except Exception:  # noqa: BLE001 - detection is informational
        return []


@dataclass
class SetupFacts:
    """What the Docker-free path (envctl setup) needs on this host, gathered for one spec."""

    python: str | None = None  # python X.Y on PATH (python_source: base)
    compiler: str | None = None  # the C++ compiler torch.compile's inductor calls
    free: dict[str, int] = field(default_factory=dict)  # "cache PATH" / "prefix PATH" -> free bytes
    sources: list[tuple[str, str, str | None]] = field(default_factory=list)  # (what, url, error or None)


def gather_setup(spec: ImageSpec, *, prefix_root: Path, cache_root: Path, timeout: float = 5.0) -> SetupFacts:
    import os
    import sys

    from envctl.errors import EnvctlError
    from envctl.net import check_reachable

    facts = SetupFacts()
    if spec.python_source == "base":
        facts.python = shutil.which(f"python{spec.python}") or (
            sys.executable if f"{sys.version_info[0]}.{sys.version_info[1]}" == spec.python else None)
    facts.compiler = shutil.which(os.environ.get("CXX") or "g++") or shutil.which("c++") or shutil.which("clang++")
    for label, path in (("cache", cache_root), ("prefix", prefix_root)):
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        facts.free[f"{label} {path}"] = shutil.disk_usage(existing).free
    need = sources(spec)  # what the lock reads, the torch index among the indexes when it does
    wanted = ([("find-links folder", f) for f in need.find_links]
              + [("torch index" if url == spec.torch_index_url else "package index", url) for url in need.indexes]
              + [("conda channel", channel_url(c)) for c in need.channels])
    for what, url in wanted:
        try:
            check_reachable(url, what=what, timeout=timeout)
            facts.sources.append((what, url, None))
        except EnvctlError as exc:
            facts.sources.append((what, url, str(exc)))
    return facts


def evaluate_setup(facts: SetupFacts, spec: ImageSpec, *, use: str = "build",
                   image: ImageFacts | None = None) -> list[Finding]:
    """The Docker-free path's checks; they block only when asked about setup (``use``). Disk:
    the cache must hold the lock's files, the prefix the installed environment (both estimated
    from the lock, envctl.imagesize), else the old per-kind constant."""
    blocks = use == "setup"
    bad = "fail" if blocks else "warn"
    out: list[Finding] = []
    if spec.python_source != "base":
        out.append(Finding("setup python", "ok", f"Python {spec.python} comes from the channels"))
    elif facts.python:
        out.append(Finding("setup python", "ok", f"Python {spec.python} for setup's venv: {facts.python}"))
    else:
        out.append(Finding("setup python", bad, f"setup needs Python {spec.python} on this host "
                           f"(python{spec.python} not on PATH): install it, or use a spec whose python "
                           f"comes from conda", blocks))
    if facts.compiler:
        out.append(Finding("c++ compiler", "ok", f"{facts.compiler}: torch.compile works in a setup prefix"))
    else:
        out.append(Finding("c++ compiler", "warn", "no C++ compiler on PATH (g++, c++, clang++): torch.compile "
                           "fails in a setup prefix; install g++ (apt-get install g++)"))
    fallback = IMAGE_BYTES["cuda" if spec.is_gpu else "cpu"]
    for where, free in facts.free.items():
        known = (image.download if where.startswith("cache") else image.environment) if image else None
        need = known or fallback
        ok = free >= need
        out.append(Finding("setup disk", "ok" if ok else bad, f"{free / 1e9:.0f} GB free at the {where}; "
                           + (f"an environment needs about {need / 1e9:.0f} GB" if not known else
                              f"{'its packages take' if where.startswith('cache') else 'the environment takes'} "
                              f"about {need / 1e9:.1f} GB (estimated from the lock)")
                           + ("" if ok else ": free space or point ENVCTL_CACHE / --prefix elsewhere"),
                           blocks and not ok))
    for what, url, error in facts.sources:
        if error is None:
            out.append(Finding("sources", "ok", f"{what} {redact(url)} reachable"))
        else:
            out.append(Finding("sources", bad, redact(error) + ": setup cannot fetch packages the cache lacks "
                               "(envctl cache import fills it from another machine)", blocks))
    return out


def to_dicts(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]
