"""``envctl export``: the lock in formats conda, micromamba and pip read by hand.

Each format stands on its own: it names where its packages come from (channels, the pip
index and find-links the spec names) and carries every hash, so its own consumer installs
the locked set with nothing else (no pip config, no envctl).
"""

from __future__ import annotations

from envctl.build import requirements_txt
from envctl.errors import UsageError
from envctl.lock import LockedEnv
from envctl.lock.grammar import conda_pin, explicit_line, pin
from envctl.spec import ImageSpec
from envctl.spec_sources import pip_sources

FORMATS = ("environment.yml", "explicit", "requirements")


def pip_source_lines(spec: ImageSpec) -> list[str]:
    """pip's options naming the spec's indexes and find-links, as the lock resolved them."""
    sources = pip_sources(spec)
    return ([f"--index-url {sources.index_url}"] + [f"--extra-index-url {u}" for u in sources.extra_index_urls]
            + [f"--find-links {f}" for f in sources.find_links])


def export(spec: ImageSpec, lock: LockedEnv, fmt: str) -> str:
    header = f"# {spec.name}: exported by envctl from locks/{spec.name}.conda-lock.yml ({lock.lock_hash})\n"
    if fmt == "requirements":
        return (header + "# install with: pip install --isolated --require-hashes -r THIS_FILE\n"
                + "".join(line + "\n" for line in pip_source_lines(spec)) + requirements_txt(lock))
    if fmt == "explicit":
        if not lock.conda:
            raise UsageError(f"the lock of {spec.name} has no conda packages ({len(lock.pip)} pip packages): "
                             f"an explicit file would install nothing",
                             hint=f"use: envctl export {spec.name} --format requirements (or environment.yml)")
        lines = [header.rstrip("\n"), "# platform: " + lock.platform, "@EXPLICIT"]
        lines += [explicit_line(p.url, p.md5) for p in lock.conda]
        return "\n".join(lines) + "\n"
    if fmt == "environment.yml":
        import yaml

        # The form conda-lock renders (name=version=build, pip lines with their hashes), plus what
        # makes the file work alone: python and pip from the channels, and pip's sources.
        names = {p.name for p in lock.conda}
        deps: list = [conda_pin(p.name, p.version, p.build) for p in lock.conda]
        if "python" not in names:
            deps.append(f"python={spec.python}")
        if lock.pip and "pip" not in names:
            deps.append("pip")
        if lock.pip:
            deps.append({"pip": pip_source_lines(spec)
                         + [pin(p.name, p.version, p.sha256) for p in lock.pip]})
        channels = list(spec.channels) or ["conda-forge"]
        doc = {"name": spec.name, "channels": [*channels, "nodefaults"], "dependencies": deps}
        return header + yaml.safe_dump(doc, sort_keys=False, width=1000)
    raise ValueError(fmt)
