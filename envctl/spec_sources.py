"""Where a spec's packages come from: the conda channels, pip indexes and find-links that locking
it reads, in the lock's own order.

One answer for every question about them, each asker keeping its own policy: the lock resolves
with them (``envctl.lock.lockfile``; ``envctl export`` writes them as pip's options), a refused
name's neighbours are judged by whether they answer (``envctl.nearest``, one quick probe per host)
and ``envctl doctor`` checks each for setup (its findings).  They follow from the spec alone:
conda channels only where conda packages are asked for, pip's sources only where pip
requirements are, the PyTorch index only for ``torch_source: pytorch-index``.  A derived spec's
index is already the mirror ``ENVCTL_INDEX_URL`` names (``envctl.catalog``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envctl.spec import ImageSpec, PipIndex


@dataclass(frozen=True)
class Sources:
    """Every source locking a spec reads, in the lock's order."""

    channels: tuple[str, ...] = ()  # conda channels as the spec names them (channel_url: where each is)
    indexes: tuple[str, ...] = ()  # pip's --index-url, then its --extra-index-urls
    find_links: tuple[str, ...] = ()


def pip_sources(spec: ImageSpec) -> PipIndex:
    """pip's sources as the lock resolves with them: for ``torch_source: pytorch-index`` the
    PyTorch index of the spec's variant comes first and the spec's own index becomes an extra
    one; otherwise the spec's ``pip_index`` as written."""
    pi = spec.pip_index
    if spec.torch_source != "pytorch-index":
        return pi
    return PipIndex(spec.torch_index_url, (pi.index_url, *pi.extra_index_urls), pi.find_links)


def sources(spec: ImageSpec) -> Sources:
    """The sources locking ``spec`` reads: none of a package manager it asks nothing of."""
    pip = pip_sources(spec) if spec.pip_requirements() else None
    return Sources(channels=spec.channels if spec.conda_specs() else (),
                   indexes=(pip.index_url, *pip.extra_index_urls) if pip else (),
                   find_links=pip.find_links if pip else ())


def channel_url(channel: str) -> str:
    """'conda-forge' -> https://conda.anaconda.org/conda-forge; paths -> file:// URLs."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", channel):
        return channel.rstrip("/")
    if channel.startswith(("/", ".", "~")):
        return Path(channel).expanduser().resolve().as_uri()
    return f"https://conda.anaconda.org/{channel}"
