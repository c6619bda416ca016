"""Plan a build purely: the Dockerfile, the labels, the layers and the files it needs.

``plan_build`` decides everything from the spec and the lock with no engine involved;
``--dry-run`` prints its Dockerfile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from envctl import __version__
from envctl.build.layers import Layer, plan_layers
from envctl.catalog import Project
from envctl.lock import LockedEnv
from envctl.lock.grammar import LockfileError, filename_ok, pin
from envctl.spec import ImageSpec, defaults

LABEL_SPEC = "io.envctl.spec"
LABEL_SPEC_HASH = "io.envctl.spec-hash"
LABEL_LOCK_HASH = "io.envctl.lock-hash"
LABEL_TREE = "io.envctl.env-tree"  # content hash of the environment's files, stamped after the build


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
    layers: list[Layer] = field(default_factory=list)


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
                   Path(__file__).resolve().parents[2] / "templates" / name]
    for path in candidates:
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError(f"template {name} not found in {', '.join(map(str, candidates))}")


def dockerquote(value: str) -> str:
    """A double-quoted Dockerfile word: backslash, quote and $ escaped (no variable expansion)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def render_dockerfile(spec: ImageSpec, lock: LockedEnv, *, labels: dict[str, str], base: str,
                      template: str, rattler: tuple[str, ...] = ("", "", ""), builder: str = "buildkit",
                      layers: list[Layer] | None = None) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["dockerquote"] = dockerquote
    pip_wheel = next((p.filename for p in lock.pip if p.name == "pip"), None)
    if pip_wheel is not None and not filename_ok(pip_wheel):  # it is a word of a RUN line
        raise LockfileError(f"refusing to run pip from {pip_wheel!r}: not a wheel file name",
                            hint="the lock was forged or damaged: regenerate it with envctl lock")
    layers = plan_layers(lock) if layers is None else layers
    views = [{"name": layer.name, "count": len(layer.packages)} for layer in layers]
    return env.from_string(template).render(
        spec=spec, base=base, prefix=spec.env_prefix, conda=bool(lock.conda), layers=views,
        python_source=spec.python_source, pip_wheel=pip_wheel, labels=labels, envctl_version=__version__,
        rattler_wheel=rattler[0], rattler_sha256=rattler[1], builder=builder,
        epoch=int(defaults()["source_date_epoch"]))


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
    layers = plan_layers(lock)
    dockerfile = render_dockerfile(spec, lock, labels=labels, base=spec.base, template=_template(project),
                                   rattler=rattler, builder=builder, layers=layers)
    return BuildPlan(
        spec=spec, lock=lock, tag=tag or default_tag(spec, lock), dockerfile=dockerfile, labels=labels,
        pip_files=[(p.url, p.sha256, p.filename) for p in lock.pip],
        conda_files=[(p.url, p.sha256, p.md5, p.filename) for p in lock.conda], rattler=rattler,
        layers=layers)


def requirements_txt(lock: LockedEnv | Layer) -> str:
    """pip's hash-checking requirements: exactly the locked set (or one layer of it)."""
    packages = lock.pip if isinstance(lock, LockedEnv) else lock.packages
    return "".join(pin(p.name, p.version, p.sha256) + "\n" for p in packages)


