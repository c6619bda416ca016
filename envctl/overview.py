"""The overview the catalog and show commands print: catalog rows (lock state, last build and
verification) and one image's description.

Plain dicts so the same data serves the rich tables and ``--json``.
"""

from __future__ import annotations

from typing import Any

from envctl.catalog import Project
from envctl.lock.state import lock_state
from envctl.matrix import load_matrix, parse_version
from envctl.net import redact


def _latest_runs() -> tuple[dict, dict]:
    """The newest run per (image, kind) and the newest push per image, from the records."""
    from envctl.records import Records, default_path

    if not default_path().exists():
        return {}, {}
    records = Records()
    return records.latest(), records.last_pushes()


def catalog_rows(project: Project) -> list[dict[str, Any]]:
    """One row per spec; a spec that cannot be read is a row with its ``error`` (listed last)."""
    from envctl.errors import EnvctlError
    from envctl.spec import load_spec

    latest, pushes = _latest_runs()
    specs, broken = [], []
    for name in project.names():
        try:
            specs.append(load_spec(project.spec_path(name)))
        except EnvctlError as exc:
            broken.append({"name": name, "torch": "-", "cuda": "-", "python": "-", "torch_source": "-",
                           "description": "", "lock": "-", "last_build": None, "last_verify": None,
                           "pushed": None, "error": str(exc), "hint": exc.hint})
    rows = []
    specs.sort(key=lambda s: (parse_version(s.torch), s.cuda != "cpu", s.cuda, s.name))
    for spec in specs:
        build = latest.get((spec.name, "build"))
        verify = latest.get((spec.name, "verify"))
        rows.append({
            "name": spec.name, "torch": spec.torch, "cuda": spec.cuda, "python": spec.python,
            "torch_source": spec.torch_source, "description": spec.description,
            "lock": lock_state(spec, project.lock_path(spec.name)).state,
            "last_build": build.to_dict() if build else None,
            "last_verify": verify.to_dict() if verify else None,
            "pushed": (pushes.get(spec.name) or {}).get("ref"),  # the last push, by digest
            "error": None,
        })
    return rows + broken


def _cuda_libraries(lock_path, platform: str) -> dict[str, str]:
    """The CUDA layer's pip packages in a current lock, read as plain YAML: `show` stays fast and
    never imports conda-lock or the build package (the same rule as envctl.build.layers)."""
    import fnmatch

    from envctl.lock.grammar import read_lockfile
    from envctl.spec import defaults

    entries, _meta = read_lockfile(lock_path, cached=True)  # shown, never built from: a cached parse
    patterns = defaults()["layers"][0]["match"]
    return {p["name"]: p["version"] for p in entries if p["manager"] == "pip" and p["platform"] == platform
            and any(fnmatch.fnmatchcase(p["name"], pat) for pat in patterns)}


def describe(project: Project, name: str) -> dict[str, Any]:
    spec = project.resolve(name)
    m = load_matrix()
    rel = m.release(spec.torch)
    cuda = spec.cuda_version
    arches, ptx = m.arch_list(cuda, spec.torch) if cuda else ([], False)
    state = lock_state(spec, project.lock_path(spec.name))
    pi = spec.pip_index
    index_text = pi.index_url + "".join(f" + {u}" for u in pi.extra_index_urls)
    if spec.torch_source == "pytorch-index":
        index_text = f"{spec.torch_index_url} (torch) + " + index_text
    if pi.find_links:
        index_text += " + find-links " + ", ".join(pi.find_links)
    index_text = redact(index_text)  # shown in a table, where the console's own redaction does not reach
    libraries = None
    if state.state == "locked":
        libraries = _cuda_libraries(state.path, spec.platforms[0])
    derived = project.derived(spec.name)
    return {
        "spec": spec.to_dict(),
        # where no images/NAME.yaml exists: the spec comes from the matrix, written when first locked
        "derived": None if derived is None else {"why": derived.why, "writes": f"images/{spec.name}.yaml"},
        "cuda_libraries": libraries,
        "spec_hash": spec.content_hash(),
        "lock_inputs_hash": spec.lock_inputs_hash(),
        "lock_header_inputs_hash": state.inputs_hash,
        "conda_specs": spec.conda_specs(),
        "pip_requirements": spec.pip_requirements(),
        "pip_index": index_text,
        "lock": {"state": state.state, "path": str(state.path.relative_to(project.root))},
        "matrix": {
            "torch_minor": rel.minor, "status": rel.status_of(spec.cuda), "cudnn": rel.cudnn_for(spec.cuda),
            "python_range": list(rel.python), "variants": rel.variants, "arch_list": arches, "ptx": ptx,
            "min_driver": m.min_driver(cuda) if cuda else None, "torchvision": rel.torchvision,
            "torchaudio": rel.torchaudio, "refreshed": m.refreshed,
        },
    }
