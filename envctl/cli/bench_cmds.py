"""`envctl bench compare` and `envctl bench show`: benchmark runs side by side, as tables or a page."""

from pathlib import Path
from typing import List, Optional

import typer

from envctl import console

bench_app = typer.Typer(help="Compare benchmark runs of images: speedups with intervals, regressions, a page.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def _sp(sp: dict | None) -> str:
    if not sp:
        return "-"
    if not sp.get("conclusive"):
        return f"inconclusive ({sp['low']:.2f}-{sp['high']:.2f}x)"
    return f"{sp['median']:.2f}x [{sp['low']:.2f}-{sp['high']:.2f}]"


def _ms(r: dict) -> str:
    if r.get("ci_low_ms") is None:
        return "-"
    return f"{r['median_ms']:.3f} [{r['ci_low_ms']:.3f}-{r['ci_high_ms']:.3f}]"


@bench_app.command("compare")
def compare(
    a: str = typer.Argument(..., help="Baseline: an image name (its recorded runs), #ID, or a probe JSON file."),
    b: str = typer.Argument(..., help="Candidate: same forms as A."),
    run: bool = typer.Option(False, "--run", help="Run the probe in both built images now (and record it)."),
    repeat: int = typer.Option(2, "--repeat", help="With --run: runs per image (2+ measures the run-to-run spread)."),
    level: str = typer.Option("standard", "--level", help="With --run: quick, standard or full."),
    gpus: str = typer.Option("all", "--gpus", help="With --run: all, none, or a GPU count."),
    threshold: float = typer.Option(10.0, "--threshold", help="Regression gate: % loss of a speedup that fails."),
    fail_on: Optional[List[str]] = typer.Option(None, "--fail-on",
                                                help="Mode(s) whose regression exits 1 (default compile-default)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a page with bars and intervals."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare the speedups of B with A's; absolute times only with their intervals. Exit 1 on a regression."""
    from envctl.bench import compare as compare_runs
    from envctl.bench import comparison_dict, load_runs, measure_image

    if run:
        a_runs = [measure_image(a, level=level, gpus=gpus) for _ in range(max(1, repeat))][::-1]
        b_runs = [measure_image(b, level=level, gpus=gpus) for _ in range(max(1, repeat))][::-1]
    else:
        a_runs, b_runs = load_runs(a), load_runs(b)
    result = compare_runs(a_runs, b_runs, threshold_pct=threshold, gate_modes=tuple(fail_on or ["compile-default"]))
    if html:
        from envctl.bench_html import render_html

        console.write_output(html, render_html([a_runs[0], b_runs[0]], result,
                                               title=f"{result.a_label} vs {result.b_label}"))
    if json_out:
        console.print_json(comparison_dict(result))
    else:
        _render_comparison(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _render_comparison(c) -> None:
    from rich.table import Table

    console.out.print(f"A = {c.a_label}: {c.a_where}")
    console.out.print(f"B = {c.b_label}: {c.b_where}")
    console.out.print(c.spread_note)
    table = Table(title="speedup over eager, B against A (95% intervals)", title_justify="left")
    for col in ("model", "mode", "A speedup", "B speedup", "B/A", "verdict", "A ms", "B ms", "abs"):
        table.add_column(col, no_wrap=True)
    notes = []
    for r in c.rows:
        change = f"{r.change[0]:.2f} [{r.change[1]:.2f}-{r.change[2]:.2f}]" if r.change else "-"
        style = {"slower": "red", "faster": "green"}.get(r.verdict, "")
        where = f"{r.key[0]} {r.key[1]} b{r.key[2]}"
        table.add_row(where, r.key[3], _sp(r.speedup_a), _sp(r.speedup_b), change,
                      console.styled(r.verdict, style), _ms(r.a), _ms(r.b), r.abs_verdict)
        if r.notes:
            notes.append(f"{where} {r.key[3]}: " + "; ".join(r.notes))
    console.out.print(table)
    for line in notes:
        console.out.print(line)
    if c.gate:
        names = ", ".join(f"{k[3]} on {k[0]} {k[1]} b{k[2]}" for k in (r.key for r in c.gate))
        console.status(f"regression beyond {c.threshold_pct:.0f}%: {names}")
    else:
        console.status(f"no gated mode regressed beyond {c.threshold_pct:.0f}%")


@bench_app.command("show")
def show(
    runs: List[str] = typer.Argument(..., help="Runs: image names (newest run), #IDs or probe JSON files."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a page with bars and intervals."),
    json_out: bool = typer.Option(False, "--json", help="Print the runs' benchmark rows as JSON."),
) -> None:
    """Show one or more runs' benchmark rows: medians with intervals, speedups with verdicts."""
    from rich.table import Table

    from envctl.bench import load_runs

    loaded = [load_runs(ref, count=1)[0] for ref in runs]
    if html:
        from envctl.bench_html import render_html

        console.write_output(html, render_html(loaded))
    if json_out:
        console.print_json([{"run": r.label, "rows": list(r.document.get("benchmarks") or [])} for r in loaded])
        return
    for run in loaded:
        table = Table(title=f"{run.label}: {run.where}", title_justify="left")
        for col in ("model", "dtype", "batch", "mode", "compile s", "warm s", "median ms [95%]", "blocks",
                    "speedup", "why"):
            table.add_column(col, no_wrap=col != "why")
        for key, r in run.rows.items():
            sp = r.get("speedup") or {}
            table.add_row(key[0], key[1], str(key[2]), key[3], _num(r.get("compile_s")), _num(r.get("warm_compile_s")),
                          _ms(r), str(r.get("blocks") or "-"), _sp(sp) if sp else "-", "; ".join(sp.get("why") or []))
        console.out.print(table)


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"
