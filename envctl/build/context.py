"""The build context: the locked packages from the verified cache, laid out per layer.

``layers/<name>/`` holds one layer's wheels and its hash-checking requirements file,
``tools/`` the pip wheel the install runs with and the in-build scripts
(``envctl/builder/``), ``conda/`` the conda archives.  Files are hard links into the
cache where possible: a GPU context is GBs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from envctl.build.plan import BuildPlan, requirements_txt
from envctl.cache import PackageCache, relinked
from envctl.errors import BuildError
from envctl.fsio import inside
BUILDER_SCRIPTS = Path(__file__).resolve().parent.parent / "builder"


def assemble_context(plan: BuildPlan, cache: PackageCache, context: Path, *,
                     progress: Callable[[str], None] = lambda _m: None) -> int:
    """Fill ``context`` from the verified cache; returns the bytes of packages in it."""
    total = 0
    mirrors = tuple(plan.spec.pip_index.find_links)
    (context / "Dockerfile").write_text(plan.dockerfile)
    tools = context / "tools"
    tools.mkdir()
    shutil.copyfile(BUILDER_SCRIPTS / "seal_layer.py", tools / "seal_layer.py")
    count, done = len(plan.pip_files), 0
    for layer in plan.layers:
        folder = context / "layers" / layer.name
        folder.mkdir(parents=True)
        for p in layer.packages:
            done += 1
            verb = "verifying" if cache.has(p.sha256, p.filename) else "fetching"
            progress(f"{verb} {p.filename} ({done}/{count})")
            path = cache.get(url=p.url, sha256=p.sha256, filename=p.filename, mirrors=mirrors)
            total += _link(path, inside(folder, folder / p.filename))
            if p.name == "pip":  # the installer every layer runs with
                _link(path, inside(tools, tools / p.filename))
        (folder / "requirements.txt").write_text(requirements_txt(layer))
    if plan.conda_files:
        conda = context / "conda"
        conda.mkdir()
        for i, (url, sha, _md5, filename) in enumerate(plan.conda_files, 1):
            progress(f"verifying {filename} ({i}/{len(plan.conda_files)})")
            total += _link(cache.get(url=url, sha256=sha, filename=filename), inside(conda, conda / filename))
        (conda / "packages.json").write_text(json.dumps(
            [{"filename": f, "sha256": s, "md5": m, "url": u} for u, s, m, f in plan.conda_files], indent=1))
        filename, sha, url = plan.rattler
        wheel = cache.get(url=url, sha256=sha, filename=filename)
        total += _link(wheel, tools / wheel.name)
        for script in ("install_conda.py", "unpack_wheel.py"):
            shutil.copyfile(BUILDER_SCRIPTS / script, tools / script)
    return total


def _link(src: Path, dest: Path) -> int:
    try:
        dest.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dest)
    relinked(src, src.parent.name)  # cached files live at sha256/<sha>/<filename>
    return src.stat().st_size


RATTLER_PLATFORM = {"linux-64": "manylinux2014_x86_64", "linux-aarch64": "manylinux2014_aarch64"}


def rattler_tool(cache: PackageCache, platform: str = "linux-64") -> tuple[str, str, str]:
    """(wheel filename, sha256, url) of the py-rattler the builder stage installs conda packages with.

    The host's py-rattler version, for the image's platform; its sha256 is the one PyPI
    publishes for that file, and the cached copy is checked against it on every use.
    """
    import urllib.request
    from importlib.metadata import version

    from envctl.net import ssl_context

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


