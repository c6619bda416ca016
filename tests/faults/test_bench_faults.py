"""#22 item 12 for ``envctl bench compare``: a --threshold or --repeat that would switch the
regression gate off (nan, inf, a negative or 100+% loss, no runs) is refused with its range,
on the recorded H100 runs and a copy of one whose compiled speedups halved."""

from __future__ import annotations

import json

import pytest

from tests.faults.conftest import REPO, assert_one_line_error, envctl

RUNS = REPO / "benchmarks" / "results" / "gpu"


@pytest.fixture
def regressed(tmp_path):
    """standard-1.json with every compile-default speedup halved: a regression any gate catches."""
    doc = json.loads((RUNS / "standard-1.json").read_text())
    for row in doc["benchmarks"]:
        if row["mode"] == "compile-default" and row.get("speedup"):
            row["speedup"] = row["speedup"] | {k: row["speedup"][k] / 2 for k in ("median", "low", "high")}
    path = tmp_path / "regressed.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_gate_fails_the_regression_it_is_given(regressed):
    result = envctl("bench", "compare", str(RUNS / "standard-1.json"), str(regressed), "--threshold", "10")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "regression beyond 10%" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "100", "250"])
def test_a_threshold_that_switches_the_gate_off_is_refused(regressed, value):
    result = envctl("bench", "compare", str(RUNS / "standard-1.json"), str(regressed), "--threshold", value)
    assert_one_line_error(result, 2, f"--threshold {float(value)}", "from 0 up to (not including) 100")
    assert result.stdout == ""


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_repeat_below_one_is_refused(value):
    result = envctl("bench", "compare", "pytorch-2.13-cpu", "pytorch-2.13-cpu", "--run", "--repeat", value)
    assert_one_line_error(result, 2, f"--repeat {value}", "1 or more")


def test_a_document_nested_past_the_parsers_depth_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for args in (["bench", "show", str(deep)], ["bench", "compare", str(deep), str(deep), "--json"]):
        assert_one_line_error(envctl(*args, timeout=60), 2, "nested too deep")


def test_a_gated_mode_no_run_has_is_refused(tmp_path):
    """--fail-on warp-drive would gate nothing and pass: a typo must not switch the gate off."""
    from tests.test_bench import _doc

    a = tmp_path / "a.json"
    a.write_text(json.dumps(_doc(1.8)))
    assert_one_line_error(envctl("bench", "compare", str(a), str(a), "--fail-on", "warp-drive", timeout=60), 2,
                          "--fail-on warp-drive", "no run here has that mode")
