"""``envctl matrix refresh``: bring the release matrix up to date from the package indexes.

Plan, then apply: ``plan_refresh`` reads PyPI (torch, torchvision, torchaudio pages and one
wheel's metadata per release, in parallel, cached) and the PyTorch per-variant index where it
answers, merges what they state into the data file's torch table, and returns the new text
with the changes and notes; nothing is written until every read succeeded.  ``apply`` writes
the file atomically.  Fields no index states (CUDA status and cuDNN per variant from
RELEASE.md, arch lists, drivers) stay as curated; a new minor gets its PyPI variant seeded
and a note saying what to curate.
"""

from __future__ import annotations

import copy
import datetime as _dt
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from envctl.errors import PackageIndexError, UsageError
from envctl.matrix import parse_version, variant_to_cuda
from envctl.pypi import derive, matrixfile
from envctl.pypi.http import executor
from envctl.pypi.metadata import read_metadata
from envctl.pypi.simple import DistFile, ProjectPage, project_page

PYPI = "https://pypi.org/simple"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
COMPANIONS = ("torchvision", "torchaudio")


@dataclass(frozen=True)
class Change:
    minor: str
    key: str
    old: object
    new: object


@dataclass
class RefreshPlan:
    path: Path
    old_text: str
    new_text: str
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)  # metadata reads by source

    @property
    def stale(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        name = str(self.path)
        return "".join(difflib.unified_diff(self.old_text.splitlines(keepends=True),
                                            self.new_text.splitlines(keepends=True),
                                            fromfile=f"a/{name}", tofile=f"b/{name}"))

    def as_dict(self) -> dict:
        return {"path": str(self.path), "stale": self.stale, "diff": self.diff(),
                "changes": [c.__dict__ for c in self.changes], "notes": self.notes, "reads": self.reads}


def default_path() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "release-matrix.yaml"


def _check_index(option: str, url: str) -> None:
    """An index the command line names: an http(s) or file URL, or a folder (as envctl.pypi.http reads)."""
    from urllib.parse import urlparse

    try:
        scheme = urlparse(url).scheme
    except ValueError as exc:  # an unclosed [IPv6] host
        raise UsageError(f"{option} {url} is not a URL ({exc})", hint="give the simple index's URL") from None
    if scheme not in ("", "file", "http", "https"):
        raise UsageError(f"{option} {url}: envctl reads http(s) and file URLs, not {scheme}:",
                         hint="give the simple index's URL") from None


def plan_refresh(*, path: Path | None = None, index_url: str = PYPI, pytorch_index: str | None = PYTORCH_INDEX,
                 cache_dir: Path | None = None, today: str | None = None) -> RefreshPlan:
    """Read the indexes and return what the data file would become.  Writes nothing.

    The reads run on envctl.pypi.http's pool, not one of their own that this function would join
    on the way out: Ctrl-C or SIGTERM then leaves at once (the CLI cuts the requests in flight)."""
    _check_index("--index-url", index_url)
    if pytorch_index:
        _check_index("--pytorch-index", pytorch_index)
    path = path or default_path()
    current = matrixfile.read(path)
    simple_cache = cache_dir / "simple" if cache_dir else None
    meta_cache = cache_dir / "metadata" if cache_dir else None
    pool = executor()
    pages = {name: pool.submit(project_page, index_url, name, cache_dir=simple_cache)
             for name in ("torch", *COMPANIONS)}
    variants_job = pool.submit(_pytorch_variants, pytorch_index, simple_cache) if pytorch_index else None
    torch_page = pages["torch"].result()
    torch_rels = derive.releases(torch_page, "torch")
    if not torch_rels:
        raise PackageIndexError(f"{torch_page.url} lists no Linux x86_64 torch wheel since 2.0",
                                hint="check --index-url: it should be a simple index carrying torch")
    comp_rels = {}
    for name in COMPANIONS:
        try:
            comp_rels[name] = derive.releases(pages[name].result(), name)
        except PackageIndexError as exc:
            if "HTTP 404" not in str(exc):
                raise
            comp_rels[name] = []  # an index without this companion: the file's values stay
    wanted: list[DistFile] = [r.primary() for r in torch_rels]
    for rels in comp_rels.values():
        newest = {}
        for r in rels:
            newest[r.minor] = r
        wanted += [r.primary() for r in newest.values()]
    metas = dict(zip([w.filename for w in wanted],
                     pool.map(lambda w: read_metadata(w, cache_dir=meta_cache), wanted)))
    variants = variants_job.result() if variants_job else (None, "no PyTorch index given")
    facts = derive.torch_facts(torch_rels, metas)
    companions = {name: derive.companion_minors(rels, metas, name) for name, rels in comp_rels.items()}
    new_data, changes, notes = merge(current.data, facts, companions, variants[0])
    if variants[0] is None:
        notes.append(f"PyTorch per-variant index not read ({variants[1]}): the CUDA variants per torch "
                     f"are kept from the file")
    if changes:
        new_data["refreshed"] = today or _dt.date.today().isoformat()
    text = matrixfile.render(new_data, header=current.header, tail=current.tail)
    reads: dict[str, int] = {}
    for m in metas.values():
        reads[m.source] = reads.get(m.source, 0) + 1
    return RefreshPlan(path=path, old_text=current.text, new_text=text, changes=changes, notes=notes, reads=reads)


def apply(plan: RefreshPlan) -> bool:
    """Write the planned text atomically; False when the file already holds it."""
    from envctl.fsio import atomic_write
    if not plan.stale:
        return False
    atomic_write(plan.path, plan.new_text)
    return True


def merge(data: dict, facts: dict[str, derive.TorchFacts], companions: dict[str, dict[str, str]],
          variants: dict[str, set[str]] | None) -> tuple[dict, list[Change], list[str]]:
    """The data with what the indexes state merged in; curated fields kept (pure)."""
    new = copy.deepcopy(data)
    changes: list[Change] = []
    notes: list[str] = []
    table = new["torch"]

    def put(minor: str, key: str, value: object) -> None:
        old = table[minor].get(key)
        if old != value:
            changes.append(Change(minor, key, old, value))
            table[minor][key] = value

    for minor in sorted(facts, key=parse_version):
        f = facts[minor]
        if minor not in table:
            table[minor] = {"releases": [], "python": list(f.python or ("3.10", "3.10")),
                            "cuda": {"stable": {}, "experimental": {}}, "torchvision": None, "torchaudio": None}
            changes.append(Change(minor, "minor", None, "added"))
            notes.append(f"torch {minor} is new: its CUDA variants, their status and cuDNN (RELEASE.md) "
                         f"and its arch lists are not on any index; only the PyPI {f.pypi} build is seeded: curate the rest")
        row = table[minor]
        put(minor, "releases", list(f.releases))
        if f.python:
            put(minor, "python", list(f.python))
        put(minor, "pypi", f.pypi)
        put(minor, "pypi_libs", dict(f.libs) or None)
        if len(set(f.variants_by_release.values())) > 1:
            notes.append(f"torch {minor}: PyPI's wheels changed CUDA build between releases "
                         f"({', '.join(f'{r} {v}' for r, v in f.variants_by_release.items())}); pypi is the newest's")
        cuda = variant_to_cuda(f.pypi)
        if cuda is not None:
            known = {**row["cuda"]["stable"], **row["cuda"]["experimental"]}
            cudnn = f.libs.get("cudnn")
            if cuda not in known:
                row["cuda"]["stable"] = {**row["cuda"]["stable"], cuda: cudnn or "unknown"}
                changes.append(Change(minor, f"cuda.stable.{cuda}", None, cudnn))
            elif cudnn and known[cuda] != cudnn:
                notes.append(f"torch {minor}: the file gives cuDNN {known[cuda]} for CUDA {cuda}, PyPI's "
                             f"{f.from_release} wheel pins {cudnn} (kept the file's; check RELEASE.md)")
        for comp in COMPANIONS:
            found = companions.get(comp, {}).get(minor)
            if found is not None:
                put(minor, comp, found)
            elif row.get(comp) is not None:
                notes.append(f"torch {minor}: no {comp} release on the index pins it; kept {row[comp]} from the file")
        if variants is not None and minor in variants:
            have = set(_file_variants(row))
            extra, missing = sorted(variants[minor] - have), sorted(have - variants[minor])
            if extra:
                notes.append(f"torch {minor}: the PyTorch index has {', '.join(extra)} that the file lacks: "
                             f"curate their status and cuDNN")
            if missing:
                notes.append(f"torch {minor}: the file lists {', '.join(missing)} that the PyTorch index lacks")
    for minor in sorted(set(table) - set(facts), key=parse_version):
        notes.append(f"torch {minor}: not on the index; kept from the file")
    return new, changes, notes


def _file_variants(row: dict) -> list[str]:
    from envctl.matrix import cuda_to_variant

    return ["cpu"] + [cuda_to_variant(c) for c in {**row["cuda"]["stable"], **row["cuda"]["experimental"]}]


def _pytorch_variants(index: str, cache: Path | None) -> tuple[dict[str, set[str]] | None, str]:
    """torch minor -> variants on the PyTorch index (local versions +cpu, +cu128, ...)."""
    import re

    try:
        page: ProjectPage = project_page(index, "torch", cache_dir=cache)
    except PackageIndexError as exc:
        return None, str(exc)
    out: dict[str, set[str]] = {}
    for f in page.files:
        m = re.match(r"^torch-(\d+)\.(\d+)\.\d+\+(cpu|cu\d{3})-", f.filename)
        if m and (int(m.group(1)), int(m.group(2))) >= (2, 0):
            out.setdefault(f"{m.group(1)}.{m.group(2)}", set()).add(m.group(3))
    return out, "read"


