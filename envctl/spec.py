"""Image specs: ``images/NAME.yaml`` read strictly into an ``ImageSpec``.

Every key is validated; an unknown key, a wrong type or an impossible value
raises ``SpecError`` naming the file, the key path and what is allowed.  The
torch/CUDA/Python combination is checked against the release matrix.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from envctl import yamldoc
from envctl.data import read as read_data
from envctl.errors import SpecError
from envctl.matrix import IMAGE_NAME_RE, VARIANT_RE, load_matrix, minor_of, parse_version, variant_to_cuda
from envctl.fsio import read_document

# "base": the base image already has torch (an NGC container, say); the lock leaves it out.
# "pypi": PyPI's own Linux wheels, one CUDA variant per release (the matrix says which).
TORCH_SOURCES = ("pytorch-index", "pypi", "find-links", "conda-forge", "pytorch-channel", "base")
PYTHON_SOURCES = ("conda", "base")
PLATFORMS = ("linux-64", "linux-aarch64")
COMPANIONS = ("torchvision", "torchaudio")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
DTYPES = ("fp32", "bf16", "fp16")
MODELS = ("resnet50", "transformer")
LEVELS = ("quick", "standard", "full")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@lru_cache(maxsize=1)
def defaults() -> dict[str, Any]:
    return yamldoc.load(read_data("defaults.yaml"))


@dataclass(frozen=True)
class PipIndex:
    index_url: str
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()


@dataclass(frozen=True)
class SmokeSettings:
    gpus: str = "all"
    level: str = "quick"
    compile_modes: tuple[str, ...] = ("default", "reduce-overhead")
    batch_sizes: tuple[int, ...] = (1, 32)
    dtypes: tuple[str, ...] = ("fp32", "bf16")
    models: tuple[str, ...] = ("resnet50", "transformer")
    max_autotune: bool = False


@dataclass(frozen=True)
class ImageSpec:
    name: str
    description: str
    python: str
    torch: str
    cuda: str  # variant: cpu, cu126, ...
    torch_source: str
    python_source: str
    base: str
    platforms: tuple[str, ...]
    channels: tuple[str, ...]
    conda: tuple[str, ...]
    pip: tuple[str, ...]
    pip_index: PipIndex
    companions: tuple[str, ...] = ()
    smoke: SmokeSettings = field(default_factory=SmokeSettings)
    path: str = ""

    @property
    def cuda_version(self) -> str | None:
        return variant_to_cuda(self.cuda)

    @property
    def is_gpu(self) -> bool:
        return self.cuda != "cpu"

    @property
    def torch_index_url(self) -> str:
        """The PyTorch wheel index of this spec's variant (e.g. .../whl/cu126)."""
        return defaults()["torch_index"].format(variant=self.cuda)

    @property
    def env_prefix(self) -> str:
        """Where the environment lives in images and its name in the Miniconda-style layout."""
        return f"/opt/conda/envs/{self.name}"

    def torch_requirements(self) -> list[str]:
        """The pip requirements for torch and its companions, pinned to the matrix."""
        if self.torch_source not in ("pytorch-index", "pypi", "find-links"):
            return []
        rel = load_matrix().release(self.torch)
        reqs = [f"torch=={self.torch}"]
        for comp in self.companions:
            reqs.append(f"{comp}=={getattr(rel, comp)}.*")
        return reqs

    def torch_conda_specs(self) -> list[str]:
        if self.torch_source not in ("conda-forge", "pytorch-channel"):
            return []
        specs = [f"pytorch=={self.torch}"]
        if self.torch_source == "pytorch-channel" and self.is_gpu:
            specs.append(f"pytorch-cuda=={self.cuda_version}")
        return specs

    def conda_specs(self) -> list[str]:
        """Every conda match spec the solve gets: python (when conda provides it), torch, extras."""
        specs = [f"python={self.python}"] if self.python_source == "conda" else []
        return specs + self.torch_conda_specs() + list(self.conda)

    def pip_requirements(self) -> list[str]:
        reqs = self.torch_requirements() + list(self.pip)
        if reqs and self.python_source == "base" and not any(_req_name(r) == "pip" for r in reqs):
            # The venv on the base's Python gets its installer from the lock too, so the
            # environment holds exactly the locked set (pip freeze --all equals the lock).
            reqs.append("pip")
        return reqs

    def lock_inputs(self) -> dict[str, Any]:
        """The fields that decide the lock's content (not description, base or smoke)."""
        data = asdict(self)
        for key in ("description", "base", "smoke", "path", "name"):
            data.pop(key)
        return data

    def lock_inputs_hash(self) -> str:
        return _hash(self.lock_inputs())

    def content_hash(self) -> str:
        """What the image is made of: everything but the description and the smoke settings."""
        data = asdict(self)
        for key in ("path", "description", "smoke"):
            data.pop(key)
        return _hash(data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path")
        return data


def _req_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ @]", requirement.strip(), maxsplit=1)[0].lower()


def _hash(data: dict[str, Any]) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


# ---------------------------------------------------------------- validation
class _Reader:
    """Pops keys from a mapping, checking types; reports paths like smoke.dtypes[1]."""

    def __init__(self, path: str, data: Any, prefix: str = "") -> None:
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            raise SpecError(path, prefix or None, f"expected a mapping, got {_typename(data)}")
        self.data = dict(data)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> SpecError:
        return SpecError(self.path, self.key(name), problem)

    def str(self, name: str, default: Any = ..., *, choices: tuple[str, ...] | None = None,
            pattern: re.Pattern | None = None, what: str = "") -> Any:
        value = self._take(name, default)
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string{_what(what)}, got {_typename(value)} {value!r}")
        if choices and value not in choices:
            raise self.fail(name, f"{value!r} is not allowed; allowed: {', '.join(choices)}")
        if pattern and not pattern.match(value):
            raise self.fail(name, f"{value!r} is not {what or 'valid'}")
        return value

    def str_list(self, name: str, default: list[str], *, choices: tuple[str, ...] | None = None,
                 nonempty: bool = False) -> tuple[str, ...]:
        value = self._take(name, default)
        if not isinstance(value, list):
            raise self.fail(name, f"expected a list of strings, got {_typename(value)}")
        if nonempty and not value:
            raise self.fail(name, "must name at least one" + (f"; allowed: {', '.join(choices)}" if choices else ""))
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{name}[{i}]", f"expected a non-empty string, got {item!r}")
            if choices and item not in choices:
                raise self.fail(f"{name}[{i}]", f"{item!r} is not allowed; allowed: {', '.join(choices)}")
        return tuple(value)

    def int_list(self, name: str, default: list[int], *, most: int) -> tuple[int, ...]:
        value = self._take(name, default)
        if not isinstance(value, list) or not value:
            raise self.fail(name, f"expected a non-empty list of integers from 1 to {most}")
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or not 0 < item <= most:
                raise self.fail(f"{name}[{i}]", f"{item!r} is not allowed; allowed: an integer from 1 to {most}")
        return tuple(value)

    def bool(self, name: str, default: bool) -> bool:
        value = self._take(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"expected true or false, got {value!r}")
        return value

    def sub(self, name: str) -> _Reader:
        value = self._take(name, {})
        return _Reader(self.path, {} if value is None else value, self.key(name))

    def finish(self) -> None:
        if self.data:
            unknown = sorted(self.data)[0]
            raise self.fail(unknown, "unknown key" + self._allowed_hint())

    def _allowed_hint(self) -> str:
        allowed = _ALLOWED.get(self.prefix)
        return f"; allowed keys: {', '.join(allowed)}" if allowed else ""

    def _take(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data.pop(name)
        if default is ...:
            raise self.fail(name, "required key is missing")
        return default


_ALLOWED = {
    "": ("version", "name", "description", "python", "torch", "cuda", "torch_source", "python_source",
         "companions", "base", "platforms", "channels", "conda", "pip", "pip_index", "smoke"),
    "pip_index": ("index_url", "extra_index_urls", "find_links"),
    "smoke": ("gpus", "level", "compile_modes", "batch_sizes", "dtypes", "models", "max_autotune"),
}


def _typename(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer",
            float: "a number", bool: "a boolean", type(None): "nothing"}.get(type(value), type(value).__name__)


def _what(what: str) -> str:
    return f" ({what})" if what else ""


_PY_RE = re.compile(r"^3\.\d{1,2}$")
_TORCH_RE = re.compile(r"^\d+\.\d+\.\d+$")


def parse_spec(data: Any, *, path: str, expected_name: str | None = None) -> ImageSpec:
    """Validate a decoded YAML document and return the resolved spec."""
    d = defaults()
    r = _Reader(path, data)
    version = r._take("version", 1)
    if type(version) is not int or version != 1:  # true and 1.0 == 1 in Python; neither is a version
        raise r.fail("version", f"unsupported spec version {version!r}; allowed: 1")
    name = r.str("name", pattern=NAME_RE, what="a valid image name (lowercase letters, digits, . _ -)")
    if expected_name and name != expected_name:
        raise r.fail("name", f"{name!r} does not match the file name {expected_name!r}")
    description = r.str("description", "")
    python = r.str("python", pattern=_PY_RE, what='a Python minor version such as "3.11"')
    torch = r.str("torch", pattern=_TORCH_RE, what='a torch release such as "2.8.0"')
    cuda = r.str("cuda", pattern=VARIANT_RE, what="a CUDA variant: cpu or cuXYZ such as cu126")
    torch_source = r.str("torch_source", "pytorch-index", choices=TORCH_SOURCES)
    python_source = r.str("python_source", "conda", choices=PYTHON_SOURCES)
    companions = r.str_list("companions", [], choices=COMPANIONS)
    base_default = d["base"]["cpu" if cuda == "cpu" else "cuda"]
    base = r.str("base", base_default)
    platforms = r.str_list("platforms", d["platforms"], choices=PLATFORMS, nonempty=True)
    channels = r.str_list("channels", d["channels"])
    conda = r.str_list("conda", [])
    pip = r.str_list("pip", [])
    pi = r.sub("pip_index")
    default_index = d["pypi_index"]
    pip_index = PipIndex(
        index_url=pi.str("index_url", default_index),
        extra_index_urls=pi.str_list("extra_index_urls", []),
        find_links=pi.str_list("find_links", []),
    )
    pi.finish()
    sm = r.sub("smoke")
    sd = d["smoke"]
    gpus = sm._take("gpus", sd["gpus"])
    most_gpus = d["limits"]["gpus"]
    if not (gpus in ("all", "none") or (type(gpus) is int and 0 <= gpus <= most_gpus)):
        raise sm.fail("gpus", f"{gpus!r} is not allowed; allowed: all, none, or a GPU count from 0 to {most_gpus}")
    smoke = SmokeSettings(
        gpus=str(gpus),
        level=sm.str("level", sd["level"], choices=LEVELS),
        compile_modes=sm.str_list("compile_modes", sd["compile_modes"], choices=COMPILE_MODES, nonempty=True),
        batch_sizes=sm.int_list("batch_sizes", sd["batch_sizes"], most=d["limits"]["batch_size"]),
        dtypes=sm.str_list("dtypes", sd["dtypes"], choices=DTYPES, nonempty=True),
        models=sm.str_list("models", sd["models"], choices=MODELS, nonempty=True),
        max_autotune=sm.bool("max_autotune", sd["max_autotune"]),
    )
    sm.finish()
    r.finish()

    spec = ImageSpec(
        name=name, description=description, python=python, torch=torch, cuda=cuda,
        torch_source=torch_source, python_source=python_source, companions=companions,
        base=base, platforms=platforms, channels=channels, conda=conda, pip=pip,
        pip_index=pip_index, smoke=smoke, path=path,
    )
    _check_against_matrix(spec)
    _check_consistency(spec)
    from envctl.spec_strings import check_strings

    check_strings(spec)
    return spec


def _check_against_matrix(spec: ImageSpec) -> None:
    m = load_matrix()
    rel = m.release(spec.torch)
    if rel is None:
        raise SpecError(spec.path, "torch", f"torch {minor_of(spec.torch)} is not in the release matrix; "
                        f"known: {m.minors()[0]} .. {m.minors()[-1]}")
    if spec.torch not in rel.releases:
        raise SpecError(spec.path, "torch", f"torch {spec.torch} is not a release of {rel.minor}; "
                        f"releases: {', '.join(rel.releases)}")
    if not rel.python_ok(spec.python):
        raise SpecError(spec.path, "python", f"torch {rel.minor} supports Python {rel.python[0]} - "
                        f"{rel.python[1]}, not {spec.python}")
    verdict = m.verdict(rel.minor, spec.cuda)
    if not verdict.exists:
        raise SpecError(spec.path, "cuda", verdict.explain())
    if spec.torch_source == "pytorch-channel":
        if not rel.pytorch_channel:
            raise SpecError(spec.path, "torch_source", f"the pytorch conda channel ends with torch 2.5; "
                            f"torch {rel.minor} comes from pytorch-index or conda-forge")
    for comp in spec.companions:
        if getattr(rel, comp) is None and spec.torch_source in ("pytorch-index", "pypi", "find-links"):
            raise SpecError(spec.path, "companions", f"{comp} has no release for torch {rel.minor} yet "
                            f"(release matrix, refreshed {m.refreshed})",
                            hint=f"drop {comp}, or run envctl matrix refresh once it is released")
    if spec.torch_source == "pypi" and spec.cuda != rel.pypi:
        raise SpecError(spec.path, "cuda", pypi_variant_problem(rel, spec.cuda),
                        hint="use torch_source: pytorch-index for other variants, or the PyPI variant")
    if spec.torch_source == "conda-forge" and spec.cuda == "cu118" and parse_version(spec.torch) >= (2, 6):
        raise SpecError(spec.path, "torch_source", "conda-forge dropped CUDA 11.8 builds of pytorch at the "
                        "end of 2024 (torch <= 2.5); use torch_source: pytorch-index")


def pypi_variant_problem(rel, variant: str) -> str:
    """Why PyPI cannot serve this variant, and where it does come from."""
    if rel.pypi is None:
        return f"PyPI carries no Linux CUDA wheel of torch {rel.minor} that envctl knows of"
    where = (f"the PyTorch index ({defaults()['torch_index'].format(variant=variant)})" if variant == "cpu"
             or rel.status_of(variant) else "no official source")
    return (f"PyPI's torch {rel.minor} wheel is the {rel.pypi} build, not {variant}; "
            f"{variant} comes from {where}")


def _check_consistency(spec: ImageSpec) -> None:
    m = IMAGE_NAME_RE.match(spec.name)
    if m:
        minor, variant = f"{m.group(1)}.{m.group(2)}", m.group(3)
        if minor != minor_of(spec.torch):
            raise SpecError(spec.path, "torch", f"{spec.torch} does not match the image name {spec.name} "
                            f"(torch {minor})")
        if variant != spec.cuda:
            raise SpecError(spec.path, "cuda", f"{spec.cuda} does not match the image name {spec.name} "
                            f"({variant})")
    if spec.python_source == "conda" and not spec.channels:
        raise SpecError(spec.path, "channels", "python_source is conda but no channel is named")
    if spec.torch_source in ("conda-forge", "pytorch-channel") and not spec.channels:
        raise SpecError(spec.path, "channels", f"torch_source {spec.torch_source} needs a channel")
    if spec.torch_source == "find-links" and not spec.pip_index.find_links:
        raise SpecError(spec.path, "pip_index.find_links",
                        "torch_source find-links needs at least one folder or URL")


def load_spec(path: Path) -> ImageSpec:
    """Read and validate ``images/NAME.yaml``."""
    try:
        text = read_document(path)
    except OSError as exc:
        raise SpecError(str(path), None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(str(path), None, f"not UTF-8 text (byte {exc.start})") from None
    try:
        doc = yamldoc.load(text, unique_keys=True)
    except yamldoc.DocumentError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise SpecError(str(path), None, f"not valid YAML{where}: {exc.problem}") from None
    return parse_spec(doc, path=str(path), expected_name=path.stem)
