"""One self-contained HTML page for one or more benchmark runs: bars with their intervals.

Per model, dtype and batch size, one horizontal bar per mode and run: the speedup over eager
(its 95% interval drawn as a whisker, a dashed line at 1x), then the absolute medians with
their intervals as text. Inline SVG and CSS, no scripts, no network: the page can be mailed
or attached to a CI run. Pure: runs in, a string out.
"""

from __future__ import annotations

from html import escape

from envctl.bench.runs import BenchRun
from envctl.bench.compare import Comparison

COLORS = ("#3b6fb6", "#d9822b", "#3a9a5b", "#b23a48", "#7a5cb8", "#5b5b5b")
WIDTH, BAR_H, LABEL_W = 560, 14, 190


def _bar_svg(items: list[tuple[str, dict | None, str]], scale_max: float) -> str:
    """items: (label, speedup dict or None, color). A bar from 0 to the median, whisker low-high."""
    height = len(items) * (BAR_H + 6) + 24
    plot = WIDTH - LABEL_W - 60

    def x(v: float) -> float:
        return LABEL_W + plot * min(v, scale_max) / scale_max

    parts = [f'<svg width="{WIDTH}" height="{height}" role="img">']
    one = x(1.0)
    parts.append(f'<line x1="{one:.1f}" y1="0" x2="{one:.1f}" y2="{height - 18}" stroke="#999" '
                 f'stroke-dasharray="4 3"/><text x="{one:.1f}" y="{height - 4}" font-size="10" '
                 f'text-anchor="middle">1x</text>')
    for i, (label, sp, color) in enumerate(items):
        y = 4 + i * (BAR_H + 6)
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + BAR_H - 3}" font-size="11" text-anchor="end">'
                     f'{escape(label)}</text>')
        if not sp:
            parts.append(f'<text x="{LABEL_W + 4}" y="{y + BAR_H - 3}" font-size="11" fill="#777">'
                         f'no speedup (base)</text>')
            continue
        opacity = "1" if sp.get("conclusive") else "0.35"
        parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{x(sp["median"]) - LABEL_W:.1f}" height="{BAR_H}" '
                     f'fill="{color}" fill-opacity="{opacity}"/>')
        lo, hi = x(sp["low"]), x(sp["high"])
        mid = y + BAR_H / 2
        parts.append(f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#111"/>'
                     f'<line x1="{lo:.1f}" y1="{y + 2}" x2="{lo:.1f}" y2="{y + BAR_H - 2}" stroke="#111"/>'
                     f'<line x1="{hi:.1f}" y1="{y + 2}" x2="{hi:.1f}" y2="{y + BAR_H - 2}" stroke="#111"/>')
        verdict = sp.get("verdict") or ""
        text = f'{sp["median"]:.2f}x [{sp["low"]:.2f}-{sp["high"]:.2f}] {verdict}'
        parts.append(f'<text x="{min(hi, WIDTH - 60) + 4:.1f}" y="{y + BAR_H - 3}" font-size="10">'
                     f'{escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(runs: list[BenchRun], comparison: Comparison | None = None, *, title: str = "envctl benchmarks") -> str:
    """The page for ``runs`` (and a comparison's verdicts, when given)."""
    keys: dict[tuple, list[str]] = {}
    for run in runs:
        for model, dtype, batch, mode in run.rows:
            modes = keys.setdefault((model, dtype, batch), [])
            if mode not in modes:
                modes.append(mode)
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
           "<style>body{font-family:sans-serif;margin:24px;max-width:1100px}"
           "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
           ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}"
           "h2{font-size:16px;margin-top:28px}.note{color:#555;font-size:12px}</style></head><body>",
           f"<h1>{escape(title)}</h1><div class='legend'>"]
    for i, run in enumerate(runs):
        out.append(f"<span style='background:{COLORS[i % len(COLORS)]}'></span>{escape(run.label)}: "
                   f"{escape(run.where)}")
    out.append("</div><p class='note'>Bars: speedup over eager measured in interleaved rounds within each run, "
               "whiskers: its 95% interval; faded bars are inconclusive.</p>")
    if comparison is not None:
        out.append(f"<p class='note'>{escape(comparison.spread_note)}</p>")
    verdicts = {r.key: r for r in comparison.rows} if comparison else {}
    for (model, dtype, batch), modes in sorted(keys.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        spmax = 1.5
        items = []
        for mode in modes:
            for i, run in enumerate(runs):
                row = run.rows.get((model, dtype, batch, mode))
                sp = (row or {}).get("speedup")
                if sp:
                    spmax = max(spmax, min(sp["high"], 40.0) * 1.1)
                items.append((f"{mode} ({i + 1})" if len(runs) > 1 else mode, sp, COLORS[i % len(COLORS)]))
        out.append(f"<h2>{escape(model)} {escape(dtype)} batch {batch}</h2>{_bar_svg(items, spmax)}")
        out.append("<table><tr><th>mode</th>" + "".join(f"<th>run {i + 1} ms [95% interval]</th>"
                                                         for i in range(len(runs)))
                   + ("<th>B vs A</th>" if comparison else "") + "</tr>")
        for mode in modes:
            cells = []
            for run in runs:
                r = run.rows.get((model, dtype, batch, mode))
                cells.append(f"{r['median_ms']:.3f} [{r['ci_low_ms']:.3f}-{r['ci_high_ms']:.3f}]"
                             if r and r.get("ci_low_ms") is not None else "-")
            extra = ""
            if comparison:
                rc = verdicts.get((model, dtype, batch, mode))
                extra = f"<td>{escape(rc.verdict) if rc else '-'}</td>"
            out.append(f"<tr><td>{escape(mode)}</td>" + "".join(f"<td>{escape(c)}</td>" for c in cells)
                       + extra + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
