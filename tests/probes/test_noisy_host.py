"""The probe on a busy 2-core machine: rows come out inconclusive, never wrong.

Two quiet quick runs and one with a spinning process per core, each a real probe subprocess
(transformer only, to keep the cold compile short). What would break: a timing method that
reads noise as a speedup (the 0.02x of the old probe) gives conclusive verdicts in opposite
directions, or a conclusive verdict under load that the quiet runs contradict.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[2] / "envctl" / "probes" / "smoke.py"
CONFIG = {"gpus": "none", "benchmark": {"models": ["transformer"]}}
OPPOSITE = {("faster", "slower"), ("slower", "faster")}


def _probe() -> dict:
    proc = subprocess.run([sys.executable, str(SMOKE), "--quick", "--config", "-"], input=json.dumps(CONFIG),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _speedups(doc: dict) -> dict:
    return {r["mode"]: r["speedup"] for r in doc["benchmarks"] if r.get("speedup")}


@pytest.fixture(scope="module")
def runs():
    quiet = [_probe(), _probe()]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        loaded = _probe()
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return quiet, loaded


@pytest.mark.torch
@pytest.mark.slow
def test_two_quick_runs_never_disagree_conclusively(runs):
    (a, b), _ = runs
    sa, sb = _speedups(a), _speedups(b)
    assert set(sa) == {"compile-default", "script", "trace"}
    for mode in sa:
        pair = (sa[mode]["verdict"], sb[mode]["verdict"])
        assert pair not in OPPOSITE, (mode, sa[mode], sb[mode])
        for sp in (sa[mode], sb[mode]):
            assert sp["low"] <= sp["median"] <= sp["high"]
            assert sp["conclusive"] == (sp["verdict"] != "inconclusive")
            assert sp["conclusive"] or sp["why"]  # an inconclusive row says why


@pytest.mark.torch
@pytest.mark.slow
def test_busy_host_is_inconclusive_not_wrong(runs):
    quiet, loaded = runs
    machine = loaded["machine"]
    assert machine["other_cpu_cores"] >= 1.0  # the spinners were really there
    group_notes = [n for g in machine["groups"] for n in g["notes"]]
    assert any("other processes used" in n for n in group_notes)
    for mode, sp in _speedups(loaded).items():
        if not sp["conclusive"]:
            assert any("other processes used" in w for w in sp["why"]), sp  # the load is named
            continue
        for q in quiet:  # a verdict given under load must not contradict a quiet run
            qs = _speedups(q)[mode]
            assert (sp["verdict"], qs["verdict"]) not in OPPOSITE, (mode, sp, qs)
            if qs["conclusive"]:
                assert abs(sp["median"] - qs["median"]) / qs["median"] < 0.3, (mode, sp, qs)
