"""Compat results as documents: the self-contained HTML matrix and JUnit XML for CI systems."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

from envctl.compat.results import Outcome

_COLORS = {"ok": "#1a7f37", "load-error": "#cf222e", "run-error": "#bc4c00", "mismatch": "#9a6700",
           "crash": "#82071e", "timeout": "#6e7781", "unsupported": "#57606a"}


def render_html(data: dict) -> str:
    """A self-contained page: the matrix with coloured cells (the whole message on hover), and
    every failure's whole message below it."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t in data["targets"])
    body, notes = [], []
    for name in data["artifacts"]:
        cells = []
        for t in data["targets"]:
            cell = data["cells"][name].get(t)
            if cell is None:
                cells.append('<td class="none">-</td>')
                continue
            message = cell.get("message") or cell["detail"] or ""
            cells.append(f'<td style="background:{_COLORS.get(cell["status"], "#999")}" '
                         f'title="{html.escape(message)}">{html.escape(cell["status"])}</td>')
            if cell["status"] != "ok":
                notes.append(f"<details><summary>{html.escape(name)} under {html.escape(t)}: "
                             f"{html.escape(cell['status'])}: {html.escape(cell['detail'] or '')}</summary>"
                             f"<pre>{html.escape(message)}</pre></details>")
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    legend = " ".join(f'<span style="background:{c}">{s}</span>' for s, c in _COLORS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>envctl compatibility matrix</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: .4em .8em; text-align: left; }}
td {{ color: white; font-weight: 600; }} td.none {{ color: #6e7781; background: #f6f8fa; }}
.legend span {{ color: white; padding: .2em .5em; margin-right: .3em; }}
pre {{ white-space: pre-wrap; background: #f6f8fa; padding: .5em; }}
</style></head><body>
<h1>Artifact compatibility</h1>
<p class="legend">{legend}</p>
<table><tr><th>artifact</th>{head}</tr>
{chr(10).join(body)}
</table>
<h2>Failures</h2>
{chr(10).join(notes) or "<p>none</p>"}
</body></html>
"""


def render_junit(outcomes: list[Outcome], *, name: str, failed: set[int] | None = None,
                 skipped: dict[int, str] | None = None) -> str:
    """JUnit XML: a testsuite per column (target runtime/device), a testcase per artifact there.

    By default every outcome that is not ok is a failure; the gate passes ``failed`` (indexes of
    its regressions) and ``skipped`` (index -> why: no baseline to regress from)."""
    suites: dict[str, list[tuple[int, Outcome]]] = {}
    for i, o in enumerate(outcomes):
        suites.setdefault(o.column, []).append((i, o))
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for column, items in suites.items():
        suite = ET.SubElement(root, "testsuite", name=column)
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        seconds = 0.0
        for i, o in items:
            case = ET.SubElement(suite, "testcase", classname=column, name=o.artifact.name,
                                 time=f"{o.seconds or 0:.3f}")
            seconds += o.seconds or 0
            counts["tests"] += 1
            is_failure = (i in failed) if failed is not None else o.status != "ok"
            if skipped and i in skipped and not is_failure:
                ET.SubElement(case, "skipped", message=skipped[i])
                counts["skipped"] += 1
            elif is_failure:
                node = ET.SubElement(case, "failure", message=f"{o.status}: {o.detail}", type=o.status)
                node.text = o.message or o.detail
                counts["failures"] += 1
            ET.SubElement(case, "system-out").text = f"{o.status}: {o.detail}"
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{seconds:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
