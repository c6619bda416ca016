"""Benchmark runs: probe documents from JSON files, the records database, or a probe run now.

A *run* is one smoke-probe document (``envctl verify``/``envctl smoke`` record it whole in the
records database, or it is a JSON file); every document is checked where it is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envctl.errors import DamagedDocumentError, DamagedRecordsError, UsageError
from envctl.fsio import read_document

Key = tuple  # (model, dtype, batch, mode)


@dataclass(frozen=True)
class BenchRun:
    label: str
    document: dict[str, Any]
    record_id: int | None = None
    # What a record holds beside the document (a JSON file has only the document): the spec
    # name, the image id or prefix that ran, and when the run began (epoch seconds).
    image: str | None = None
    image_id: str | None = None
    started: float | None = None

    @property
    def rows(self) -> dict[Key, dict]:
        return {(r["model"], r["dtype"], r["batch"], r["mode"]): r
                for r in self.document.get("benchmarks") or [] if r.get("status") == "ok"}

    @property
    def failed_rows(self) -> dict[Key, dict]:
        """Rows the probe ran and that failed (an error building or running the mode)."""
        return {(r.get("model"), r.get("dtype"), r.get("batch"), r.get("mode")): r
                for r in self.document.get("benchmarks") or [] if r.get("status") not in (None, "ok")}

    @property
    def gpu(self) -> str | None:
        gpus = (self.document.get("env") or {}).get("gpus") or []
        return ", ".join(sorted({g.get("name", "?") for g in gpus})) or None

    @property
    def where(self) -> str:
        torch = ((self.document.get("env") or {}).get("torch") or {}).get("version")
        return f"{self.document.get('device')} ({self.gpu or 'cpu'}), torch {torch}, level {self.document.get('level')}"

    @property
    def made(self) -> float | None:
        """When the run was made: its record's start, else the probe's first machine sample."""
        before = (self.document.get("machine") or {}).get("before") or {}
        return self.started if self.started is not None else before.get("t")

    def group_state(self, row: dict) -> dict | None:
        groups = (self.document.get("machine") or {}).get("groups") or []
        gi = row.get("group")
        return groups[gi] if isinstance(gi, int) and 0 <= gi < len(groups) else None


_NUMBER = (int, float)
_KIND = {dict: "a JSON object", list: "a list", str: "a string", int: "an integer"}
_HINT = "give a probe document written by envctl verify --json or envctl smoke --json"


def check_document(doc: Any, where: str) -> dict[str, Any]:
    """The probe document as the comparison and its renderers read it, or one DamagedDocumentError
    naming ``where`` and the key: a JSON list, env.torch a string, a row whose batch is text."""
    def need(value: Any, kinds: tuple[type, ...], key: str, *, required: bool = False, positive: bool = False):
        ok = (value is None and not required) or (
            isinstance(value, kinds) and not isinstance(value, bool) and not (positive and not value > 0))
        if not ok:
            what = ("a positive number" if positive else "a number") if kinds == _NUMBER else _KIND[kinds[0]]
            raise DamagedDocumentError(f"{where}: {key} is {value!r}, not {what}", hint=_HINT)
        return value if value is not None else kinds[0]()

    need(doc, (dict,), "the document", required=True)
    need(doc.get("device"), (str,), "device")
    image = need(doc.get("image"), (dict,), "image")
    for field_ in ("name", "id"):
        need(image.get(field_), (str,), f"image.{field_}")
    env = need(doc.get("env"), (dict,), "env")
    torch = need(env.get("torch"), (dict,), "env.torch")
    for field_ in ("version", "cuda"):
        need(torch.get(field_), (str,), f"env.torch.{field_}")
    need(env.get("driver_version"), (str,), "env.driver_version")
    for i, gpu in enumerate(need(env.get("gpus"), (list,), "env.gpus")):
        need(need(gpu, (dict,), f"env.gpus[{i}]", required=True).get("name"), (str,), f"env.gpus[{i}].name")
    machine = need(doc.get("machine"), (dict,), "machine")
    need(machine.get("other_cpu_cores"), _NUMBER, "machine.other_cpu_cores")
    need(machine.get("cores"), (int,), "machine.cores")
    for side in ("before", "after"):  # the host's state around the whole run, and when it began
        sample = need(machine.get(side), (dict,), f"machine.{side}")
        need(sample.get("t"), _NUMBER, f"machine.{side}.t", positive=True)
        need(sample.get("loadavg_1m"), _NUMBER, f"machine.{side}.loadavg_1m")
        need(need(sample.get("host"), (dict,), f"machine.{side}.host").get("torch_op_us"), _NUMBER,
             f"machine.{side}.host.torch_op_us", positive=True)
    for i, group in enumerate(need(machine.get("groups"), (list,), "machine.groups")):
        key = f"machine.groups[{i}]"
        window = need(need(group, (dict,), key, required=True).get("window"), (dict,), f"{key}.window")
        need(need(window.get("after"), (dict,), f"{key}.window.after").get("gpu"), (dict,), f"{key}.window.after.gpu")
        need(window.get("other_cpu_cores"), _NUMBER, f"{key}.window.other_cpu_cores")
        need(window.get("cores"), (int,), f"{key}.window.cores")
        for j, note in enumerate(need(group.get("notes"), (list,), f"{key}.notes")):
            need(note, (str,), f"{key}.notes[{j}]", required=True)
        host = need(need(group.get("timing"), (dict,), f"{key}.timing").get("host_us"), (dict,), f"{key}.timing.host_us")
        need(host.get("median"), _NUMBER, f"{key}.timing.host_us.median")
    for i, row in enumerate(need(doc.get("benchmarks"), (list,), "benchmarks")):
        key = f"benchmarks[{i}]"
        need(row, (dict,), key, required=True)
        for field_, kinds in (("model", (str,)), ("dtype", (str,)), ("batch", (int,)), ("mode", (str,))):
            need(row.get(field_), kinds, f"{key}.{field_}", required=row.get("status") == "ok")
        for field_ in ("median_ms", "ci_low_ms", "ci_high_ms"):
            need(row.get(field_), _NUMBER, f"{key}.{field_}", required=row.get("ci_low_ms") is not None,
                 positive=True)
        for field_ in ("compile_s", "warm_compile_s"):
            need(row.get(field_), _NUMBER, f"{key}.{field_}")
        need(row.get("group"), (int,), f"{key}.group")
        need(row.get("host_share"), _NUMBER, f"{key}.host_share", required=row.get("host_bound") is True)
        if row.get("host_bound") not in (None, True, False):
            raise DamagedDocumentError(f"{where}: {key}.host_bound is {row['host_bound']!r}, not true or false",
                                       hint=_HINT)
        speedup = need(row.get("speedup"), (dict,), f"{key}.speedup")
        for field_ in ("median", "low", "high"):
            need(speedup.get(field_), _NUMBER, f"{key}.speedup.{field_}", required=bool(speedup), positive=True)
        need(speedup.get("verdict"), (str,), f"{key}.speedup.verdict")
        hd = need(speedup.get("host_dependent"), (dict,), f"{key}.speedup.host_dependent")
        for field_ in ("fast_host", "slow_host", "fast_host_us", "slow_host_us"):
            need(hd.get(field_), _NUMBER, f"{key}.speedup.host_dependent.{field_}", required=bool(hd))
        for j, why in enumerate(need(speedup.get("why"), (list,), f"{key}.speedup.why")):
            need(why, (str,), f"{key}.speedup.why[{j}]", required=True)
    return doc


def _stored(row, where: str) -> dict[str, Any]:
    """A run's document as the records database holds it: JSON that envctl wrote, checked."""
    try:
        doc = json.loads(row["document"])
    except (ValueError, RecursionError) as exc:
        raise DamagedRecordsError(f"{where}: the stored probe document is not JSON ({exc})",
                                  hint="the records database was altered; envctl history lists the runs") from None
    return check_document(doc, where)


def _run_of(row, doc: dict[str, Any]) -> BenchRun:
    return BenchRun(f"{row['image']} #{row['id']}", doc, int(row["id"]), image=row["image"],
                    image_id=row["image_id"], started=row["started"])


def _from_record(rec_id: int, records) -> BenchRun:
    rows = list(records.execute("SELECT id, image, image_id, started, document FROM runs WHERE id = ?", (rec_id,)))
    if not rows or not rows[0]["document"]:
        raise UsageError(f"no recorded run #{rec_id} with a probe document", hint="see: envctl history")
    return _run_of(rows[0], _stored(rows[0], f"record #{rows[0]['id']}"))


def load_runs(ref: str, *, records=None, count: int = 2) -> list[BenchRun]:
    """Runs named by ``ref``: a JSON file, ``#ID`` (a record), or an image name (its newest
    ``count`` recorded verify/smoke/bench runs with benchmarks, newest first)."""
    path = Path(ref)
    if ref.endswith(".json") or path.is_file():
        try:
            doc = json.loads(read_document(path))
        except RecursionError:  # arrays nested past the parser's depth: no probe wrote that
            raise UsageError(f"{ref}: not a readable probe JSON document (nested too deep)") from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise UsageError(f"{ref}: not a readable probe JSON document ({reason})") from None
        image = check_document(doc, ref).get("image") or {}  # envctl verify names it in the document
        return [BenchRun(path.name, doc, image=image.get("name"), image_id=image.get("id"))]
    if records is None:
        from envctl.records import Records

        records = Records()
    if ref.lstrip("#").isdigit():
        return [_from_record(int(ref.lstrip("#")), records)]
    found = []
    for row in records.execute("SELECT id, image, image_id, started, document FROM runs WHERE image = ? AND kind IN"
                               " ('verify','smoke','bench') AND document IS NOT NULL ORDER BY started DESC, id DESC",
                               (ref,)):
        doc = _stored(row, f"record #{row['id']}")
        if doc.get("benchmarks"):
            found.append(_run_of(row, doc))
        if len(found) == count:
            break
    if not found:
        raise UsageError(f"no recorded benchmark run of {ref}",
                          hint=f"run: envctl verify {ref} (or name a probe JSON file or #ID)")
    return found


def measure_image(name: str, *, level: str, gpus: str, executor=None) -> BenchRun:
    """Run the probe in the built image of ``name`` now (where ``executor`` runs it), record it
    (kind "bench"), return the run."""
    from envctl.catalog import find_project
    from envctl.verify import verify_image

    v = verify_image(find_project(), name, executor=executor, gpus=gpus, level=level)
    rec = v.record(kind="bench", summary=f"{len(v.report.benchmarks)} benchmark rows")
    return BenchRun(f"{v.spec.name} #{rec}", v.report.document, rec, image=v.spec.name, image_id=v.image_id,
                    started=v.started)


def check_repeat(repeat: int) -> int:
    """Runs per image: 0 or fewer would compare nothing (it was silently taken as 1)."""
    if repeat < 1:
        raise UsageError(f"--repeat {repeat}: give the runs per image, 1 or more (2+ measures the spread)")
    return repeat
