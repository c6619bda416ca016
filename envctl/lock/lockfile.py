"""``envctl lock``: turn a spec into a deterministic, hashed conda-lock lockfile.

Plan and solve are separate from writing: ``lock_image`` returns the rendered
text, ``write_lock`` puts it in place atomically (temporary file, then rename),
so a failed solve never touches the existing lockfile.  The file is read and
written through conda-lock's own models, so ``conda-lock install`` and
micromamba consume it too.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from envctl.errors import LockError, StaleLockError, UnknownPackageError
from envctl.fsio import atomic_write, default_root as default_cache_root
from envctl.lock import conda as condasolve, pip as pipresolve, variant as torchvariant
from envctl.lock.grammar import package_filename, pin, read_lockfile
from envctl.lock.state import HEADER_MARK, body_hash, lock_state, read_header
from envctl.spec import ImageSpec, defaults
from envctl.spec_sources import channel_url, pip_sources

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LockedEnv:
    """The packages of one platform of a lockfile, as the build and setup need them."""

    name: str
    platform: str
    inputs_hash: str
    lock_hash: str
    conda: list[condasolve.CondaPackage]
    pip: list[pipresolve.PipPackage]

    def pip_pins(self) -> dict[str, str]:
        return {p.name: p.version for p in self.pip}


@dataclass
class LockResult:
    spec: ImageSpec
    text: str
    lock_hash: str
    conda: dict[str, list[condasolve.CondaPackage]] = field(default_factory=dict)
    pip: dict[str, list[pipresolve.PipPackage]] = field(default_factory=dict)

    def summary(self) -> dict:
        out = {"image": self.spec.name, "lock_hash": self.lock_hash, "platforms": {}}
        for platform in self.spec.platforms:
            conda, pip = self.conda.get(platform, []), self.pip.get(platform, [])
            sizes = [p.size for p in conda] + [p.size for p in pip]
            out["platforms"][platform] = {
                "conda": len(conda), "pip": len(pip), "cuda": self.spec.cuda,
                "cuda_libraries": cuda_libraries(pip),
                "bytes": sum(s for s in sizes if s) if all(sizes) else None,
                "packages": [f"{p.name}={p.version}={p.build}" for p in conda]
                + [f"{p.name}=={p.version}" for p in pip],
            }
        return out


def target(platform: str) -> dict[str, str]:
    t = defaults()["target"]
    return {"glibc": t["glibc"], "linux": t["linux"], "archspec": t["archspec"][platform]}




def lock_image(spec: ImageSpec, *, previous: dict[str, LockedEnv] | None = None, upgrade: tuple[str, ...] = (),
               progress: Progress = lambda _msg: None, check_network: bool = True,
               current: dict[str, LockedEnv] | None = None, keep_current: bool = True) -> LockResult:
    """Solve the spec for every platform it names.

    ``previous`` (the current lock, per platform) keeps every pin except the packages named
    in ``upgrade``, which are re-resolved.  ``current`` (the lock on disk, if any): its pip pins
    are preferred where the spec still allows them (as pip-compile and uv keep an existing output's
    pins; ``keep_current=False`` resolves afresh), and its files' index pages and metadata are read
    while the resolver runs.
    """
    result = LockResult(spec=spec, text="", lock_hash="")
    wanted = {pipresolve.normalize(u) for u in upgrade}
    if upgrade and previous is not None:
        known = {p.name for env in previous.values() for p in (*env.conda, *env.pip)}
        missing = sorted(wanted - known)
        if missing:
            raise UnknownPackageError(f"cannot upgrade {', '.join(missing)}: not in the lock of {spec.name}",
                                      hint="name a package the lockfile holds")
    for platform in spec.platforms:
        t = target(platform)
        vps = condasolve.virtual_packages(platform=platform, cuda=spec.cuda_version, **t)
        conda_constraints = pip_constraints = None
        prev = (previous or {}).get(platform)
        if prev is not None:
            conda_constraints = [f"{p.name} =={p.version} {p.build}" for p in prev.conda if p.name not in wanted]
            pip_constraints = [pin(p.name, p.version) for p in prev.pip if p.name not in wanted]
        specs = spec.conda_specs()
        if specs:
            progress(f"solving {len(specs)} conda specs for {platform} ({', '.join(vps)})")
            result.conda[platform] = condasolve.solve(
                specs, channels=spec.channels, platform=platform, vps=vps,
                constraints=conda_constraints, check_network=check_network,
                cache_dir=default_cache_root() / "repodata")
        reqs = spec.pip_requirements()
        on_disk = (current or previous or {}).get(platform) or _NO_LOCK
        if reqs:
            sources = pip_sources(spec)
            progress(f"resolving {len(reqs)} pip requirements for Python {spec.python} on {platform}")
            result.pip[platform] = pipresolve.resolve(
                reqs, python=spec.python, platform=platform, glibc=t["glibc"], index_url=sources.index_url,
                extra_index_urls=list(sources.extra_index_urls), find_links=sources.find_links,
                constraints=pip_constraints, check_network=check_network,
                prefetch=tuple(on_disk.pip),
                prefer=tuple(pin(p.name, p.version) for p in on_disk.pip if p.name not in wanted)
                if keep_current else ())
            # a resolver takes any build of torch==X.Y.Z: the one locked must be the spec's variant
            torchvariant.check_torch_variant(spec, result.pip[platform], platform=platform)
    result.text, result.lock_hash = render(spec, result)
    return result


_NO_LOCK = LockedEnv(name="", platform="", inputs_hash="", lock_hash="", conda=[], pip=[])


def render(spec: ImageSpec, result: LockResult) -> tuple[str, str]:
    """The lockfile text (sorted, no timestamps) and the hash of its body.

    conda-lock's version-1 format written as plain data: what conda-lock's own models give
    (``Lockfile.alphasort_inplace``, ``filter_virtual_packages_inplace``, ``to_v1().dict_for_output()``)
    without importing them (0.3-0.8 s of every lock); ``tests/test_lock.py`` renders through
    conda-lock's models and checks the bytes agree."""
    packages = []
    for platform in spec.platforms:
        for p in result.conda.get(platform, []):
            if p.name.startswith("__"):
                continue  # virtual packages are the target's, never locked
            packages.append(("conda", p.name, platform, {
                "name": p.name, "version": p.version, "manager": "conda", "platform": platform,
                "dependencies": dict(sorted(p.dependencies.items())), "url": p.url,
                "hash": {"md5": p.md5, "sha256": p.sha256}, "build": p.build,
                "category": "main", "optional": False}))
        for p in result.pip.get(platform, []):
            packages.append(("pip", p.name, platform, {
                "name": p.name, "version": p.version, "manager": "pip", "platform": platform,
                "dependencies": dict(sorted(p.dependencies.items())), "url": p.url,
                "hash": {"sha256": p.sha256}, "category": "main", "optional": False}))
    packages.sort(key=lambda entry: entry[:3])
    inputs = spec.lock_inputs_hash()
    t = target(spec.platforms[0])
    metadata = {
        "content_hash": {pl: inputs for pl in spec.platforms},
        "channels": [_channel(channel_url(c)) for c in spec.channels],
        "platforms": list(spec.platforms), "sources": [f"images/{spec.name}.yaml"],
        "custom_metadata": {
            "envctl.image": spec.name, "envctl.python": spec.python, "envctl.cuda": spec.cuda,
            "envctl.python_source": spec.python_source, "envctl.torch": spec.torch,
            "envctl.virtual_packages": ",".join(condasolve.virtual_packages(
                platform=spec.platforms[0], cuda=spec.cuda_version, **t)),
        },
    }
    document = {"version": 1, "metadata": metadata, "package": [entry[3] for entry in packages]}
    import yaml  # here, not at the top: reading a spec or a lock needs no PyYAML (envctl.yamldoc)

    # libyaml's emitter is 10x faster and writes printable ASCII exactly as the Python one does;
    # other strings (none in practice: URLs are percent-encoded) go through the Python emitter,
    # so the lock's bytes never depend on whether a machine has libyaml.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper) if _printable_ascii(document) else yaml.SafeDumper
    body = yaml.dump(document, Dumper=dumper, sort_keys=False, default_flow_style=False)
    lock_hash = body_hash(body)
    header = "\n".join([
        HEADER_MARK,
        f"# regenerate with: envctl lock {spec.name}",
        f"# spec inputs: {inputs}",
        f"# lock hash: {lock_hash}",
        f"# conda-lock format; also installs with: conda-lock install -n {spec.name} {spec.name}.conda-lock.yml",
    ])
    return header + "\n" + body, lock_hash


def _printable_ascii(value) -> bool:
    if isinstance(value, str):
        return value.isascii() and value.isprintable()
    if isinstance(value, dict):
        return all(_printable_ascii(k) and _printable_ascii(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_printable_ascii(v) for v in value)
    return True


def _channel(url: str) -> dict:
    """A channel as conda-lock records it.  A URL with credentials or an anaconda token goes
    through conda-lock's own ``Channel`` (it swaps them for the environment variables holding them)."""
    from urllib.parse import urlparse

    parts = urlparse(url)
    if parts.username or parts.password or "@" in parts.netloc or "/t/" in url:
        _conda_lock_models_only()
        from conda_lock.models.channel import Channel

        return Channel.from_string(url).model_dump(mode="json")
    return {"url": url, "used_env_vars": []}


def _conda_lock_models_only() -> None:
    """Import conda-lock's lockfile models without its package ``__init__``, which imports the
    whole conda-lock CLI (2-4 s, most of a warm lock).  The models and the lockfile parser are
    plain submodules; ``conda_lock.main`` is the only name this leaves out, and envctl never
    uses it.  Nothing is done when conda_lock is already imported."""
    import importlib.util
    import sys
    import types

    if "conda_lock" in sys.modules:
        return
    spec = importlib.util.find_spec("conda_lock")
    if spec is None or not spec.submodule_search_locations:
        return  # not installed: the import below raises the usual ImportError
    package = types.ModuleType("conda_lock")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__, package.__file__ = spec, spec.origin
    sys.modules["conda_lock"] = package


def layer_of(name: str, groups: list[dict] | None = None) -> str:
    for group in groups or defaults()["layers"]:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in group["match"]):
            return group["name"]
    return defaults()["layers"][-1]["name"]


def cuda_libraries(packages) -> dict[str, str]:
    """name -> version of the CUDA libraries among locked pip packages (the cuda layer's members)."""
    groups = defaults()["layers"]
    return {p.name: p.version for p in packages if layer_of(p.name, groups) == groups[0]["name"]}


def write_lock(path: Path, text: str, *, force: bool = False) -> bool:
    """Write atomically; False when the file already holds exactly ``text``."""
    if path.is_file():
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except UnicodeDecodeError:
            pass  # not envctl's text: read_header calls it unmarked below
        marked = read_header(path)[0]
        if not marked and not force:
            raise LockError(f"{path} was not written by envctl (no '{HEADER_MARK}' header); not overwriting",
                            hint="move it away, or pass --force")
    atomic_write(path, text)
    return True


def load_lock(path: Path, *, platform: str = "linux-64", hints_only: bool = False) -> LockedEnv:
    """Read a lockfile (conda-lock's format, version 1); the packages of one platform.

    Read as plain YAML against the format's required keys, not through conda-lock's
    parser: importing conda-lock costs ~0.4 s, and build, verify, setup and doctor read
    a lock on every call.  ``tests/test_lock.py`` checks that conda-lock's own parser
    reads every committed lock to the same packages.

    The lock is what builds trust, so its text is parsed each time.  ``hints_only``: the
    caller takes it as hints alone (a re-lock's preferred pins and files to read ahead, which
    reach the new lock only where uv names them again), and the parse may come from
    envctl.yamldoc's cache, whose files nothing verifies.
    """
    if not path.is_file():
        raise StaleLockError(f"{path} does not exist", hint=f"run: envctl lock {path.name.split('.')[0]}")
    marked, inputs, lock_hash, intact = read_header(path)
    if marked and not intact:
        raise StaleLockError(f"{path} was edited by hand: its body no longer has the hash its header records",
                             hint=f"regenerate it: envctl lock {path.name.split('.')[0]}")
    entries, meta = read_lockfile(path, cached=hints_only)
    conda, pip = [], []
    for d in entries:
        if d["platform"] != platform:
            continue
        url, digests, deps = d["url"], d["hash"], dict(d.get("dependencies") or {})
        filename = package_filename(url)  # checked by read_lockfile: a plain file name, never a path
        if d["manager"] == "conda":
            conda.append(condasolve.CondaPackage(
                name=d["name"], version=d["version"], build=d["build"],
                subdir=("/" + urlparse(url).path).split("/")[-2], url=url, sha256=digests["sha256"],
                md5=digests.get("md5") or "", filename=filename, dependencies=deps))
        else:
            pip.append(pipresolve.PipPackage(
                name=d["name"], version=d["version"], url=url, sha256=digests["sha256"],
                filename=filename, requested=False, dependencies=deps))
    custom = meta.get("custom_metadata") if isinstance(meta.get("custom_metadata"), dict) else {}
    image = custom.get("envctl.image")
    return LockedEnv(name=image if isinstance(image, str) else path.name.split(".")[0], platform=platform,
                     inputs_hash=inputs or "", lock_hash=lock_hash or "",
                     conda=sorted(conda, key=lambda p: p.name), pip=sorted(pip, key=lambda p: p.name))


def require_current_lock(spec: ImageSpec, path: Path, *, platform: str = "linux-64") -> LockedEnv:
    """The lock for ``spec``, or StaleLockError saying to run envctl lock."""
    state = lock_state(spec, path)
    if state.state == "not locked":
        raise StaleLockError(f"{spec.name} has no lockfile ({path})", hint=f"run: envctl lock {spec.name}")
    if state.state == "edited":
        raise StaleLockError(f"{path} was edited by hand: its body no longer has the hash its header records",
                             hint=f"regenerate it: envctl lock {spec.name}")
    if state.state == "foreign":
        raise StaleLockError(f"{path} was not written by envctl (empty, not UTF-8, or no '{HEADER_MARK}' header)",
                             hint=f"regenerate it: envctl lock {spec.name} --force")
    if state.state != "locked":
        raise StaleLockError(f"{path} is {state.state}: images/{spec.name}.yaml changed since it was locked",
                             hint=f"run: envctl lock {spec.name}")
    return load_lock(path, platform=platform)
