"""``envctl build``: plan purely, then build with the engine.

``plan_build`` renders the Dockerfile and the labels from the spec and the
lock with no engine involved; ``assemble_context`` fills a build context from
the verified package cache; ``build_image`` runs the engine, or returns at
once when an image with the same spec and lock hashes exists.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Callable

from envctl import __version__
from envctl.cache import PackageCache
from envctl.catalog import Project
from envctl.engine import Engine, ImageInfo
from envctl.errors import BuildError, EngineError
from envctl.lock import LockedEnv
from envctl.spec import ImageSpec

LABEL_SPEC = "io.envctl.spec"
LABEL_SPEC_HASH = "io.envctl.spec-hash"
LABEL_LOCK_HASH = "io.envctl.lock-hash"


@dataclass(frozen=True)
class BuildPlan:
    spec: ImageSpec
    lock: LockedEnv
    tag: str
    dockerfile: str
    labels: dict[str, str]
    pip_files: list[tuple[str, str, str]]  # (url, sha256, filename)
    conda_files: list[tuple[str, str, str, str]]  # (url, sha256, md5, filename)
    rattler: tuple[str, str, str] = ("", "", "")


def default_tag(spec: ImageSpec, lock: LockedEnv) -> str:
    """envctl/NAME:<12 hex of the spec and lock hashes>: another base or lock, another tag."""
    import hashlib

    digest = hashlib.sha256(f"{spec.content_hash()} {lock.lock_hash}".encode()).hexdigest()
    return f"envctl/{spec.name}:{digest[:12]}"


def _template(project: Project | None, name: str = "Dockerfile.j2") -> str:
    """The project's own template first; else the one shipped with envctl (in a wheel it is
    packaged as envctl/_templates; in a source checkout it is the repository's templates/)."""
    candidates = [project.templates_dir / name] if project is not None else []
    candidates += [Path(str(resources.files("envctl").joinpath("_templates", name))),
                   Path(__file__).resolve().parent.parent / "templates" / name]
    for path in candidates:
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(f"template {name} not found in {', '.join(map(str, candidates))}")


def dockerquote(value: str) -> str:
    """A double-quoted Dockerfile word: backslash, quote and $ escaped (no variable expansion)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def render_dockerfile(spec: ImageSpec, lock: LockedEnv, *, labels: dict[str, str], base: str,
                      template: str, rattler: tuple[str, ...] = ("", "", ""), builder: str = "buildkit") -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["dockerquote"] = dockerquote
    pip_wheel = next((p.filename for p in lock.pip if p.name == "pip"), None)
    return env.from_string(template).render(
        spec=spec, base=base, prefix=spec.env_prefix, conda=bool(lock.conda), pip=bool(lock.pip),
        python_source=spec.python_source, pip_wheel=pip_wheel, labels=labels, envctl_version=__version__,
        rattler_wheel=rattler[0], rattler_sha256=rattler[1], builder=builder)


def plan_build(spec: ImageSpec, lock: LockedEnv, *, project: Project | None = None, tag: str | None = None,
               base_id: str = "", source: str = "", rattler: tuple[str, str, str] = ("", "", ""),
               builder: str = "buildkit") -> BuildPlan:
    """Everything the build will do, decided without an engine.

    ``rattler`` is the (wheel filename, sha256, url) of the py-rattler the builder stage installs
    conda packages with; see ``rattler_tool``.  Needed only when the lock has conda packages.
    ``builder`` is the engine's builder ("buildkit": one stage with bind-mounted packages;
    "classic": two stages); the image holds the same environment either way.
    """
    if lock.conda and not rattler[0]:
        raise ValueError("a lock with conda packages needs the rattler tool wheel (rattler_tool())")
    labels = {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.description": spec.description,
        "org.opencontainers.image.version": f"{spec.torch}-{spec.cuda}",
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.base.name": spec.base,
        "org.opencontainers.image.base.digest": base_id,
        LABEL_SPEC: spec.name,
        LABEL_SPEC_HASH: spec.content_hash(),
        LABEL_LOCK_HASH: lock.lock_hash,
        "io.envctl.torch": spec.torch,
        "io.envctl.cuda": spec.cuda,
        "io.envctl.python": spec.python,
        "io.envctl.version": __version__,
    }
    dockerfile = render_dockerfile(spec, lock, labels=labels, base=spec.base, template=_template(project),
                                   rattler=rattler, builder=builder)
    return BuildPlan(
        spec=spec, lock=lock, tag=tag or default_tag(spec, lock), dockerfile=dockerfile, labels=labels,
        pip_files=[(p.url, p.sha256, p.filename) for p in lock.pip],
        conda_files=[(p.url, p.sha256, p.md5, p.filename) for p in lock.conda], rattler=rattler)


def requirements_txt(lock: LockedEnv) -> str:
    """pip's hash-checking requirements: exactly the locked set."""
    return "".join(f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in lock.pip)


def assemble_context(plan: BuildPlan, cache: PackageCache, context: Path, *,
                     progress: Callable[[str], None] = lambda _m: None) -> int:
    """Fill ``context`` from the verified cache (hard links where possible); returns bytes."""
    total = 0
    mirrors = tuple(plan.spec.pip_index.find_links)
    (context / "Dockerfile").write_text(plan.dockerfile)
    if plan.pip_files:
        wheels = context / "wheels"
        wheels.mkdir()
        for i, (url, sha, filename) in enumerate(plan.pip_files, 1):
            progress(f"verifying {filename} ({i}/{len(plan.pip_files)})")
            total += _link(cache.get(url=url, sha256=sha, filename=filename, mirrors=mirrors), wheels / filename)
        (wheels / "requirements.txt").write_text(requirements_txt(plan.lock))
    if plan.conda_files:
        conda = context / "conda"
        conda.mkdir()
        for i, (url, sha, _md5, filename) in enumerate(plan.conda_files, 1):
            progress(f"verifying {filename} ({i}/{len(plan.conda_files)})")
            total += _link(cache.get(url=url, sha256=sha, filename=filename), conda / filename)
        (conda / "packages.json").write_text(json.dumps(
            [{"filename": f, "sha256": s, "md5": m, "url": u} for u, s, m, f in plan.conda_files], indent=1))
        tools = context / "tools"
        tools.mkdir()
        filename, sha, url = plan.rattler
        wheel = cache.get(url=url, sha256=sha, filename=filename)
        total += _link(wheel, tools / wheel.name)
        for script in ("install_conda.py", "unpack_wheel.py"):
            shutil.copyfile(Path(__file__).parent / "builder" / script, tools / script)
    return total


def _link(src: Path, dest: Path) -> int:
    try:
        dest.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dest)
    return src.stat().st_size


RATTLER_PLATFORM = {"linux-64": "manylinux2014_x86_64", "linux-aarch64": "manylinux2014_aarch64"}


def rattler_tool(cache: PackageCache, platform: str = "linux-64") -> tuple[str, str, str]:
    """(wheel filename, sha256, url) of the py-rattler the builder stage installs conda packages with.

    The host's py-rattler version, for the image's platform; its sha256 is the one PyPI
    publishes for that file, and the cached copy is checked against it on every use.
    """
    import json
    import urllib.request
    from importlib.metadata import version

    from envctl.netcheck import ssl_context

    wanted, tag = version("py-rattler"), RATTLER_PLATFORM[platform]
    pinned = cache.root / "tools" / f"py-rattler-{wanted}-{tag}.json"
    if not pinned.exists():
        url = "https://pypi.org/simple/py-rattler/"  # PEP 691 JSON: every file with its sha256
        request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        try:
            with urllib.request.urlopen(request, timeout=30, context=ssl_context()) as resp:
                files = json.load(resp)["files"]
        except (OSError, ValueError, KeyError) as exc:
            raise BuildError(f"cannot read {url} to pin the builder's py-rattler wheel: {exc}",
                             hint="conda packages are installed with py-rattler in the build; "
                                  "this needs PyPI once per version") from None
        match = next((f for f in files if f["filename"].startswith(f"py_rattler-{wanted}-")
                      and f["filename"].endswith(f"{tag}.whl") and "abi3" in f["filename"]), None)
        if match is None or "sha256" not in match.get("hashes", {}):
            raise BuildError(f"PyPI has no py-rattler {wanted} wheel for {platform} ({tag})")
        pinned.parent.mkdir(parents=True, exist_ok=True)
        pinned.write_text(json.dumps({"filename": match["filename"], "url": match["url"],
                                      "sha256": match["hashes"]["sha256"]}))
    meta = json.loads(pinned.read_text())
    wheel = cache.get(url=meta["url"], sha256=meta["sha256"], filename=meta["filename"])
    return wheel.name, meta["sha256"], meta["url"]


@dataclass
class BuildResult:
    image: ImageInfo
    tag: str
    built: bool
    seconds: float
    log_path: Path | None = None
    context_bytes: int = 0

    def to_dict(self) -> dict:
        return {"image_id": self.image.id, "tag": self.tag, "built": self.built, "seconds": round(self.seconds, 2),
                "size": self.image.size, "labels": self.image.labels,
                "log": str(self.log_path) if self.log_path else None}


def find_built(engine: Engine, spec: ImageSpec, lock: LockedEnv) -> ImageInfo | None:
    """An existing image built from this spec and lock: the one the last build tagged, else any."""
    tagged = engine.image(default_tag(spec, lock))
    candidates = ([tagged] if tagged else []) + sorted(
        engine.images(f"{LABEL_SPEC}={spec.name}"), key=lambda i: i.created, reverse=True)
    for img in candidates:
        if (img.labels.get(LABEL_SPEC_HASH) == spec.content_hash()
                and img.labels.get(LABEL_LOCK_HASH) == lock.lock_hash):
            return img
    return None


def build_image(engine: Engine, plan: BuildPlan, *, cache: PackageCache, log_dir: Path, rebuild: bool = False,
                no_cache: bool = False, platform: str | None = None, progress: Callable[[str], None] = lambda _m: None,
                on_line: Callable[[str], None] = lambda _l: None) -> BuildResult:
    start = time.monotonic()
    if not rebuild:
        existing = find_built(engine, plan.spec, plan.lock)
        if existing:
            if plan.tag not in existing.tags:
                engine.tag(existing.id, plan.tag)
            return BuildResult(existing, plan.tag, False, time.monotonic() - start)
    base = engine.image(plan.spec.base)
    if base is None:
        raise EngineError(f"base image {plan.spec.base} not found in the engine",
                          hint="make it with: envctl base" if plan.spec.base.startswith("envctl/")
                          else f"docker pull {plan.spec.base} (or envctl base for the local Debian base)")
    if plan.labels["org.opencontainers.image.base.digest"] not in ("", base.id):
        raise EngineError(f"base image {plan.spec.base} is {base.id}, not the planned "
                          f"{plan.labels['org.opencontainers.image.base.digest']}", hint="plan the build again")
    # The one label that differs between identical builds; passed at build time, not in the Dockerfile.
    labels = {"org.opencontainers.image.created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    import tempfile

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{plan.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with tempfile.TemporaryDirectory(prefix="envctl-ctx-", dir=cache.root) as tmp:
        context = Path(tmp)
        size = assemble_context(plan, cache, context, progress=progress)
        progress(f"building {plan.tag} ({size / 1e6:.0f} MB of packages)")
        with log_path.open("w") as log:
            def line(text: str) -> None:
                log.write(text + "\n")
                on_line(text)

            try:
                output = engine.build(context, tag=plan.tag, labels=labels, platform=platform, on_line=line,
                                      no_cache=no_cache)
            except BuildError as exc:
                exc.log_path = str(log_path)
                if "no space left on device" in str(exc).lower() or any(
                        "no space left" in t.lower() for t in exc.tail):
                    exc.hint = "the disk is full: free space (docker system prune) and build again"
                else:
                    exc.hint = f"full log: {log_path}"
                raise
    default = default_tag(plan.spec, plan.lock)
    if plan.tag != default:  # the default tag always names the newest build of this spec and lock
        engine.tag(output.image_id, default)
    image = engine.image(output.image_id)
    return BuildResult(image, plan.tag, True, time.monotonic() - start, log_path, size)
