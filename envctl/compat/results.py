"""Compat outcomes: what one artifact did under one target, runtime and device, on this machine or
a fleet target; kept in the records database, shown as a matrix of artifacts x (target, fleet
target, runtime, device), and compared by the upgrade gate."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from envctl.artifacts import Artifact
from envctl.compat.targets import Target, column
from envctl.records import Records, read_where

STATUSES = ("ok", "load-error", "run-error", "mismatch", "crash", "timeout", "unsupported")


@dataclass(frozen=True)
class Outcome:
    artifact: Artifact
    target: Target
    status: str
    detail: str  # the one line that says what went wrong (or what went right)
    seconds: float | None = None
    runtime: str = "python"
    device: str = "cpu"
    message: str = ""  # the whole error message ("" when detail says it all)
    on: str | None = None  # the fleet target (fleet.yaml) it ran on; None for this machine
    where: dict[str, Any] = field(default_factory=dict)  # executor, node, job id, ... of a fleet run

    @property
    def column(self) -> str:
        return column(self.target.label, self.runtime, self.device, self.on)

    def to_dict(self) -> dict:
        return {"artifact": self.artifact.name, "target": self.target.label, "image_id": self.target.key,
                "runtime": self.runtime, "device": self.device, "status": self.status, "detail": self.detail,
                "message": self.message or self.detail, "seconds": self.seconds, "on": self.on,
                "where": self.where or None}


def record(records: Records, outcomes: list[Outcome]) -> None:
    """All outcomes in one transaction; when the database refuses, they are saved to a file it names."""
    now = time.time()
    sql = ("INSERT OR REPLACE INTO compat (artifact_sha256, image, image_id, runtime, device, status, detail, "
           'message, checked, target, "where") VALUES (?,?,?,?,?,?,?,?,?,?,?)')
    rows = [(o.artifact.sha256, o.target.label, o.target.key, o.runtime, o.device, o.status, o.detail,
             o.message or o.detail, now, o.on or "", json.dumps(o.where, sort_keys=True) if o.where else None)
            for o in outcomes]
    records.write_many([(sql, r) for r in rows], what=f"{len(rows)} compat results", payload=[
        o.to_dict() | {"sha256": o.artifact.sha256, "checked": now} for o in outcomes])


def matrix(records: Records) -> dict:
    """Artifacts x columns (target, fleet target, runtime, device), the newest result of each."""
    rows = list(records.execute(
        "SELECT a.name, c.image, c.image_id, c.runtime, c.device, c.status, c.detail, c.message, c.checked, "
        'c.target, c."where" FROM compat c JOIN artifacts a ON a.sha256 = c.artifact_sha256 ORDER BY c.checked'))
    columns: dict[str, dict] = {}
    cells: dict[str, dict[str, dict]] = {}
    for r in rows:
        on = r["target"] or None
        name = column(r["image"], r["runtime"], r["device"], on)
        columns.setdefault(name, {"name": name, "target": r["image"], "on": on, "runtime": r["runtime"],
                                  "device": r["device"]})
        cells.setdefault(r["name"], {})[name] = {"status": r["status"], "detail": r["detail"],
                                                 "message": r["message"] or r["detail"], "image_id": r["image_id"],
                                                 "runtime": r["runtime"], "device": r["device"], "on": on,
                                                 "where": read_where(r["where"])}
    # this machine's column first, then each fleet target's; python and libtorch of one target side by side
    order = sorted(columns, key=lambda n: (columns[n]["target"], columns[n]["on"] or "", columns[n]["device"],
                                           columns[n]["runtime"]))
    return {"targets": order, "columns": [columns[n] for n in order], "artifacts": sorted(cells), "cells": cells}


def regressions(before: list[Outcome], after: list[Outcome]) -> list[tuple[Outcome, Outcome]]:
    """Every artifact that is ok under the first target and not ok under the second."""
    after_by = {o.artifact.sha256: o for o in after}
    return [(b, after_by[b.artifact.sha256]) for b in before
            if b.status == "ok" and b.artifact.sha256 in after_by and after_by[b.artifact.sha256].status != "ok"]
