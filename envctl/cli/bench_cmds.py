"""`envctl bench compare` and `envctl bench show`: benchmark runs side by side, as tables or a page."""

from pathlib import Path
from typing import List, Optional

import typer

from envctl import console
from envctl.cli.tables import WIDE_OPT, Column, print_table

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
                                                help="Only these modes gate (default: every mode)."),
    include_host_bound: bool = typer.Option(False, "--include-host-bound",
                                            help="Also draw verdicts from rows the probe found host-bound "
                                                 "(their times follow the host CPU's speed between runs)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a page with bars and intervals."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    wide: bool = WIDE_OPT,
) -> None:
    """Compare B's speedups with A's, and, on the same GPU model, B's times with A's: each beyond
    its intervals and the run-to-run noise. Rows the probe flagged (host-bound, contended) get no verdict.

    Exit 0 when no gated mode lost more than --threshold (speedup or time), 1 when one did (every
    mode gates unless --fail-on names some), 2 on bad input."""
    from envctl.bench import compare as compare_runs
    from envctl.bench import check_repeat, check_threshold, comparison_dict, load_runs, measure_image

    check_threshold(threshold)
    check_repeat(repeat)
    if run:
        a_runs = [measure_image(a, level=level, gpus=gpus) for _ in range(repeat)][::-1]
        b_runs = [measure_image(b, level=level, gpus=gpus) for _ in range(repeat)][::-1]
    else:
        a_runs, b_runs = load_runs(a), load_runs(b)
    result = compare_runs(a_runs, b_runs, threshold_pct=threshold, gate_modes=tuple(fail_on) if fail_on else None,
                          include_host_bound=include_host_bound)
    if html:
        from envctl.bench.html import render_html

        console.write_output(html, render_html([a_runs[0], b_runs[0]], result,
                                               title=f"{result.a_label} vs {result.b_label}"))
    if json_out:
        console.print_json(comparison_dict(result))
    else:
        _render_comparison(result, wide=wide)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# Lower priority stays in the table longer on a narrow terminal; the rest moves to a second line.
COMPARE_COLUMNS = [
    Column("model"), Column("mode"), Column("A speedup", priority=2), Column("B speedup", priority=2),
    Column("B/A", priority=3), Column("verdict", priority=1), Column("A ms", priority=5), Column("B ms", priority=5),
    Column("abs", priority=4),
]
SHOW_COLUMNS = [
    Column("model"), Column("dtype", priority=2), Column("batch", priority=2, justify="right"), Column("mode"),
    Column("compile s", priority=4, justify="right"), Column("warm s", priority=5, justify="right"),
    Column("median ms [95%]", priority=3, justify="right"), Column("blocks", priority=5, justify="right"),
    Column("speedup", priority=1), Column("why", short=False),
]


def _render_comparison(c, *, wide: bool) -> None:
    console.out.print(f"A = {c.a_label}: {c.a_where}")
    console.out.print(f"B = {c.b_label}: {c.b_where}")
    console.out.print(c.spread_note)
    console.out.print("speedup over eager, B against A (95% intervals)")
    rows, notes = [], []
    for r in c.rows:
        change = f"{r.change[0]:.2f} [{r.change[1]:.2f}-{r.change[2]:.2f}]" if r.change else "-"
        style = {"slower": "red", "faster": "green"}.get(r.verdict, "")
        where = f"{r.key[0]} {r.key[1]} b{r.key[2]}"
        absolute = r.abs_verdict
        if r.abs_change and r.abs_verdict in ("B slower", "B faster", "same", "within noise"):
            absolute = f"{r.abs_verdict} {r.abs_change[0]:.2f}x"
        rows.append([where, r.key[3], _sp(r.speedup_a), _sp(r.speedup_b), change,
                     console.styled(r.verdict, style), _ms(r.a), _ms(r.b), absolute])
        if r.withheld:
            what = "withheld" if r.abs_withheld else "speedup withheld (its time is gated)"
            notes.append(f"{what} {where} {r.key[3]}: " + "; ".join(r.withheld))
        elif r.notes:
            notes.append(f"{where} {r.key[3]}: " + "; ".join(r.notes))
    print_table(console.out, COMPARE_COLUMNS, rows, wide=wide)
    for line in notes:
        console.out.print(line)
    if c.gate:
        names = ", ".join(f"{k[3]} on {k[0]} {k[1]} b{k[2]}" for k in (r.key for r in c.gate))
        console.status(f"regression beyond {c.threshold_pct:.0f}%: {names}")
    else:
        console.status(f"no gated mode regressed beyond {c.threshold_pct:.0f}%")
    if c.withheld and not c.include_host_bound:
        whole = sum(1 for r in c.withheld if r.abs_withheld)
        part = len(c.withheld) - whole
        also = f", {part} more speedups (their times gated)" if part else ""
        console.status(f"{whole} rows withheld{also} (host-bound or contended); --include-host-bound "
                       f"gates the host-bound ones too")


@bench_app.command("show")
def show(
    runs: List[str] = typer.Argument(..., help="Runs: image names (newest run), #IDs or probe JSON files."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a page with bars and intervals."),
    json_out: bool = typer.Option(False, "--json", help="Print the runs' benchmark rows as JSON."),
    wide: bool = WIDE_OPT,
) -> None:
    """Show one or more runs' benchmark rows: medians with intervals, speedups with verdicts."""
    from envctl.bench import load_runs

    loaded = [load_runs(ref, count=1)[0] for ref in runs]
    if html:
        from envctl.bench.html import render_html

        console.write_output(html, render_html(loaded))
    if json_out:
        console.print_json([{"run": r.label, "rows": list(r.document.get("benchmarks") or [])} for r in loaded])
        return
    for run in loaded:
        console.out.print(f"{run.label}: {run.where}")
        rows = []
        for key, r in run.rows.items():
            sp = r.get("speedup") or {}
            rows.append([key[0], key[1], str(key[2]), key[3], _num(r.get("compile_s")), _num(r.get("warm_compile_s")),
                         _ms(r), str(r.get("blocks") or "-"), _sp(sp) if sp else "-", "; ".join(sp.get("why") or [])])
        print_table(console.out, SHOW_COLUMNS, rows, wide=wide)


def _num(v) -> str:
    return "-" if v is None else f"{v:.2f}"
