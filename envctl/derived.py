"""Specs derived from the release matrix: a real ``pytorch-X.Y-VARIANT`` with no file in images/.

A torch x variant has one name, whatever serves its packages.  Where no hand-written spec
claims the name, the matrix implies one: the newest release of that torch, the variant, the
default base's Python, the companions released for it, the default base, and torch from the
source that serves the variant: PyPI where PyPI's own Linux wheel *is* that build (the matrix's
``pypi:``, read from the wheels' metadata), the PyTorch index for every other variant.  A conda
channel is never chosen: only a hand-written spec asks for conda.

Pure: no network, no file written.  ``envctl lock`` writes ``Derivation.text`` to
``images/NAME.yaml`` when it first locks the name, so the spec is reviewed and committed like
any other (and from then on it is a hand-written spec, which always wins).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from envctl.errors import UnknownImageError
from envctl.matrix import MATRIX_FILE, TorchRelease, load_matrix, parse_version, variant_to_cuda
from envctl.spec import COMPANIONS, ImageSpec, defaults, parse_spec, pypi_variant_problem

# Exactly pytorch-X.Y-VARIANT: a name with a flavour suffix is a hand-written spec's.
PLAIN_NAME_RE = re.compile(r"^pytorch-(\d+\.\d+)-(cpu|cu\d{2,3})$")


@dataclass(frozen=True)
class Derivation:
    """The spec a real name gets without a file, and why its torch comes from where it does."""

    spec: ImageSpec
    why: str  # one sentence: why this source (envctl show prints it)
    text: str  # the YAML that envctl lock writes to images/NAME.yaml


def torch_source_for(rel: TorchRelease, variant: str) -> tuple[str, str]:
    """(torch_source, why) for a variant of a torch minor: PyPI only where its wheel is that build."""
    if rel.pypi == variant:
        return "pypi", (f"PyPI's torch {rel.minor} Linux wheel is the {variant} build "
                        f"({MATRIX_FILE}: torch.\"{rel.minor}\".pypi)")
    return "pytorch-index", pypi_variant_problem(rel, variant)


def derive(name: str, *, path: str, index_url: str | None = None) -> Derivation | None:
    """The derived spec of ``name``; None unless it is exactly pytorch-X.Y-VARIANT of a real release.

    ``index_url``: the PyPI-compatible index to name in the spec (a mirror of PyPI); None keeps
    the default, so the spec leaves it out."""
    m = PLAIN_NAME_RE.match(name)
    rel = load_matrix().torch.get(m.group(1)) if m else None
    if rel is None or rel.status_of(m.group(2)) is None:
        return None
    variant = m.group(2)
    settings = defaults()["derived"]
    python = settings["python"]
    if not rel.python_ok(python):
        raise UnknownImageError(
            f"{name} is a real PyTorch combination, but torch {rel.minor} supports Python {rel.python[0]} - "
            f"{rel.python[1]} and the default base's is {python}: no spec is derived for it",
            hint=f"write images/{name}.yaml with a Python torch {rel.minor} supports (python_source: conda)")
    torch = max(rel.releases, key=parse_version)
    source, why = torch_source_for(rel, variant)
    cuda = variant_to_cuda(variant)
    build = f"CUDA {cuda}" if cuda else "CPU"
    data: dict = {
        "version": 1, "name": name,
        "description": f"torch {torch} {build} build from {source}, the base's Python {python} "
                       f"(derived from the release matrix)",
        "python": python, "torch": torch, "cuda": variant, "torch_source": source,
        "python_source": settings["python_source"], "base": defaults()["base"]["cpu" if cuda is None else "cuda"],
        "companions": [c for c in COMPANIONS if getattr(rel, c) is not None],
        "channels": [],
    }
    pip = next((rule["pip"] for rule in settings.get("pip_before") or ()
                if parse_version(rel.minor) < parse_version(rule["before"])), settings.get("pip"))
    if pip:
        data["pip"] = list(pip)
    if index_url and index_url != defaults()["pypi_index"]:
        data["pip_index"] = {"index_url": index_url}
    if cuda is None:
        data["smoke"] = {"gpus": "none"}  # a CPU build asks for no GPU
    spec = parse_spec(data, path=path, expected_name=name)  # the same checks as a written spec
    return Derivation(spec=spec, why=why, text=_render(data, minor=rel.minor, why=why))


def _render(data: dict, *, minor: str, why: str) -> str:
    """The spec as YAML, one key a line (JSON scalars and flow collections are YAML), with a
    header saying where it came from; no PyYAML on the path of ``envctl show``."""
    header = [f"# Derived by envctl from the release matrix ({MATRIX_FILE}, refreshed {load_matrix().refreshed})",
              f"# as no images/{data['name']}.yaml existed; torch {data['torch']} is the newest {minor} release.",
              f"# torch from {data['torch_source']}: {why}.",
              "# Written when first locked: review and commit it like any spec, and edit it as you need."]
    body = [f"{key}: {json.dumps(value)}" for key, value in data.items()]
    return "\n".join(header + body) + "\n"
