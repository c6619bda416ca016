"""Compare benchmark runs: speedup ratios with intervals, absolute times only with theirs.

A *run* is one smoke-probe document (``envctl verify``/``envctl smoke`` record it whole in the
records database, or it is a JSON file). Two images cannot be timed side by side (two
containers cannot interleave), so a comparison across images compares what survives a change
of process: each mode's speedup over eager, measured interleaved within its own run. Before
calling anything a regression it states how much two runs of *one* image differ (the
run-to-run spread, from the records), and a difference must exceed both the intervals and
that spread. Pure functions over the documents; loading from the records DB is at the edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envctl.errors import EnvctlError, UsageError
from envctl.yamldoc import read_document

SPREAD_FLOOR_PCT = 5.0  # assumed run-to-run spread of a speedup when only one run is recorded
SAME_BAND = 0.05  # a change interval within noise +- 5% of 1.0 is "same"
Key = tuple  # (model, dtype, batch, mode)


@dataclass(frozen=True)
class BenchRun:
    label: str
    document: dict[str, Any]
    record_id: int | None = None

    @property
    def rows(self) -> dict[Key, dict]:
        return {(r["model"], r["dtype"], r["batch"], r["mode"]): r
                for r in self.document.get("benchmarks") or [] if r.get("status") == "ok"}

    @property
    def gpu(self) -> str | None:
        gpus = (self.document.get("env") or {}).get("gpus") or []
        return ", ".join(sorted({g.get("name", "?") for g in gpus})) or None

    @property
    def where(self) -> str:
        torch = ((self.document.get("env") or {}).get("torch") or {}).get("version")
        return f"{self.document.get('device')} ({self.gpu or 'cpu'}), torch {torch}, level {self.document.get('level')}"

    def group_state(self, row: dict) -> dict | None:
        groups = (self.document.get("machine") or {}).get("groups") or []
        gi = row.get("group")
        return groups[gi] if isinstance(gi, int) and 0 <= gi < len(groups) else None


def _from_record(rec_id: int, records) -> BenchRun:
    rows = list(records.execute("SELECT id, kind, image, document FROM runs WHERE id = ?", (rec_id,)))
    if not rows or not rows[0]["document"]:
        raise EnvctlError(f"no recorded run #{rec_id} with a probe document", hint="see: envctl history")
    row = rows[0]
    return BenchRun(f"{row['image']} #{row['id']}", json.loads(row["document"]), int(row["id"]))


def load_runs(ref: str, *, records=None, count: int = 2) -> list[BenchRun]:
    """Runs named by ``ref``: a JSON file, ``#ID`` (a record), or an image name (its newest
    ``count`` recorded verify/smoke/bench runs with benchmarks, newest first)."""
    path = Path(ref)
    if ref.endswith(".json") or path.is_file():
        try:
            doc = json.loads(read_document(path))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UsageError(f"{ref}: not a readable probe JSON document ({reason})") from None
        return [BenchRun(path.name, doc)]
    if records is None:
        from envctl.records import Records

        records = Records()
    if ref.lstrip("#").isdigit():
        return [_from_record(int(ref.lstrip("#")), records)]
    found = []
    for row in records.execute("SELECT id, image, document FROM runs WHERE image = ? AND kind IN ('verify','smoke','bench')"
                               " AND document IS NOT NULL ORDER BY started DESC, id DESC", (ref,)):
        doc = json.loads(row["document"])
        if doc.get("benchmarks"):
            found.append(BenchRun(f"{row['image']} #{row['id']}", doc, int(row["id"])))
        if len(found) == count:
            break
    if not found:
        raise EnvctlError(f"no recorded benchmark run of {ref}",
                          hint=f"run: envctl verify {ref} (or name a probe JSON file or #ID)")
    return found


def measure_image(name: str, *, level: str, gpus: str) -> BenchRun:
    """Run the probe in the built image of ``name`` now, record it (kind "bench"), return the run."""
    import time

    from envctl.build import require_built
    from envctl.catalog import find_project
    from envctl.engine import Engine
    from envctl.lock import require_current_lock
    from envctl.probe import check_gpus, probe_config, run_in_image
    from envctl.records import Records

    project = find_project()
    spec = project.resolve(name)
    lock = require_current_lock(spec, project.lock_path(spec.name))
    engine = Engine.connect()
    image = require_built(engine, spec, lock)
    gpus = check_gpus(gpus)
    started = time.time()
    report = run_in_image(engine, image.id, probe_config(spec, lock, gpus=gpus, level=level), gpus=gpus,
                          level=level)
    rec = Records().add_run(kind="bench", image=spec.name, ok=report.ok, image_id=image.id,
                            spec_hash=spec.content_hash(), lock_hash=lock.lock_hash, gpu=report.gpu,
                            driver=report.driver, summary=f"{len(report.benchmarks)} benchmark rows",
                            started=started, duration_s=report.seconds, document=report.document)
    return BenchRun(f"{spec.name} #{rec}", report.document, rec)


def _ratio(row: dict) -> dict | None:
    sp = row.get("speedup")
    return sp if isinstance(sp, dict) and sp.get("median") else None


def _pct(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2.0) * 100.0


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


@dataclass
class RowChange:
    key: Key
    a: dict
    b: dict
    speedup_a: dict | None = None
    speedup_b: dict | None = None
    change: tuple[float, float, float] | None = None  # (median, low, high) of B's speedup / A's
    noise_pct: float = SPREAD_FLOOR_PCT
    verdict: str = "inconclusive"
    abs_verdict: str = "within intervals"
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

    @property
    def exit_code(self) -> int:
        return 1 if self.gate else 0


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


def compare_row(key: Key, a: dict, b: dict, noise_pct: float) -> RowChange:
    """One row of A against B: the speedup change with its interval, and the absolute times."""
    rc = RowChange(key, a, b, _ratio(a), _ratio(b), noise_pct=noise_pct)
    if rc.speedup_a and rc.speedup_b:
        sa, sb = rc.speedup_a, rc.speedup_b
        rc.change = (sb["median"] / sa["median"], sb["low"] / sa["high"], sb["high"] / sa["low"])
        med, lo, hi = rc.change
        band = noise_pct / 100.0
        if not (sa.get("conclusive") and sb.get("conclusive")):
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
            if not sp.get("conclusive"):
                rc.notes.append(f"{side}: {sp.get('verdict')} ({'; '.join(sp.get('why') or [])})")
    elif key[3] == "eager":
        rc.verdict = "base"
    else:
        rc.verdict = "no speedup data"
    alo, ahi, blo, bhi = (a.get("ci_low_ms"), a.get("ci_high_ms"), b.get("ci_low_ms"), b.get("ci_high_ms"))
    if None not in (alo, ahi, blo, bhi):
        if bhi < alo or blo > ahi:
            rc.abs_verdict = "B slower" if blo > ahi else "B faster"
        else:
            rc.abs_verdict = "intervals overlap"
    else:
        rc.abs_verdict = "no intervals"
    return rc


def compare(a_runs: list[BenchRun], b_runs: list[BenchRun], *, threshold_pct: float = 10.0,
            gate_modes: tuple[str, ...] = ()) -> Comparison:
    """Compare the newest run of A with the newest of B; the others give the run-to-run spread."""
    a, b = a_runs[0], b_runs[0]
    spread = run_spread(a_runs)
    spread_b = run_spread(b_runs)
    if spread or spread_b:
        values = [v.get("speedup_pct", 0.0) for s in (spread, spread_b) for v in s.values()]
        spread_note = (f"run-to-run spread of one image (speedup medians, {len(a_runs)} runs of A, "
                       f"{len(b_runs)} of B): up to {max(values):.1f}%, median "
                       f"{sorted(values)[len(values) // 2]:.1f}%")
    else:
        spread_note = (f"run-to-run spread unknown (one run each): {SPREAD_FLOOR_PCT:.0f}% assumed; "
                       f"record a second run of an image to measure it")
    rows = []
    ra, rb = a.rows, b.rows
    for key in sorted(set(ra) & set(rb), key=lambda k: (k[0], k[1], k[2], k[3] != "eager", k[3])):
        noise = max([SPREAD_FLOOR_PCT if not (spread or spread_b) else 0.0]
                    + [s.get(key, {}).get("speedup_pct", 0.0) for s in (spread, spread_b)])
        rc = compare_row(key, ra[key], rb[key], noise)
        for side, run, row in (("A", a, ra[key]), ("B", b, rb[key])):
            state = _state_line(run, row)
            if state and rc.abs_verdict.startswith("B "):
                rc.notes.append(f"{side} state: {state}")
        rows.append(rc)
    gate = [r for r in rows if r.key[3] in gate_modes and r.verdict == "slower"
            and r.change and r.change[0] < 1.0 - threshold_pct / 100.0]
    return Comparison(a.label, b.label, a.where, b.where, spread_note, rows, gate, threshold_pct)


def comparison_dict(c: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (``--json``)."""
    return {"a": c.a_label, "b": c.b_label, "a_where": c.a_where, "b_where": c.b_where,
            "spread": c.spread_note, "threshold_pct": c.threshold_pct,
            "regressions": [list(r.key) for r in c.gate],
            "rows": [{"model": r.key[0], "dtype": r.key[1], "batch": r.key[2], "mode": r.key[3],
                      "a_ms": [r.a.get("median_ms"), r.a.get("ci_low_ms"), r.a.get("ci_high_ms")],
                      "b_ms": [r.b.get("median_ms"), r.b.get("ci_low_ms"), r.b.get("ci_high_ms")],
                      "a_speedup": r.speedup_a, "b_speedup": r.speedup_b,
                      "change": list(r.change) if r.change else None, "noise_pct": r.noise_pct,
                      "verdict": r.verdict, "abs_verdict": r.abs_verdict, "notes": r.notes}
                     for r in c.rows]}
