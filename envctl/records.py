"""The records database: every build, verification, setup and compat result.

An embedded SQLite file (``$ENVCTL_RECORDS`` or ``records.db`` in the user's
data dir).  Plain SQL, one schema version table, JSON documents stored whole
so later questions can be asked of old runs.

Several envctl processes share one database (WAL journal).  A write that finds
the database locked is retried with backoff for ``$ENVCTL_RECORDS_WAIT``
seconds (30); a write that still fails (locked, damaged, read-only) saves what
it would have written to a JSON file and names that file in its error, so
finished work is never lost to the database.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import tempfile
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from envctl.errors import DamagedRecordsError, RecordsError
from envctl.records_schema import SCHEMA, SCHEMA_VERSION, migrate

def default_path() -> Path:
    env = os.environ.get("ENVCTL_RECORDS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("envctl")) / "records.db"


@dataclass(frozen=True)
class Run:
    """One recorded build, verify, smoke, bench or setup run."""

    id: int
    kind: str
    image: str
    image_id: str | None  # what ran: a Docker image id, or the prefix or interpreter path of setup and smoke
    spec_hash: str | None
    lock_hash: str | None
    host: str
    gpu: str | None
    driver: str | None
    ok: bool
    summary: str | None
    started: float  # when the run began (epoch seconds), for every kind alike
    duration_s: float | None
    target: str | None = None  # the fleet target (fleet.yaml) it ran on; None: the local engine
    where: dict[str, Any] | None = None  # executor, node, gpu, driver, runtime, job id

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_HINT = "set ENVCTL_RECORDS to another file, or move the damaged or read-only one away"


def _busy(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


class Records:
    """Open (and create) the database; short transactions, no long-held locks."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self._uri: str | None = None  # the read-only URI of a database this process cannot write

        def create() -> None:
            with closing(self._connect()) as db, db:
                row = None
                try:
                    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                except sqlite3.OperationalError as exc:
                    if "no such table" not in str(exc):
                        raise
                if row is not None and not (str(row[0]).isascii() and str(row[0]).isdigit()):
                    raise DamagedRecordsError(f"{self.path}: meta.schema is {row[0]!r}, not a schema number",
                                              hint="the database was not written by envctl; set ENVCTL_RECORDS "
                                                   "to another path, or move this one away")
                if row is None:
                    db.executescript(SCHEMA)
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise RecordsError(f"{self.path}: records schema {row[0]} is newer than this envctl "
                                       f"understands ({SCHEMA_VERSION})", hint="upgrade envctl")
                elif int(row[0]) < SCHEMA_VERSION:
                    migrate(db, int(row[0]))
            try:  # several envctl processes at once: readers never wait for a writer
                with closing(self._connect()) as db:
                    db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError:
                pass  # a read-only database keeps its journal mode; reads still work

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._retrying(create)
        except sqlite3.DatabaseError as exc:
            if not self._open_read_only():
                raise RecordsError(f"{self.path}: cannot open the records database: {exc}", hint=_HINT) from None
        except OSError as exc:
            raise RecordsError(f"{self.path}: {exc.strerror}",
                               hint="set ENVCTL_RECORDS to a writable path") from None

    def _open_read_only(self) -> bool:
        """Whether a database this process may not write (a read-only mount, a file's mode) opens
        for reading: history and the matrices are read commands, and a write still fails in one
        line with its result saved to a file.  SQLite reads a WAL database read-only only where
        it can make the -shm file beside it; where it cannot, the file is opened immutable
        (on a read-only mount nothing changes it anyway)."""
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        if writable or not self.path.is_file():
            return False
        from urllib.parse import quote

        for flags in ("mode=ro", "immutable=1"):
            self._uri = f"file:{quote(str(self.path))}?{flags}"
            try:
                with closing(self._connect()) as db:
                    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is not None and int(row[0]) == SCHEMA_VERSION:  # an old schema needs a writable migration
                    return True
            except sqlite3.DatabaseError:
                continue
        self._uri = None
        return False

    def _connect(self) -> sqlite3.Connection:
        if self._uri is not None:
            db = sqlite3.connect(self._uri, timeout=1, uri=True)
        else:
            db = sqlite3.connect(self.path, timeout=1)
        db.row_factory = sqlite3.Row
        return db

    @staticmethod
    def _retrying(fn):
        """``fn()``, retried with backoff while another process holds the database."""
        try:
            wait = max(0.0, float(os.environ.get("ENVCTL_RECORDS_WAIT", "30")))
        except ValueError:
            wait = 30.0
        deadline, delay = time.monotonic() + wait, 0.1
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if not _busy(exc) or left <= 0:
                    raise
                time.sleep(min(delay, left))
                delay = min(delay * 2, 2.0)

    @contextmanager
    def _reading(self):
        try:
            with closing(self._connect()) as db:
                yield db
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"{self.path}: cannot read the records database: {exc}", hint=_HINT) from None

    def _writing(self, what: str, statements: list[tuple[str, tuple]], payload: Any) -> int | None:
        """Run ``statements`` in one transaction; on failure save ``payload`` and say where."""
        def run() -> int | None:
            with closing(self._connect()) as db, db:
                last = None
                for sql, args in statements:
                    last = db.execute(sql, args).lastrowid
                return last

        try:
            return self._retrying(run)
        except (sqlite3.DatabaseError, OSError) as exc:
            saved = save_unsaved(self.path, what, payload)
            where = f"saved to {saved}" if saved else "and it could not be saved to a file either"
            raise RecordsError(f"{self.path}: cannot record {what} ({exc}); the result is {where}",
                               hint=_HINT) from None

    def add_run(self, *, kind: str, image: str, ok: bool, started: float, image_id: str | None = None,
                spec_hash: str | None = None, lock_hash: str | None = None, gpu: str | None = None,
                driver: str | None = None, summary: str | None = None, duration_s: float | None = None,
                document: Any = None, target: str | None = None, where: dict[str, Any] | None = None) -> int:
        """Add a run.  ``started`` is required: every kind is listed by when it began (a default of
        "now" once made builds read as their finish time beside verifications' start).  ``host`` is
        the machine that recorded it; ``where``, the executor's account of where it ran."""
        row = (kind, image, image_id, spec_hash, lock_hash, socket.gethostname(), gpu, driver, int(ok), summary, started,
               duration_s, target, json.dumps(where, sort_keys=True) if where else None,
               json.dumps(document, sort_keys=True) if document is not None else None)
        sql = ("INSERT INTO runs (kind, image, image_id, spec_hash, lock_hash, host, gpu, driver, ok,"
               ' summary, started, duration_s, target, "where", document) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)')
        payload = {"table": "runs", "row": dict(zip(
            ("kind", "image", "image_id", "spec_hash", "lock_hash", "host", "gpu", "driver", "ok", "summary",
             "started", "duration_s", "target", "where"), row[:-1]), document=document)}
        return int(self._writing(f"the {kind} run of {image}", [(sql, row)], payload) or 0)

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
        with self._reading() as db:
            return [run_from_row(row) for row in db.execute(query, args)]

    def latest(self) -> dict[tuple[str, str], Run]:
        """The newest run per (image, kind)."""
        out: dict[tuple[str, str], Run] = {}
        with self._reading() as db:
            rows = db.execute("SELECT * FROM runs r WHERE id = (SELECT id FROM runs s WHERE s.image = r.image"
                              " AND s.kind = r.kind ORDER BY started DESC, id DESC LIMIT 1)")
            for row in rows:
                run = run_from_row(row)
                out[(run.image, run.kind)] = run
        return out

    def add_push(self, *, image: str, ref: str, registry: str, image_id: str, lock_hash: str) -> None:
        """Record that ``image`` (built as ``image_id`` from ``lock_hash``) is in ``registry`` as ``ref``."""
        row = (image, ref, registry, image_id, lock_hash, time.time())
        self.write("INSERT INTO pushes (image, ref, registry, image_id, lock_hash, pushed) VALUES (?,?,?,?,?,?)", row,
                   what=f"the push of {image}", payload={"table": "pushes", "row": row})

    def last_push(self, image: str, *, registry: str | None = None) -> dict[str, Any] | None:
        """The newest recorded push of ``image`` (to ``registry`` when given): ref, registry, image_id,
        lock_hash, pushed; None when it was never pushed."""
        query, args = "SELECT * FROM pushes WHERE image = ?", [image]
        if registry is not None:
            query += " AND registry = ?"
            args.append(registry)
        with self._reading() as db:
            row = db.execute(query + " ORDER BY pushed DESC, id DESC LIMIT 1", args).fetchone()
        if row is None:
            return None
        return {key: row[key] for key in ("ref", "registry", "image_id", "lock_hash", "pushed")}

    def last_pushes(self) -> dict[str, dict[str, Any]]:
        """The newest push of every image that was pushed (image name -> as ``last_push``)."""
        with self._reading() as db:
            rows = db.execute("SELECT * FROM pushes p WHERE id = (SELECT id FROM pushes q WHERE q.image = p.image"
                              " ORDER BY pushed DESC, id DESC LIMIT 1)").fetchall()
        return {row["image"]: {key: row[key] for key in ("ref", "registry", "image_id", "lock_hash", "pushed")}
                for row in rows}

    def execute(self, sql: str, args: tuple = ()) -> Iterator[sqlite3.Row]:
        """A read query for the modules that own the other tables (compat, artifacts)."""
        with self._reading() as db:
            rows = db.execute(sql, args).fetchall()
        yield from rows

    def write(self, sql: str, args: tuple = (), *, what: str = "the change", payload: Any = None) -> None:
        self.write_many([(sql, args)], what=what, payload=payload)

    def write_many(self, statements: list[tuple[str, tuple]], *, what: str = "the change",
                   payload: Any = None) -> None:
        """Several statements in one transaction (all or none)."""
        self._writing(what, statements, payload if payload is not None else
                      [{"sql": sql, "args": list(args)} for sql, args in statements])


def record_run(**fields: Any) -> int:
    """Open the database and add a run; when even opening fails, the run goes to a file named in the error."""
    try:
        records = Records()
    except RecordsError as exc:
        saved = save_unsaved(default_path(), f"the {fields.get('kind')} run of {fields.get('image')}", fields)
        where = f"saved to {saved}" if saved else "and it could not be saved to a file either"
        raise RecordsError(f"{exc.message}; the result is {where}", hint=exc.hint) from None
    return records.add_run(**fields)


def save_unsaved(db_path: Path, what: str, payload: Any) -> Path | None:
    """Write ``payload`` to a JSON file beside the database (else in the temp folder); its path."""
    name = f"envctl-unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    text = json.dumps({"what": what, "database": str(db_path), "saved": time.time(), "data": payload},
                      indent=1, sort_keys=True, default=str)
    for folder in (db_path.parent, Path(tempfile.gettempdir())):
        target = folder / name
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, target)
            return target
        except OSError:
            continue
    return None


def run_from_row(row: sqlite3.Row) -> Run:
    """A ``runs`` row as a Run (for the modules that query the table themselves); a row whose
    times are not times (the database was edited) is one DamagedRecordsError naming it."""
    started, duration = row["started"], row["duration_s"]
    if not (isinstance(started, (int, float)) and 0 <= started < 4e9) or not (
            duration is None or (isinstance(duration, (int, float)) and 0 <= duration < 1e9)):
        raise DamagedRecordsError(f"run #{row['id']} in the records database has started={started!r}, "
                                  f"duration_s={duration!r}: not times",
                                  hint="the records database was altered; delete that row or the database")
    return Run(id=row["id"], kind=row["kind"], image=row["image"], image_id=row["image_id"],
               spec_hash=row["spec_hash"], lock_hash=row["lock_hash"], host=row["host"], gpu=row["gpu"],
               driver=row["driver"], ok=bool(row["ok"]), summary=row["summary"], started=started,
               duration_s=duration, target=row["target"], where=read_where(row["where"]))


def read_where(text: str | None) -> dict[str, Any] | None:
    """A ``where`` column (of a run or a compat result); a value no envctl wrote reads as unknown
    rather than failing history or the compat matrix."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
