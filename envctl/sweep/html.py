"""The matrix dashboard: one self-contained static page from a sweep's cells.

First view: torch releases (rows, newest first) x variants (columns; x Python and target when
the sweep had several), each cell green (verified), red (failed) or grey (could not be made
here, or not run yet) with its one-line reason, the fleet target and node it was verified on,
the image's size, its build and verify times and the lock's CUDA, cuDNN, NCCL and triton versions.  Second view: the compile speedups over eager
across releases for one target.  Inline CSS, no scripts, no network: the page can be mailed or
attached to a CI run.  Pure: cells in, a string out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from envctl.matrix import parse_version
from envctl.sweep.plan import Cell, tally

COLORS = {"verified": "#1a7f37", "failed": "#cf222e", "grey": "#8c959f"}
VERSION_KEYS = ("torch", "cuda", "cudnn", "nccl", "triton")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #1f2328; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #d0d7de; padding: .35em .6em; text-align: left; vertical-align: top; font-size: 13px; }
td.cell { color: white; min-width: 13em; max-width: 22em; }
td.cell .state { font-weight: 700; } td.cell .reason { display: block; margin: .2em 0; }
td.cell .facts { display: block; font-size: 11px; opacity: .92; }
td.empty { color: #6e7781; background: #f6f8fa; }
.legend span { color: white; padding: .15em .5em; margin-right: .4em; border-radius: 3px; }
.bar { display: inline-block; height: 10px; background: #3b6fb6; vertical-align: middle; margin-right: .4em; }
.one { border-left: 1px dashed #555; }
.note { color: #57606a; font-size: 12px; }
"""


def _column(cell: Cell) -> tuple[str, str, str]:
    c = cell.combo
    return (c.variant, c.python or "", c.target or "")


def _heading(column: tuple[str, str, str], many_pythons: bool, many_targets: bool) -> str:
    variant, python, target = column
    parts = [variant] + ([f"Python {python or 'spec'}"] if many_pythons else []) + (
        [target or "local"] if many_targets else [])
    return " / ".join(parts)


def _facts(cell: Cell) -> str:
    facts = []
    if cell.combo.target:  # where it was verified: a fleet target, and the node it ran on
        facts.append(f"on {cell.combo.target}" + (f" ({cell.node})" if cell.node else ""))
    if cell.size:
        facts.append(f"{cell.size / 1e9:.2f} GB")
    if cell.build_s is not None:
        facts.append(f"build {cell.build_s:.0f}s")
    if cell.verify_s is not None:
        facts.append(f"verify {cell.verify_s:.0f}s")
    if cell.python:
        facts.append(f"Python {cell.python}")
    versions = [f"{k} {cell.versions[k]}" for k in VERSION_KEYS if cell.versions.get(k)]
    # every fact may come from the records (untrusted: matrix report reads them): escaped, all of them
    return escape(" \u00b7 ".join(facts)) + ("<br>" + escape(", ".join(versions)) if versions else "")


def _cell_td(cell: Cell | None) -> str:
    if cell is None:
        return '<td class="empty">-</td>'
    word = {"verified": "verified", "failed": f"failed: {cell.failure}", "grey": cell.failure or "not run"}[cell.state]
    return (f'<td class="cell {cell.state}" style="background:{COLORS[cell.state]}" title="{escape(cell.reason)}">'
            f'<span class="state">{escape(word)}</span><span class="reason">{escape(cell.reason)}</span>'
            f'<span class="facts">{_facts(cell)}</span></td>')


def _grid(cells: Sequence[Cell]) -> str:
    columns = sorted({_column(c) for c in cells}, key=lambda k: (k[0] != "cpu", k))
    many_pythons = len({k[1] for k in columns}) > 1
    many_targets = len({k[2] for k in columns}) > 1
    by_key = {(c.combo.torch, _column(c)): c for c in cells}
    head = "".join(f"<th>{escape(_heading(k, many_pythons, many_targets))}</th>" for k in columns)
    rows = []
    for minor in sorted({c.combo.torch for c in cells}, key=parse_version, reverse=True):
        tds = "".join(_cell_td(by_key.get((minor, k))) for k in columns)
        rows.append(f"<tr><th>torch {escape(minor)}</th>{tds}</tr>")
    return f'<table class="grid"><tr><th>release</th>{head}</tr>\n' + "\n".join(rows) + "\n</table>"


def _speedups(cells: Sequence[Cell], target: str | None) -> str:
    """Per verified release on ``target``, each compile mode's speedup as a bar (1x marked)."""
    chosen = sorted((c for c in cells if c.ok and c.combo.target == target and c.speedups),
                    key=lambda c: (parse_version(c.combo.torch), c.combo.variant))
    where = target or "the local engine"
    if not chosen:
        return f"<p class='note'>No compile speedups recorded on {escape(where)} yet.</p>"
    modes = sorted({m for c in chosen for m in c.speedups})
    top = max(max(c.speedups.values()) for c in chosen)
    scale = 160 / max(top, 1.5)
    head = "".join(f"<th>{escape(m)}</th>" for m in modes)
    rows = []
    for c in chosen:
        tds = []
        for m in modes:
            v = c.speedups.get(m)
            tds.append("<td>-</td>" if v is None else
                       f'<td><span class="bar" style="width:{v * scale:.0f}px"></span>{v:.2f}x</td>')
        rows.append(f"<tr><th>{escape(c.combo.label)}</th>{''.join(tds)}</tr>")
    return (f"<p class='note'>Geometric mean over the probe's rows of each compile mode's speedup over eager "
            f"(the bar's length; 1x is {scale:.0f}px), on {escape(where)}.</p>"
            f'<table class="speedups"><tr><th>image</th>{head}</tr>\n' + "\n".join(rows) + "\n</table>")


def render_dashboard(cells: Sequence[Cell], *, title: str = "envctl release matrix", target: str | None = None,
                     note: str = "") -> str:
    """The page for ``cells`` (one per combination); the speedup view for ``target`` (None: local)."""
    counts = Counter(c.state for c in cells)
    failures = tally(c for c in cells if c.state != "verified")
    legend = " ".join(f'<span style="background:{COLORS[s]}">{s}: {counts.get(s, 0)}</span>' for s in COLORS)
    classes = "".join(f"<li>{escape(name)}: {n}</li>" for name, n in failures.most_common())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p class="legend">{legend}</p>
<p class="note">{escape(note)}</p>
{_grid(cells)}
<h2>Not verified, by class</h2>
<ul class="classes">{classes or "<li>none</li>"}</ul>
<h2>torch.compile speedups across releases</h2>
{_speedups(cells, target)}
</body></html>
"""
