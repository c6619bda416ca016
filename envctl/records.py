"""The records database: every build, verification, setup and compat result.

An embedded SQLite file (``$ENVCTL_RECORDS`` or ``records.db`` in the user's
data dir).  Plain SQL, one schema version table, JSON documents stored whole
so later questions can be asked of old runs.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from envctl.errors import RecordsError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,              -- build | verify | smoke | setup
    image TEXT NOT NULL,             -- spec name
    image_id TEXT,                   -- docker image id, or the prefix path for setup/smoke
    spec_hash TEXT,
    lock_hash TEXT,
    host TEXT NOT NULL,
    gpu TEXT,
    driver TEXT,
    ok INTEGER NOT NULL,
    summary TEXT,
    started REAL NOT NULL,
    duration_s REAL,
    document TEXT                    -- full JSON (probe output, build report)
);
CREATE INDEX IF NOT EXISTS runs_image ON runs(image, kind, started);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,              -- torchscript | export
    size INTEGER NOT NULL,
    info TEXT NOT NULL,              -- JSON: versions read from the archive, inputs
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS compat (
    artifact_sha256 TEXT NOT NULL,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    status TEXT NOT NULL,            -- ok | load-error | run-error | mismatch | crash | timeout
    detail TEXT,
    checked REAL NOT NULL,
    PRIMARY KEY (artifact_sha256, image_id)
);
"""


def default_path() -> Path:
    env = os.environ.get("ENVCTL_RECORDS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("envctl")) / "records.db"


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    image: str
    image_id: str | None
    spec_hash: str | None
    lock_hash: str | None
    host: str
    gpu: str | None
    driver: str | None
    ok: bool
    summary: str | None
    started: float
    duration_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Records:
    """Open (and create) the database; short transactions, no long-held locks."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db, db:
                db.executescript(_SCHEMA)
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise RecordsError(f"{self.path}: records schema {row[0]} is newer than this envctl "
                                       f"understands ({SCHEMA_VERSION})", hint="upgrade envctl")
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"{self.path}: cannot open the records database: {exc}",
                               hint="set ENVCTL_RECORDS to another file, or move the damaged one away") from None
        except OSError as exc:
            raise RecordsError(f"{self.path}: {exc.strerror}",
                               hint="set ENVCTL_RECORDS to a writable path") from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        return db

    def add_run(self, *, kind: str, image: str, ok: bool, image_id: str | None = None,
                spec_hash: str | None = None, lock_hash: str | None = None, gpu: str | None = None,
                driver: str | None = None, summary: str | None = None, started: float | None = None,
                duration_s: float | None = None, document: Any = None) -> int:
        with closing(self._connect()) as db, db:
            cur = db.execute(
                "INSERT INTO runs (kind, image, image_id, spec_hash, lock_hash, host, gpu, driver, ok,"
                " summary, started, duration_s, document) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (kind, image, image_id, spec_hash, lock_hash, socket.gethostname(), gpu, driver, int(ok),
                 summary, started if started is not None else time.time(), duration_s,
                 json.dumps(document, sort_keys=True) if document is not None else None))
            return int(cur.lastrowid)

    def runs(self, image: str | None = None, kind: str | None = None, limit: int = 50) -> list[Run]:
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if image:
            query += " AND image = ?"
            args.append(image)
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        query += " ORDER BY started DESC, id DESC LIMIT ?"
        args.append(limit)
        with closing(self._connect()) as db:
            return [_run(row) for row in db.execute(query, args)]

    def latest(self) -> dict[tuple[str, str], Run]:
        """The newest run per (image, kind)."""
        out: dict[tuple[str, str], Run] = {}
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM runs r WHERE id = (SELECT id FROM runs s WHERE s.image = r.image"
                              " AND s.kind = r.kind ORDER BY started DESC, id DESC LIMIT 1)")
            for row in rows:
                run = _run(row)
                out[(run.image, run.kind)] = run
        return out

    def execute(self, sql: str, args: tuple = ()) -> Iterator[sqlite3.Row]:
        """A read query for the modules that own the other tables (compat, artifacts)."""
        with closing(self._connect()) as db:
            yield from db.execute(sql, args).fetchall()

    def write(self, sql: str, args: tuple = ()) -> None:
        with closing(self._connect()) as db, db:
            db.execute(sql, args)


def _run(row: sqlite3.Row) -> Run:
    return Run(id=row["id"], kind=row["kind"], image=row["image"], image_id=row["image_id"],
               spec_hash=row["spec_hash"], lock_hash=row["lock_hash"], host=row["host"], gpu=row["gpu"],
               driver=row["driver"], ok=bool(row["ok"]), summary=row["summary"], started=row["started"],
               duration_s=row["duration_s"])
