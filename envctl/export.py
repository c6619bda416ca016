"""``envctl export``: the lock in formats conda, micromamba and pip read by hand."""

from __future__ import annotations

from envctl.build import requirements_txt
from envctl.lock import LockedEnv
from envctl.spec import ImageSpec

FORMATS = ("environment.yml", "explicit", "requirements")


def export(spec: ImageSpec, lock: LockedEnv, fmt: str) -> str:
    header = f"# {spec.name}: exported by envctl from locks/{spec.name}.conda-lock.yml ({lock.lock_hash})\n"
    if fmt == "requirements":
        links = "".join(f"# find-links: {f}\n" for f in spec.pip_index.find_links)
        return header + links + "# install with: pip install --no-deps --require-hashes -r THIS_FILE\n" + \
            requirements_txt(lock)
    if fmt == "explicit":
        lines = [header.rstrip("\n"), "# platform: " + lock.platform, "@EXPLICIT"]
        lines += [f"{p.url}#{p.md5}" for p in lock.conda]
        if lock.pip:
            lines.append("# pip packages are not expressible here: use --format requirements")
        return "\n".join(lines) + "\n"
    if fmt == "environment.yml":
        import yaml

        deps: list = [f"{p.name}={p.version}={p.build}" for p in lock.conda]
        if lock.pip:
            deps.append({"pip": [f"{p.name}=={p.version}" for p in lock.pip]})
        doc = {"name": spec.name, "channels": list(spec.channels) or ["nodefaults"], "dependencies": deps}
        return header + yaml.safe_dump(doc, sort_keys=False)
    raise ValueError(fmt)
