"""Compare benchmark runs: speedup ratios with intervals, absolute times only with theirs.

Two images cannot be timed side by side (two
containers cannot interleave), so a comparison across images compares what survives a change
of process: each mode's speedup over eager, measured interleaved within its own run, and, on
the same GPU model, absolute times. A single run's intervals state its own noise, not how much
two runs of one environment differ, so before calling anything a regression a difference must
exceed both the intervals and the run-to-run spread (measured from repeated runs, or the
floors in ``envctl/data/bench-noise.yaml`` measured so on the reference machines). No verdict
is drawn from a row the probe flagged: host-bound on a GPU (its time follows the host CPU's
speed, which moves between processes), or timed while other processes were busy on the CPU;
each withheld row says why. Pure functions over the documents; the records DB is at the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from envctl.bench.runs import BenchRun, Key
from envctl.errors import UsageError

SAME_BAND = 0.05  # a change interval within noise +- 5% of 1.0 is "same"
BUSY_SHARE = 0.25  # other processes on more than this share of the cores: contended (as the probe)


def _ratio(row: dict) -> dict | None:
    sp = row.get("speedup")
    return sp if isinstance(sp, dict) and sp.get("median") else None


def _pct(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2.0) * 100.0


def _device_kind(run: BenchRun) -> str:
    return "cuda" if str(run.document.get("device") or "").startswith("cuda") else "cpu"


@lru_cache(maxsize=1)
def noise_floors() -> dict[str, dict[str, float]]:
    """Run-to-run spread of one unchanged environment per device kind (data/bench-noise.yaml)."""
    from envctl import yamldoc
    from envctl.data import read

    doc = yamldoc.load(read("bench-noise.yaml"))
    return {kind: {k: float(v) for k, v in doc[kind].items()} for kind in ("cuda", "cpu")}


def run_spread(runs: list[BenchRun]) -> dict[Key, dict[str, float]]:
    """Per row, how much the runs of one image differ: speedup and absolute median, in %."""
    out: dict[Key, dict[str, float]] = {}
    if len(runs) < 2:
        return out
    tables = [r.rows for r in runs]
    for key in set.intersection(*(set(t) for t in tables)):
        rows = [t[key] for t in tables]
        meds = [r["median_ms"] for r in rows if r.get("median_ms")]
        ratios = [_ratio(r)["median"] for r in rows if _ratio(r)]
        entry = {}
        if len(meds) == len(rows):
            entry["abs_pct"] = max(_pct(a, b) for a in meds for b in meds)
        if len(ratios) == len(rows):
            entry["speedup_pct"] = max(_pct(a, b) for a in ratios for b in ratios)
        out[key] = entry
    return out


def row_flags(side: str, run: BenchRun, row: dict) -> tuple[list[str], list[str]]:
    """(contended, host-bound): why no verdict is drawn from this row of this run, a line each.

    Contention always withholds (pairing cancels load that slows every mode alike, and
    contention does not). Host-bound rows on a GPU follow the host CPU's dispatch speed, which
    moves between processes on a shared VM: the probe measures the share of a call the host
    spends launching it (``host_share``); documents from before that measurement fall back on
    what they recorded: a ratio the probe found host-dependent, or the host's speed moving
    during the row's rounds.
    """
    group = run.group_state(row) or {}
    window = group.get("window") or {}
    other, cores = window.get("other_cpu_cores"), window.get("cores") or 1
    contended = ([f"{side} was timed while other processes used {other:.1f} of {cores} CPU cores"]
                 if isinstance(other, (int, float)) and other > BUSY_SHARE * cores else [])
    host: list[str] = []
    if _device_kind(run) == "cuda":
        share = row.get("host_share")
        if row.get("host_bound"):
            host.append(f"{side} is host-bound: the CPU launches for {share:.0%} of a call, so its time "
                        f"follows the host's speed")
        elif "host_share" not in row:  # a document from before the probe measured it
            hd = (_ratio(row) or {}).get("host_dependent")
            moved = [n for n in group.get("notes") or [] if n.startswith("host dispatch speed moved")]
            if hd:
                host.append(f"{side} follows the host's speed: {hd['fast_host']:.2f}x at "
                            f"{hd['fast_host_us']:.1f} us/op, {hd['slow_host']:.2f}x at {hd['slow_host_us']:.1f}")
            elif moved:
                host.append(f"{side} is host-dependent: {moved[0]} during its rounds")
    return contended, host


def _host_us(run: BenchRun, row: dict) -> float | None:
    g = run.group_state(row) or {}
    return ((g.get("timing") or {}).get("host_us") or {}).get("median")


@dataclass
class RowChange:
    key: Key
    a: dict
    b: dict
    speedup_a: dict | None = None
    speedup_b: dict | None = None
    change: tuple[float, float, float] | None = None  # (median, low, high) of B's speedup / A's
    noise_pct: float = 0.0
    verdict: str = "inconclusive"
    abs_change: tuple[float, float, float] | None = None  # (median, low, high) of B's time / A's
    abs_noise_pct: float | None = None
    abs_verdict: str = "within intervals"
    withheld: list[str] = field(default_factory=list)  # why no speedup verdict is drawn (this row or its eager base)
    abs_withheld: list[str] = field(default_factory=list)  # why no verdict on its time is drawn (this row alone)
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    a_label: str
    b_label: str
    a_where: str
    b_where: str
    spread_note: str
    rows: list[RowChange]
    gate: list[RowChange]
    threshold_pct: float
    include_host_bound: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.gate else 0

    @property
    def withheld(self) -> list[RowChange]:
        return [r for r in self.rows if r.withheld]


def _state_line(run: BenchRun, row: dict) -> str | None:
    g = run.group_state(row) or {}
    w = g.get("window") or {}
    host = ((g.get("timing") or {}).get("host_us") or {}).get("median")
    parts = []
    gpu = (w.get("after") or {}).get("gpu")
    if gpu:
        parts.append(f"SM {gpu.get('sm_mhz')} MHz, {gpu.get('temp_c')} C, {gpu.get('power_w')} W")
    if host is not None:  # host-bound modes (eager at small batch) follow the host's dispatch speed
        parts.append(f"host {host:.1f} us/op")
    if w.get("other_cpu_cores") is not None:
        parts.append(f"other processes {w['other_cpu_cores']} cores")
    return ", ".join(parts) or None


def compare_row(key: Key, a: dict, b: dict, noise_pct: float, *, abs_noise_pct: float | None = None,
                withheld: list[str] = (), abs_withheld: list[str] | None = None) -> RowChange:
    """One row of A against B: the speedup change and the absolute change, each with its interval.

    ``abs_noise_pct`` None: absolute times of the two runs are not comparable (other GPUs, or
    the CPU's speed differing between the runs). ``withheld``: the reasons no speedup verdict is
    drawn (the row's own flags and its eager base's); ``abs_withheld``: the reasons no verdict on
    its time is drawn (the row's own flags: a GPU-bound compiled row keeps its time verdict when
    only eager is host-bound); None means the same as ``withheld``.
    """
    rc = RowChange(key, a, b, _ratio(a), _ratio(b), noise_pct=noise_pct, abs_noise_pct=abs_noise_pct,
                   withheld=list(withheld),
                   abs_withheld=list(withheld if abs_withheld is None else abs_withheld))
    if rc.speedup_a and rc.speedup_b:
        sa, sb = rc.speedup_a, rc.speedup_b
        rc.change = (sb["median"] / sa["median"], sb["low"] / sa["high"], sb["high"] / sa["low"])
        med, lo, hi = rc.change
        band = noise_pct / 100.0
        if rc.withheld:
            rc.verdict = "withheld"
        elif not (sa.get("conclusive") and sb.get("conclusive")):
            rc.verdict = "inconclusive"  # a speedup that is itself unsettled settles no change
        elif hi < 1.0 and med < 1.0 - band:
            rc.verdict = "slower"
        elif lo > 1.0 and med > 1.0 + band:
            rc.verdict = "faster"
        elif lo >= 1.0 - band - SAME_BAND and hi <= 1.0 + band + SAME_BAND:
            rc.verdict = "same"
        else:
            rc.verdict = "inconclusive"
            rc.notes.append(f"change {lo:.2f}-{hi:.2f}x is within the intervals and the "
                            f"{noise_pct:.0f}% run-to-run noise")
        for side, sp in (("A", sa), ("B", sb)):
            if not sp.get("conclusive") and not rc.withheld:
                rc.notes.append(f"{side}: {sp.get('verdict')} ({'; '.join(sp.get('why') or [])})")
    elif key[3] == "eager":
        rc.verdict = "base"
    else:
        rc.verdict = "no speedup data"
    alo, ahi, blo, bhi = (a.get("ci_low_ms"), a.get("ci_high_ms"), b.get("ci_low_ms"), b.get("ci_high_ms"))
    if None in (alo, ahi, blo, bhi) or not a.get("median_ms") or not alo or not blo:
        rc.abs_verdict = "no intervals"
        return rc
    rc.abs_change = (b["median_ms"] / a["median_ms"], blo / ahi, bhi / alo)
    if abs_noise_pct is None:
        rc.abs_verdict = "not comparable"
    elif rc.abs_withheld:
        rc.abs_verdict = "withheld"
    elif not (a.get("conclusive") and b.get("conclusive")):
        rc.abs_verdict = "intervals wide"
    else:
        med, lo, hi = rc.abs_change
        band = abs_noise_pct / 100.0
        if lo > 1.0 and med > 1.0 + band:
            rc.abs_verdict = "B slower"
        elif hi < 1.0 and med < 1.0 - band:
            rc.abs_verdict = "B faster"
        else:
            rc.abs_verdict = "same" if not (blo > ahi or bhi < alo) else "within noise"
    return rc


def check_threshold(threshold_pct: float) -> float:
    """A loss of speedup in %: 0 (any loss fails) up to but not including 100, which no loss can
    exceed; nan, inf or a negative value would switch the gate off (or fail everything) unseen."""
    if not (math.isfinite(threshold_pct) and 0 <= threshold_pct < 100):
        raise UsageError(f"--threshold {threshold_pct}: give the % loss of a speedup that fails the gate, "
                         f"from 0 up to (not including) 100")
    return threshold_pct


def compare(a_runs: list[BenchRun], b_runs: list[BenchRun], *, threshold_pct: float = 10.0,
            gate_modes: tuple[str, ...] | None = None, include_host_bound: bool = False) -> Comparison:
    """Compare the newest run of A with the newest of B; the others give the run-to-run spread.

    The noise of a row is the larger of the spread measured across each side's runs and the
    floor measured for the device kind. Absolute times compare only between runs on the same
    GPU model, or, on the CPU, where the host's recorded dispatch speed agrees within the floor.
    A mode in ``gate_modes`` (every mode when None) that is slower beyond the threshold gates.
    ``include_host_bound``: draw verdicts from host-bound rows too (contended ones never).
    """
    check_threshold(threshold_pct)
    a, b = a_runs[0], b_runs[0]
    modes = sorted({k[3] for k in (*a.rows, *b.rows, *b.failed_rows)})
    unknown = [m for m in gate_modes or () if m not in modes]
    if unknown:  # a typo would gate nothing and pass
        raise UsageError(f"--fail-on {unknown[0]}: no run here has that mode",
                         hint=f"the modes of these runs: {', '.join(modes)}")
    floors = noise_floors()[_device_kind(a)]
    spread, spread_b = run_spread(a_runs), run_spread(b_runs)
    if spread or spread_b:
        values = [v.get("speedup_pct", 0.0) for s in (spread, spread_b) for v in s.values()]
        spread_note = (f"run-to-run spread of one image (speedup medians, {len(a_runs)} runs of A, "
                       f"{len(b_runs)} of B): up to {max(values):.1f}%, median "
                       f"{sorted(values)[len(values) // 2]:.1f}%; floor {floors['speedup_pct']:.0f}%")
    else:
        spread_note = (f"run-to-run spread: one run each, so the floor measured for {_device_kind(a)} runs "
                       f"applies ({floors['speedup_pct']:.0f}% for speedups, {floors['abs_pct']:.0f}% for "
                       f"times); record more runs of an image to measure its own")
    kind = _device_kind(a)
    same_device = kind == _device_kind(b) and a.gpu == b.gpu and (kind == "cpu" or a.gpu is not None)
    other_hardware = ([] if same_device else
                      [f"A ran on {a.gpu or _device_kind(a)}, B on {b.gpu or _device_kind(b)}: a speedup "
                       f"differs between devices whatever the image"])
    rows = []
    ra, rb = a.rows, b.rows
    for key in sorted(set(ra) & set(rb), key=lambda k: (k[0], k[1], k[2], k[3] != "eager", k[3])):
        noise = max([floors["speedup_pct"]] + [s.get(key, {}).get("speedup_pct", 0.0) for s in (spread, spread_b)])
        abs_noise = max([floors["abs_pct"]] + [s.get(key, {}).get("abs_pct", 0.0) for s in (spread, spread_b)])
        own: list[str] = list(other_hardware)  # withholds both verdicts of this row
        base: list[str] = []  # its eager base's flags withhold its speedup only
        base_key = key[:3] + ("eager",)
        for side, run, table in (("A", a, ra), ("B", b, rb)):
            contended, host = row_flags(side, run, table[key])
            own += contended + ([] if include_host_bound else host)
            if base_key in table and base_key != key:
                contended, host = row_flags(side, run, table[base_key])
                base += [f"its eager base: {w}" for w in contended + ([] if include_host_bound else host)]
        withheld = list(dict.fromkeys(own + base))
        if not same_device:
            abs_noise = None
        elif kind == "cpu":  # CPU times compare only at a known, agreeing host speed
            ha, hb = _host_us(a, ra[key]), _host_us(b, rb[key])
            if not (ha and hb) or _pct(ha, hb) > floors["abs_pct"]:
                abs_noise = None
        rc = compare_row(key, ra[key], rb[key], noise, abs_noise_pct=abs_noise, withheld=withheld,
                         abs_withheld=list(dict.fromkeys(own)))
        for side, run, row in (("A", a, ra[key]), ("B", b, rb[key])):
            state = _state_line(run, row)
            if state and rc.abs_verdict.startswith("B "):
                rc.notes.append(f"{side} state: {state}")
        rows.append(rc)
    rows += _broken_in_b(ra, b.failed_rows)
    gate = [r for r in rows if (gate_modes is None or r.key[3] in gate_modes) and (
        r.verdict == "B failed" or
        (r.verdict == "slower" and r.change and r.change[0] < 1.0 - threshold_pct / 100.0)
        or (r.abs_verdict == "B slower" and r.abs_change and r.abs_change[0] > 1.0 + threshold_pct / 100.0))]
    return Comparison(a.label, b.label, a.where, b.where, spread_note, rows, gate, threshold_pct,
                      include_host_bound)


def _broken_in_b(ra: dict[Key, dict], failed_b: dict[Key, dict]) -> list[RowChange]:
    """Modes that ran in A and failed in B: the worst regression of all, never a silent gap."""
    out = []
    for key in sorted(set(ra) & set(failed_b)):
        rc = RowChange(key, ra[key], failed_b[key], verdict="B failed", abs_verdict="B failed")
        rc.notes.append(f"B: {failed_b[key].get('error') or failed_b[key].get('status')}")
        out.append(rc)
    return out


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (``--json``)."""
    return {"a": c.a_label, "b": c.b_label, "a_where": c.a_where, "b_where": c.b_where,
            "spread": c.spread_note, "threshold_pct": c.threshold_pct,
            "include_host_bound": c.include_host_bound,
            "regressions": [list(r.key) for r in c.gate],
            "rows": [{"model": r.key[0], "dtype": r.key[1], "batch": r.key[2], "mode": r.key[3],
                      "a_ms": [r.a.get("median_ms"), r.a.get("ci_low_ms"), r.a.get("ci_high_ms")],
                      "b_ms": [r.b.get("median_ms"), r.b.get("ci_low_ms"), r.b.get("ci_high_ms")],
                      "a_speedup": r.speedup_a, "b_speedup": r.speedup_b,
                      "change": list(r.change) if r.change else None, "noise_pct": r.noise_pct,
                      "abs_change": list(r.abs_change) if r.abs_change else None, "abs_noise_pct": r.abs_noise_pct,
                      "verdict": r.verdict, "abs_verdict": r.abs_verdict, "withheld": r.withheld,
                      "abs_withheld": r.abs_withheld,
                      "notes": r.notes}
                     for r in c.rows]}
