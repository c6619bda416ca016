"""Spec strings are data, never options: the checks on every string that reaches pip, a solver or Docker.

``parse_spec`` reads a spec's shape; this module checks what its strings say.  A
pip entry must be a requirement (a name, extras, a version specifier, markers),
never a command-line option such as ``--no-deps`` or ``--index-url=...``; index
URLs must be http(s) or file URLs; find-links entries absolute paths or URLs;
conda entries match specs; channels names or URLs; ``base`` a Docker image
reference.  Sizes are capped so a 2 MB description fails here, naming its key,
rather than as a Dockerfile error at build time.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from envctl.errors import SpecError

MAX_DESCRIPTION = 1000  # characters; it becomes an image label
MAX_ENTRY = 500  # characters for any requirement, URL, path or reference
MAX_ENTRIES = 500  # items in any list

# Docker's reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest].
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REF_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                          r"(?:@sha256:[0-9a-f]{64})?$")
# A conda match spec: name, then version/build constraints; no options, no shell metacharacters.
_CONDA_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*(?:\s*(?:[<>=!~]=?|\s)\s*[A-Za-z0-9_.*+!<>=,|~ -]*)?$")
_CHANNEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# The plain shapes nearly every spec uses ("numpy", "numpy==2.3.5", "torchvision==0.29.*",
# "filelock>=3.0,<4"), valid by construction; anything else (extras, markers, local versions,
# URLs) is judged by packaging, whose 15 ms of imports every lock would otherwise pay first.
_RELEASE = r"[0-9]+(?:\.[0-9]+)*"
_SUFFIX = r"(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?"
_CLAUSE = (rf"\s*(?:(?:==|!=)\s*(?:{_RELEASE}\.\*|{_RELEASE}{_SUFFIX})|(?:>=|<=|>|<)\s*{_RELEASE}{_SUFFIX}"
           rf"|~=\s*[0-9]+(?:\.[0-9]+)+{_SUFFIX})\s*")
_PLAIN_REQ_RE = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:{_CLAUSE}(?:,{_CLAUSE})*)?")


def check_strings(spec) -> None:
    """Raise SpecError naming the key of the first string that is not what its key holds."""
    path = spec.path
    if len(spec.description) > MAX_DESCRIPTION:
        raise SpecError(path, "description", f"{len(spec.description)} characters; at most {MAX_DESCRIPTION}",
                        hint="keep the description to a sentence or two")
    if _CONTROL_RE.search(spec.description):
        raise SpecError(path, "description", "contains control characters (newlines, escapes); one line of text")
    if len(spec.base) > MAX_ENTRY or not IMAGE_REF_RE.match(spec.base):
        raise SpecError(path, "base", f"{_show(spec.base)} is not a Docker image reference",
                        hint="name an image like envctl/debian:bookworm or repo@sha256:<64 hex>")
    for key, items in (("pip", spec.pip), ("conda", spec.conda), ("channels", spec.channels),
                       ("pip_index.extra_index_urls", spec.pip_index.extra_index_urls),
                       ("pip_index.find_links", spec.pip_index.find_links)):
        if len(items) > MAX_ENTRIES:
            raise SpecError(path, key, f"{len(items)} entries; at most {MAX_ENTRIES}")
    for i, item in enumerate(spec.pip):
        problem = pip_requirement_problem(item)
        if problem:
            raise SpecError(path, f"pip[{i}]", problem,
                            hint="list requirements such as numpy==2.3.5; indexes go under pip_index")
    for i, item in enumerate(spec.conda):
        if len(item) > MAX_ENTRY or item.startswith("-") or not _CONDA_RE.match(item.strip()):
            raise SpecError(path, f"conda[{i}]", f"{_show(item)} is not a conda match spec",
                            hint="list specs such as numpy=2.3 or pip; channels go under channels")
    for i, item in enumerate(spec.channels):
        if not (_url_ok(item, ("http", "https", "file")) or _abs_path_ok(item) or
                (len(item) <= MAX_ENTRY and _CHANNEL_NAME_RE.match(item))):
            raise SpecError(path, f"channels[{i}]",
                            f"{_show(item)} is not a channel name, absolute folder or http(s)/file URL")
    urls = [("pip_index.index_url", spec.pip_index.index_url)]
    urls += [(f"pip_index.extra_index_urls[{i}]", u) for i, u in enumerate(spec.pip_index.extra_index_urls)]
    for key, url in urls:
        if not _url_ok(url, ("http", "https", "file")):
            raise SpecError(path, key, f"{_show(url)} is not an http(s) or file URL")
    for i, link in enumerate(spec.pip_index.find_links):
        if not (_url_ok(link, ("http", "https", "file")) or _abs_path_ok(link)):
            raise SpecError(path, f"pip_index.find_links[{i}]",
                            f"{_show(link)} is neither an absolute folder path nor an http(s)/file URL")


def pip_requirement_problem(item: str) -> str | None:
    """Why ``item`` is not a plain requirement (None when it is one)."""
    text = item.strip()
    if text.startswith("-"):
        return f"{_show(item)} is a pip option, not a requirement; options are not allowed in a spec"
    if len(text) > MAX_ENTRY or _CONTROL_RE.search(text):
        return f"{_show(item)} is not a requirement (too long or control characters)"
    if _PLAIN_REQ_RE.fullmatch(text):
        return None
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return f"{_show(item)} is not a requirement: {str(exc).splitlines()[0]}"
    if any(not s.version.strip() for s in req.specifier):
        return f"{_show(item)} has a version operator without a version"
    if req.url is not None:
        return f"{_show(item)} names a URL; a spec's requirements come from its indexes (pip_index)"
    return None


def _url_ok(value: str, schemes: tuple[str, ...]) -> bool:
    if len(value) > MAX_ENTRY or _CONTROL_RE.search(value) or value.startswith("-") or " " in value:
        return False
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        return False
    return bool(parsed.path) if parsed.scheme == "file" else bool(parsed.netloc)


def _abs_path_ok(value: str) -> bool:
    return value.startswith("/") and len(value) <= MAX_ENTRY and not _CONTROL_RE.search(value)


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")
