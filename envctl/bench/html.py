"""One self-contained HTML page for one or more benchmark runs: what ran where, then bars with
their intervals.

First a table naming each run: the image, torch and CUDA versions, the GPU (or the CPU), the
host's state (other processes' CPU use, the host's dispatch speed, load) and when it was made.
Then per model, dtype and batch size, one row per mode and run: its label, a bar of the speedup
over eager (the 95% interval as a whisker, a dashed line at 1x), the figures as text. Labels and
figures are HTML text in table cells, which size to them and wrap, never SVG text in a fixed box,
which clips; the bars alone are SVG. Inline CSS, no scripts, no network: the page can be mailed
or attached to a CI run. Pure: runs in, a string out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from envctl.bench.compare import BUSY_SHARE, Comparison
from envctl.bench.runs import BenchRun

COLORS = ("#3b6fb6", "#d9822b", "#3a9a5b", "#b23a48", "#7a5cb8", "#5b5b5b")
PLOT_W, BAR_H = 360, 14  # the bar's box; its label and figures sit in cells beside it
NOT_RECORDED = "not recorded"

# Nothing may hide text: cells wrap (a long unbroken mode name too) and the page grows with them.
STYLE = ("body{font-family:sans-serif;margin:24px;max-width:1100px}"
         "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
         "th,td{overflow-wrap:anywhere;vertical-align:middle}"
         ".runs th{text-align:left}.swatch{display:inline-block;width:12px;height:12px;margin-right:6px}"
         ".bars td,.bars th{border:none;padding:0 6px}.bars th{font-weight:normal;text-align:right;"
         "max-width:18em}.bars td.bar{padding:0;line-height:0}.bars td.value{font-size:11px;max-width:22em}"
         "h2{font-size:16px;margin-top:28px}.note{color:#555;font-size:12px}")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return NOT_RECORDED
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _host_state(doc: dict) -> str:
    """Other processes' CPU use over the run (contended past a quarter of the cores, as the gate
    reads it), the host's dispatch speed before and after, and its load average."""
    machine = doc.get("machine") or {}
    before, after = machine.get("before") or {}, machine.get("after") or {}
    parts = []
    other, cores = machine.get("other_cpu_cores"), machine.get("cores") or before.get("cores")
    if other is not None and cores:
        busy = "contended" if other > BUSY_SHARE * cores else "quiet"
        parts.append(f"{busy}: other processes used {other:.2f} of {cores} CPU cores")
    speed = [s["host"]["torch_op_us"] for s in (before, after) if (s.get("host") or {}).get("torch_op_us")]
    if speed:
        parts.append("host speed " + " -> ".join(f"{us:.2f}" for us in speed) + " us per torch op")
    if before.get("loadavg_1m") is not None:
        parts.append(f"load {before['loadavg_1m']:.2f}"
                     + (f" -> {after['loadavg_1m']:.2f}" if after.get("loadavg_1m") is not None else ""))
    return "; ".join(parts) or NOT_RECORDED


def run_facts(run: BenchRun) -> list[tuple[str, str]]:
    """What the page names about one run, in its order: (heading, text)."""
    doc = run.document
    env = doc.get("env") or {}
    torch = env.get("torch") or {}
    if run.image:
        image = run.image + (f" ({run.image_id.split(':')[-1][:12]})" if run.image_id else "")
    else:
        image = "not named in the document (saved before envctl verify named it, or by envctl smoke)"
    cores = (env.get("platform") or {}).get("cpu_count") or (doc.get("machine") or {}).get("cores")
    device = run.gpu or "CPU" + (f" ({cores} cores)" if cores else "")
    cuda = torch.get("cuda") or "none (CPU build)"
    if env.get("driver_version"):
        cuda += f", driver {env['driver_version']}"
    return [("image", image), ("torch", torch.get("version") or NOT_RECORDED), ("CUDA", cuda),
            ("GPU / CPU", f"{device}, probe on {doc.get('device')}, level {doc.get('level')}"),
            ("host state", _host_state(doc)), ("made", _when(run.made))]


def _runs_table(runs: list[BenchRun]) -> str:
    """A column per run, a row per fact: each run's column gets a share of the page's width."""
    facts = [run_facts(run) for run in runs]
    head = "".join(f"<th><span class='swatch' style='background:{COLORS[i % len(COLORS)]}'></span>"
                   f"run {i + 1}: {escape(run.label)}</th>" for i, run in enumerate(runs))
    out = [f"<table class='runs'><tr><th></th>{head}</tr>"]
    for j, (heading, _) in enumerate(facts[0]):
        out.append(f"<tr><th>{escape(heading)}</th>" + "".join(f"<td>{escape(f[j][1])}</td>" for f in facts) + "</tr>")
    return "".join(out) + "</table>"


def _x(v: float, scale_max: float) -> float:
    return PLOT_W * min(v, scale_max) / scale_max


def _bar_svg(sp: dict | None, color: str, scale_max: float) -> str:
    """The bar from 0 to the median with its whisker low-high, and the 1x line; no text."""
    one = _x(1.0, scale_max)
    parts = [f'<svg width="{PLOT_W}" height="{BAR_H + 6}" role="img">',
             f'<line x1="{one:.1f}" y1="0" x2="{one:.1f}" y2="{BAR_H + 6}" stroke="#999" stroke-dasharray="4 3"/>']
    if sp:
        y, mid = 3, 3 + BAR_H / 2
        opacity = "1" if sp.get("conclusive") else "0.35"
        lo, hi = _x(sp["low"], scale_max), _x(sp["high"], scale_max)
        parts.append(f'<rect x="0" y="{y}" width="{_x(sp["median"], scale_max):.1f}" height="{BAR_H}" '
                     f'fill="{color}" fill-opacity="{opacity}"/>'
                     f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#111"/>'
                     f'<line x1="{lo:.1f}" y1="{y + 2}" x2="{lo:.1f}" y2="{y + BAR_H - 2}" stroke="#111"/>'
                     f'<line x1="{hi:.1f}" y1="{y + 2}" x2="{hi:.1f}" y2="{y + BAR_H - 2}" stroke="#111"/>')
    return "".join(parts) + "</svg>"


def _bars(items: list[tuple[str, dict | None, str]], scale_max: float) -> str:
    """items: (label, speedup dict or None, color), a table row each; the axis's 1x below."""
    out = ["<table class='bars'>"]
    for label, sp, color in items:
        if sp:
            text = f'{sp["median"]:.2f}x [{sp["low"]:.2f}-{sp["high"]:.2f}] {sp.get("verdict") or ""}'.strip()
        else:
            text = "no speedup (base)"
        out.append(f"<tr><th>{escape(label)}</th><td class='bar'>{_bar_svg(sp, color, scale_max)}</td>"
                   f"<td class='value'>{escape(text)}</td></tr>")
    pad = f"{max(_x(1.0, scale_max) - 6, 0):.0f}"  # the axis label sits under the 1x line
    out.append(f"<tr><th></th><td class='value' style='padding-left:{pad}px'>1x</td><td></td></tr></table>")
    return "".join(out)


def render_html(runs: list[BenchRun], comparison: Comparison | None = None, *, title: str = "envctl benchmarks") -> str:
    """The page for ``runs`` (and a comparison's verdicts, when given)."""
    keys: dict[tuple, list[str]] = {}
    for run in runs:
        for model, dtype, batch, mode in run.rows:
            modes = keys.setdefault((model, dtype, batch), [])
            if mode not in modes:
                modes.append(mode)
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>", _runs_table(runs),
           "<p class='note'>Bars: speedup over eager measured in interleaved rounds within each run, "
           "whiskers: its 95% interval; faded bars are inconclusive.</p>"]
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
        out.append(f"<h2>{escape(model)} {escape(dtype)} batch {batch}</h2>{_bars(items, spmax)}")
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
