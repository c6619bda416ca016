"""envctl.bench: comparing runs (speedups with intervals, run-to-run spread, the regression gate),
loading them from files and the records DB, and the HTML page; `envctl bench` as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envctl.bench import BenchRun, compare, comparison_dict, load_runs, run_spread
from envctl.bench.html import render_html
from envctl.errors import EnvctlError
from envctl.records import Records

GPU_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gpu"


def _row(mode, ms, sp=None, width=0.02, conclusive=True, group=0):
    row = {"model": "resnet50", "dtype": "fp32", "batch": 1, "mode": mode, "status": "ok", "median_ms": ms,
           "ci_low_ms": ms * 0.98, "ci_high_ms": ms * 1.02, "conclusive": True, "group": group, "speedup": None,
           "host_share": 0.2, "host_bound": False}
    if sp is not None:
        row["speedup"] = {"median": sp, "low": sp * (1 - width), "high": sp * (1 + width),
                          "conclusive": conclusive, "verdict": "faster" if conclusive else "inconclusive",
                          "why": [] if conclusive else ["interval too wide"]}
    return row


def _doc(compile_speedup, eager_ms=6.0, **kw):
    return {"schema": "envctl.probe/1", "device": "cuda:0", "level": "standard",
            "env": {"gpus": [{"name": "H100"}], "torch": {"version": "2.11.0"}},
            "machine": {"groups": [{"window": {"after": {"gpu": {"sm_mhz": 1980, "temp_c": 40, "power_w": 150}}}}]},
            "benchmarks": [_row("eager", eager_ms),
                           _row("compile-default", eager_ms / compile_speedup, compile_speedup, **kw),
                           _row("script", eager_ms / 2.5, 2.5)]}


def test_regression_beyond_spread_and_threshold_fails_the_gate():
    a = [BenchRun("a1", _doc(1.80)), BenchRun("a2", _doc(1.78))]
    b = [BenchRun("b1", _doc(1.20)), BenchRun("b2", _doc(1.22))]
    c = compare(a, b, threshold_pct=10, gate_modes=("compile-default",))
    row = next(r for r in c.rows if r.key[3] == "compile-default")
    assert row.verdict == "slower" and row.change[0] == pytest.approx(1.20 / 1.80)
    assert row.change[1] < row.change[0] < row.change[2]
    assert c.exit_code == 1 and [r.key for r in c.gate] == [row.key]
    assert "2 runs of A" in c.spread_note  # the spread of one image is stated
    script = next(r for r in c.rows if r.key[3] == "script")
    assert script.verdict == "same"
    assert comparison_dict(c)["regressions"] == [["resnet50", "fp32", 1, "compile-default"]]


def test_change_within_run_to_run_spread_is_not_a_regression():
    # A's own two runs differ by 12%: a 10% drop in B is within that noise
    a = [BenchRun("a1", _doc(1.80)), BenchRun("a2", _doc(1.60))]
    b = [BenchRun("b1", _doc(1.62))]
    spread = run_spread(a)
    assert spread[("resnet50", "fp32", 1, "compile-default")]["speedup_pct"] == pytest.approx(11.76, rel=0.01)
    c = compare(a, b, threshold_pct=5, gate_modes=("compile-default",))
    assert c.exit_code == 0
    assert next(r for r in c.rows if r.key[3] == "compile-default").verdict != "slower"


def test_inconclusive_side_settles_nothing_and_absolute_needs_intervals():
    a = [BenchRun("a", _doc(1.8, eager_ms=6.0))]
    b = [BenchRun("b", _doc(1.0, eager_ms=9.0, width=0.5, conclusive=False))]
    c = compare(a, b, gate_modes=("compile-default",))
    row = next(r for r in c.rows if r.key[3] == "compile-default")
    assert row.verdict == "inconclusive"
    assert any(n.startswith("B: inconclusive") for n in row.notes)
    eager = next(r for r in c.rows if r.key[3] == "eager")
    assert eager.verdict == "base" and eager.abs_verdict == "B slower"  # 9 ms vs 6 ms, intervals apart
    assert any("SM 1980 MHz" in n for n in eager.notes)  # the machine state explains it
    assert "one run each" in c.spread_note  # the spread is not invented as measured: the floor is named
    # on the same GPU model the absolute time gates: compile-default takes 9 ms where A took 3.3
    assert row.abs_verdict == "B slower" and row.abs_change[0] == pytest.approx(9.0 / (6.0 / 1.8))
    assert c.exit_code == 1 and [r.key[3] for r in c.gate] == ["compile-default"]
    # ... and only there: other GPUs' times are not comparable
    other = _doc(1.0, eager_ms=9.0, width=0.5, conclusive=False)
    other["env"]["gpus"] = [{"name": "A100"}]
    c = compare(a, [BenchRun("b", other)], gate_modes=("compile-default",))
    assert {r.abs_verdict for r in c.rows} == {"not comparable"} and c.exit_code == 0


def test_load_runs_from_records_and_files(tmp_path):
    records = Records(tmp_path / "r.db")
    for i, speedup in enumerate((1.5, 1.7)):
        records.add_run(kind="verify", image="img", ok=True, started=1000.0 + i, document=_doc(speedup))
    records.add_run(kind="build", image="img", ok=True, started=1002.0, document={"not": "a probe"})
    runs = load_runs("img", records=records)
    assert [r.document["benchmarks"][1]["speedup"]["median"] for r in runs] == [1.7, 1.5]  # newest first
    one = load_runs(f"#{runs[1].record_id}", records=records)
    assert one[0].label == f"img #{runs[1].record_id}"
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_doc(2.0)))
    assert load_runs(str(path))[0].rows[("resnet50", "fp32", 1, "script")]["median_ms"] == 2.4
    with pytest.raises(EnvctlError, match="no recorded benchmark run of other"):
        load_runs("other", records=records)


def test_html_has_bars_and_intervals_for_each_run():
    runs = [BenchRun("run <1>", _doc(1.8)), BenchRun("run 2", _doc(1.2, width=0.4, conclusive=False))]
    page = render_html(runs, compare(runs[:1], runs[1:]))
    assert page.count("<table class='bars'>") == 1 and page.count("<svg") == 6  # a bar per mode and run
    assert "run &lt;1&gt;" in page and "<1>" not in page
    assert "1.80x [1.76-1.84] faster" in page and "1.20x [0.72-1.68] inconclusive" in page
    assert 'fill-opacity="0.35"' in page  # an inconclusive bar is drawn faded
    assert "compile-default (2)" in page and "6.000 [5.880-6.120]" in page


def _envctl(*args, env=None):
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "250", **(env or {})})


def test_cli_compare_exit_codes_json_and_html(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_doc(1.8)))
    b.write_text(json.dumps(_doc(1.2)))
    page = tmp_path / "cmp.html"
    bad = _envctl("bench", "compare", str(a), str(b), "--html", str(page))
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines()[2].startswith("run-to-run spread: one run each")
    assert "regression beyond 10%: compile-default on resnet50 fp32 b1" in bad.stderr
    assert "<svg" in page.read_text()
    ok = _envctl("bench", "compare", str(a), str(a), "--json")
    assert ok.returncode == 0
    data = json.loads(ok.stdout)
    assert {r["mode"]: r["verdict"] for r in data["rows"]} == {"eager": "base", "compile-default": "same",
                                                                "script": "same"}
    gated_off = _envctl("bench", "compare", str(a), str(b), "--fail-on", "script")
    assert gated_off.returncode == 0  # only the chosen modes gate


def test_cli_compare_gates_every_mode_by_default(tmp_path):
    # Only TorchScript lost its speedup (2.5x -> 1.5x): a regression, whichever mode it is.
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_doc(1.8)))
    slower_script = _doc(1.8)
    slower_script["benchmarks"][2] = _row("script", 6.0 / 1.5, 1.5)
    b.write_text(json.dumps(slower_script))
    gated = _envctl("bench", "compare", str(a), str(b))
    assert gated.returncode == 1, gated.stderr
    assert "regression beyond 10%: script on resnet50 fp32 b1" in gated.stderr
    assert _envctl("bench", "compare", str(a), str(b), "--fail-on", "compile-default").returncode == 0
    for missing in ("#4242", "no-such-image"):  # a run that does not exist is bad input
        result = _envctl("bench", "compare", missing, str(b))
        assert result.returncode == 2 and result.stderr.startswith("error: no recorded "), result.stderr
    assert "Exit 0 when no gated mode lost more than --threshold (speedup or time), 1 when one did" in \
        " ".join(_envctl("bench", "compare", "-h").stdout.replace("│", " ").split())


def test_cli_show_recorded_h100_runs(tmp_path):
    page = tmp_path / "h100.html"
    res = _envctl("bench", "show", str(GPU_RESULTS / "standard-1.json"), str(GPU_RESULTS / "standard-2.json"),
                  "--html", str(page))
    assert res.returncode == 0, res.stderr
    assert "compile-reduce-overhead" in res.stdout and "inconclusive" in res.stdout
    assert page.read_text().count("<table class='bars'>") == 8  # 2 models x 2 dtypes x 2 batch sizes


def test_verify_table_prints_no_speedup_for_an_inconclusive_row(capsys):
    from envctl.cli.verify import _render
    from envctl.probe import ProbeReport

    doc = _doc(1.8)
    doc["benchmarks"][1]["speedup"].update(median=0.02, low=0.01, high=3.0, conclusive=False,
                                           verdict="inconclusive", why=["other processes used 1.6 of 2 CPU cores"])
    doc.update(checks=[], ok=True)
    _render(ProbeReport(doc, 0, 1.0), "t")
    out = capsys.readouterr().out
    assert "inconclusive (noisy host)" in out and "0.02x" not in out
    assert "resnet50 fp32 b1 compile-default: other processes used 1.6 of 2 CPU cores" in out
    assert "2.50x" in out and "6.000 [5.880-6.120]" in out


@pytest.mark.parametrize("columns", [60, 80, 100])
def test_verify_benchmark_table_cuts_no_cell_at_narrow_widths(columns):
    # Every value of every row stays whole; what does not fit moves to a second line (issue #15).
    import io

    from rich.console import Console

    from envctl import console as envctl_console
    from envctl.cli.verify import _render
    from envctl.probe import ProbeReport

    doc = _doc(1.8)
    doc["benchmarks"][1]["speedup"].update(conclusive=False, why=["other processes used 1.6 of 2 CPU cores"])
    doc.update(checks=[], ok=True)
    buf = io.StringIO()
    saved = envctl_console.out
    envctl_console.out = Console(file=buf, width=columns, no_color=True)
    try:
        _render(ProbeReport(doc, 0, 1.0), "t")
    finally:
        envctl_console.out = saved
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns
    for value in ("inconclusive (noisy host)", "6.000 [5.880-6.120]", "compile-default", "resnet50"):
        assert value in text, (columns, text)


GATE_PAIRS = Path(__file__).resolve().parent / "data" / "gate"


def test_two_runs_of_one_environment_that_the_old_gate_called_a_regression_pass():
    """std-1/std-2: one unchanged H100 environment, run back to back (2026-12-06); the old
    compare called transformer compile-default 0.83x 'slower' and exited 1. Its rows are
    host-dependent (the host's dispatch speed moved during their rounds): no verdict is drawn
    from them, and each says why."""
    a, b = load_runs(str(GATE_PAIRS / "std-1.json")), load_runs(str(GATE_PAIRS / "std-2.json"))
    c = compare(a, b, gate_modes=("compile-default", "eager"))
    assert c.exit_code == 0 and not c.gate
    row = next(r for r in c.rows if r.key == ("transformer", "fp32", 8, "compile-default"))
    assert row.verdict == "withheld" and row.abs_verdict == "withheld"
    assert any("host dispatch speed moved 5.63 -> 3.47 us per op" in w for w in row.withheld)
    assert not [r for r in c.rows if r.verdict in ("slower", "faster") or r.abs_verdict.startswith("B ")]
    # asked to include host-bound rows, verdicts are drawn from them again: the flag is what spared them
    forced = compare(a, b, gate_modes=("compile-default",), include_host_bound=True)
    assert not forced.withheld
    assert {r.verdict for r in forced.rows if r.key[3] != "eager"} <= {"slower", "same", "inconclusive"}


def _flagged(doc, mode, **row):
    for r in doc["benchmarks"]:
        if r["mode"] == mode:
            r.update(row)
    return doc


def test_host_bound_rows_are_withheld_unless_asked_and_name_their_share():
    a = [BenchRun("a", _doc(1.80))]
    b = [BenchRun("b", _flagged(_doc(1.20), "compile-default", host_share=0.93, host_bound=True))]
    c = compare(a, b, gate_modes=("compile-default",))
    row = next(r for r in c.rows if r.key[3] == "compile-default")
    assert c.exit_code == 0 and row.verdict == "withheld"
    assert row.withheld == ["B is host-bound: the CPU launches for 93% of a call, so its time follows "
                            "the host's speed"]
    # a host-bound eager row withholds every speedup of its group (eager is their base)
    b2 = [BenchRun("b", _flagged(_doc(1.20), "eager", host_share=0.9, host_bound=True))]
    assert {r.key[3]: r.verdict for r in compare(a, b2).rows} == {
        "eager": "base", "compile-default": "withheld", "script": "withheld"}
    assert compare(a, b, gate_modes=("compile-default",), include_host_bound=True).exit_code == 1


def test_a_contended_run_draws_no_verdict_even_when_host_bound_rows_are_included():
    busy = _doc(1.20)
    busy["machine"]["groups"][0]["window"].update(other_cpu_cores=1.0, cores=2)
    c = compare([BenchRun("a", _doc(1.80))], [BenchRun("b", busy)], gate_modes=("compile-default",),
                include_host_bound=True)
    assert c.exit_code == 0
    assert all(r.abs_verdict == "withheld" for r in c.rows)
    assert c.rows[0].withheld == ["B was timed while other processes used 1.0 of 2 CPU cores"]


def test_cpu_times_compare_only_at_the_same_host_speed():
    def cpu(eager_ms, host_us):
        d = _doc(1.5, eager_ms=eager_ms)
        d["device"], d["env"]["gpus"] = "cpu", []
        d["machine"]["groups"][0]["timing"] = {"host_us": {"median": host_us}}
        return d

    slow_host = compare([BenchRun("a", cpu(6.0, 3.0))], [BenchRun("b", cpu(9.0, 5.5))], gate_modes=("eager",))
    assert slow_host.exit_code == 0 and slow_host.rows[0].abs_verdict == "not comparable"
    same_host = compare([BenchRun("a", cpu(6.0, 3.0))], [BenchRun("b", cpu(9.0, 3.1))], gate_modes=("eager",))
    assert same_host.exit_code == 1 and same_host.rows[0].abs_verdict == "B slower"


def test_a_mode_that_fails_in_b_is_a_regression_not_a_gap():
    broken = _doc(1.80)
    broken["benchmarks"][1] = {"model": "resnet50", "dtype": "fp32", "batch": 1, "mode": "compile-default",
                               "status": "error", "error": "InvalidCxxCompiler: No working C++ compiler found"}
    c = compare([BenchRun("a", _doc(1.80))], [BenchRun("b", broken)])
    row = next(r for r in c.rows if r.key[3] == "compile-default")
    assert row.verdict == "B failed" and "InvalidCxxCompiler" in row.notes[0]
    assert c.exit_code == 1 and [r.key[3] for r in c.gate] == ["compile-default"]


def test_runs_on_other_hardware_draw_no_verdict():
    cpu = _doc(1.20)
    cpu["device"], cpu["env"]["gpus"] = "cpu", []
    c = compare([BenchRun("a", _doc(1.80))], [BenchRun("b", cpu)])
    assert c.exit_code == 0 and {r.verdict for r in c.rows if r.key[3] != "eager"} == {"withheld"}
    assert c.rows[1].withheld[0].startswith("A ran on H100, B on cpu")
    nameless = _doc(1.20)
    nameless["env"]["gpus"] = []  # a CUDA run that names no GPU compares with nothing
    assert compare([BenchRun("a", nameless)], [BenchRun("b", nameless)]).rows[0].abs_verdict == "not comparable"


def test_cpu_times_without_a_recorded_host_speed_are_not_compared():
    def cpu(eager_ms):
        d = _doc(1.5, eager_ms=eager_ms)
        d["device"], d["env"]["gpus"] = "cpu", []
        return d

    c = compare([BenchRun("a", cpu(6.0))], [BenchRun("b", cpu(9.0))], gate_modes=("eager",))
    assert c.exit_code == 0 and c.rows[0].abs_verdict == "not comparable"


def test_h100_quick_runs_gate_the_gpu_bound_times_and_withhold_the_launch_bound_rows():
    """Three quick runs on the lent H100 (2026-12-07, benchmarks/results/gate/h100-2): A2 and A3
    of one environment, B2 the same with NVIDIA_TF32_OVERRIDE=0. ResNet-50 b32 script/trace are
    GPU-bound (the host queues a call in ~30% of its time) while eager is launch-bound (~58%): the
    speedups over eager are withheld, the times are gated. A2/A3 pass; TF32 off is caught."""
    a2, a3 = load_runs(str(GATE_PAIRS / "h100-quick-A2.json")), load_runs(str(GATE_PAIRS / "h100-quick-A3.json"))
    b2 = load_runs(str(GATE_PAIRS / "h100-quick-B2-tf32off.json"))
    same = compare(a2, a3)
    assert same.exit_code == 0
    assert not [r for r in same.rows if r.verdict in ("slower", "faster") or r.abs_verdict.startswith("B ")]
    script = next(r for r in same.rows if r.key == ("resnet50", "fp32", 32, "script"))
    assert script.verdict == "withheld" and script.abs_verdict in ("same", "within noise")
    assert script.withheld and all(w.startswith("its eager base: ") for w in script.withheld)
    changed = compare(a2, b2)
    assert changed.exit_code == 1
    assert {r.key[3] for r in changed.gate} == {"script", "trace"}
    assert all(r.abs_verdict == "B slower" and r.abs_change[0] > 1.5 for r in changed.gate)
    # the launch-bound rows stay withheld whatever TF32 does to them
    assert {r.key[3] for r in changed.rows if r.key[0] == "transformer"} and all(
        r.abs_verdict == "withheld" for r in changed.rows if r.key[0] == "transformer")


def test_a_host_bound_eager_base_withholds_the_speedup_but_not_the_rows_own_time():
    a = [BenchRun("a", _flagged(_doc(1.80), "eager", host_share=0.6, host_bound=True))]
    slow = _doc(1.80)
    for r in slow["benchmarks"]:
        if r["mode"] == "script":
            r.update(median_ms=r["median_ms"] * 2, ci_low_ms=r["ci_low_ms"] * 2, ci_high_ms=r["ci_high_ms"] * 2)
    c = compare(a, [BenchRun("b", slow)])
    row = next(r for r in c.rows if r.key[3] == "script")
    assert row.verdict == "withheld" and row.abs_verdict == "B slower" and not row.abs_withheld
    assert c.exit_code == 1 and [r.key[3] for r in c.gate] == ["script"]


def test_cli_compare_of_the_h100_tf32_pair_names_the_gated_times_and_the_withheld_speedups():
    result = _envctl("bench", "compare", str(GATE_PAIRS / "h100-quick-A2.json"),
                     str(GATE_PAIRS / "h100-quick-B2-tf32off.json"))
    assert result.returncode == 1, result.stderr
    assert "regression beyond 10%: script on resnet50 fp32 b32, trace on resnet50 fp32 b32" in result.stderr
    assert "6 rows withheld, 2 more speedups (their times gated)" in result.stderr
    assert "speedup withheld (its time is gated) resnet50 fp32 b32 script: its eager base: A is host-bound" \
        in " ".join(result.stdout.split())
