"""The fleet view: image x target, from the records.  For each image and each place it was
verified (a fleet target, or the local engine), the newest verification: verified or failed,
when, on which node, GPU and driver, and the torch.compile (default mode) speedups its probe
document measured; "never" where no run is recorded.  Plain dicts, so the table, ``--json``
and the HTML page read the same data (pure but for ``fleet_view``, which reads the records).
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from envctl.catalog import Project
from envctl.records import Records, Run, run_from_row

LOCAL = "local"  # the column of runs on the local engine without a target


def fleet_view(project: Project, records: Records) -> dict[str, Any]:
    """The matrix of the project's images and the fleet's targets (fleet.yaml's, in its order,
    then any other target the records know)."""
    from envctl.errors import EnvctlError
    from envctl.fleet import FILENAME, load_fleet

    named: list[str] = []
    if (project.root / FILENAME).exists():
        try:
            named = list(load_fleet(project).targets)
        except EnvctlError:
            named = []  # the records still answer; `envctl verify --all-targets` names the broken key
    return fleet_matrix(project.names(), named, latest_by_target(records))


def latest_by_target(records: Records, kind: str = "verify") -> list[tuple[Run, str | None]]:
    """The newest run of ``kind`` per (image, target) with its stored document (JSON text); runs
    on the local engine without a target count as one target."""
    rows = records.execute("SELECT * FROM runs r WHERE kind = ? AND id = (SELECT id FROM runs s WHERE"
                           " s.image = r.image AND s.kind = r.kind AND COALESCE(s.target, '') ="
                           " COALESCE(r.target, '') ORDER BY started DESC, id DESC LIMIT 1)", (kind,))
    return [(run_from_row(row), row["document"]) for row in rows]


def fleet_matrix(images: list[str], named_targets: list[str], runs: list[tuple[Run, str | None]]) -> dict[str, Any]:
    """The view's data from the newest run per (image, target) (pure)."""
    cells: dict[str, dict[str, dict]] = {}
    seen: dict[str, dict] = {}  # target -> what its newest run says of it (GPU, driver, node)
    for run, document in sorted(runs, key=lambda pair: pair[0].started):
        target = run.target or LOCAL
        where = run.where or {}
        cell = {"status": "verified" if run.ok else "failed", "when": run.started, "run_id": run.id,
                "node": where.get("node") or where.get("host") or run.host, "gpu": run.gpu or where.get("gpu"),
                "driver": run.driver or where.get("driver"), "job_id": where.get("job_id"),
                "image_id": run.image_id, "summary": run.summary, "speedups": compile_speedups(document)}
        cells.setdefault(run.image, {})[target] = cell
        seen[target] = {"gpu": cell["gpu"], "driver": cell["driver"], "node": cell["node"]}
    targets = list(dict.fromkeys([*named_targets, *sorted(seen)]))
    rows = list(dict.fromkeys([*images, *sorted(cells)]))
    return {"images": rows, "targets": [{"name": t, **seen.get(t, {"gpu": None, "driver": None, "node": None})}
                                        for t in targets],
            "cells": {i: {t: cells.get(i, {}).get(t) or {"status": "never"} for t in targets} for i in rows}}


def compile_speedups(document: str | None) -> list[dict[str, Any]]:
    """torch.compile (default mode) over eager, per model, dtype and batch, from a stored probe
    document; a document no envctl wrote gives none rather than failing the view."""
    try:
        doc = json.loads(document) if document else {}
    except ValueError:
        return []
    rows = doc.get("benchmarks") if isinstance(doc, dict) else None
    out = []
    for row in rows if isinstance(rows, list) else []:
        speedup = row.get("speedup") if isinstance(row, dict) else None
        if row.get("mode") != "compile-default" or row.get("status") != "ok" or not isinstance(speedup, dict):
            continue
        if isinstance(speedup.get("median"), (int, float)):
            out.append({"model": str(row.get("model")), "dtype": str(row.get("dtype")), "batch": row.get("batch"),
                        "speedup": float(speedup["median"]), "conclusive": bool(speedup.get("conclusive"))})
    return out


def target_label(target: dict[str, Any]) -> str:
    """A column's header: the target and the GPU and driver it last ran on."""
    gpu = target.get("gpu") or "cpu"
    return f"{target['name']} ({gpu}" + (f", driver {target['driver']})" if target.get("driver") else ")")


def cell_text(cell: dict[str, Any]) -> str:
    """One cell as a table shows it: status, when, and the conclusive compile speedups."""
    if cell["status"] == "never":
        return "never"
    when = time.strftime("%m-%d %H:%M", time.localtime(cell["when"]))
    fast = [f"{s['speedup']:.2f}x" for s in cell["speedups"] if s["conclusive"]]
    return f"{cell['status']} {when}" + (f" compile {'/'.join(fast)}" if fast else "")


_COLORS = {"verified": "#1a7f37", "failed": "#cf222e", "never": "#6e7781"}


def render_html(data: dict[str, Any]) -> str:
    """A self-contained page: the matrix, each cell's node, GPU, driver and speedups on hover."""
    head = "".join(f"<th>{html.escape(target_label(t))}</th>" for t in data["targets"])
    body = []
    for image in data["images"]:
        cells = []
        for t in data["targets"]:
            cell = data["cells"][image][t["name"]]
            detail = "" if cell["status"] == "never" else (
                f"node {cell['node']}, gpu {cell['gpu'] or 'none'}, driver {cell['driver'] or '-'}; "
                + "; ".join(f"{s['model']} {s['dtype']} b{s['batch']}: {s['speedup']:.2f}x"
                            + ("" if s["conclusive"] else " (inconclusive)") for s in cell["speedups"])
                + (f"; {cell['summary']}" if cell["status"] == "failed" and cell["summary"] else ""))
            cells.append(f'<td style="background:{_COLORS[cell["status"]]}" title="{html.escape(detail)}">'
                         f"{html.escape(cell_text(cell))}</td>")
        body.append(f"<tr><th>{html.escape(image)}</th>{''.join(cells)}</tr>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>envctl fleet</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: .4em .8em; text-align: left; }}
td {{ color: white; font-weight: 600; }}
</style></head><body>
<h1>envctl fleet: image x target</h1>
<table><tr><th>image</th>{head}</tr>
{chr(10).join(body)}
</table></body></html>
"""
