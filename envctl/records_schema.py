"""The records database's schema and the steps that bring an older database to it.

Plain SQL: ``SCHEMA`` creates every table of the current version (``IF NOT EXISTS``), and
``migrate`` runs one script per version step, each in its own transaction. A new column or table
adds a step here and bumps ``SCHEMA_VERSION``; tests/test_records.py holds a database of each old
version to it.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,              -- build | verify | smoke | bench | setup | matrix (a sweep's cell)
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
    document TEXT,                   -- full JSON (probe output, build report)
    target TEXT,                     -- the fleet target it ran on (fleet.yaml), NULL for the local engine
    "where" TEXT                     -- JSON: executor, node, gpu, driver, runtime, job id
);
CREATE INDEX IF NOT EXISTS runs_image ON runs(image, kind, started);
CREATE TABLE IF NOT EXISTS pushes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image TEXT NOT NULL,             -- spec name
    ref TEXT NOT NULL,               -- HOST/PREFIX/NAME@sha256:... (by digest)
    registry TEXT NOT NULL,          -- HOST[:PORT][/PREFIX] as given
    image_id TEXT NOT NULL,          -- the local image pushed
    lock_hash TEXT NOT NULL,
    pushed REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pushes_image ON pushes(image, pushed);
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
    runtime TEXT NOT NULL DEFAULT 'python',  -- python | libtorch
    device TEXT NOT NULL DEFAULT 'cpu',      -- cpu | cuda: where it ran
    status TEXT NOT NULL,            -- ok | load-error | run-error | mismatch | crash | timeout | unsupported
    detail TEXT,                     -- the one line that says what went wrong
    message TEXT,                    -- the whole message
    checked REAL NOT NULL,
    target TEXT NOT NULL DEFAULT '', -- the fleet target it ran on (fleet.yaml); '' for this machine
    "where" TEXT,                    -- JSON: executor, node, gpu, driver, runtime, job id
    PRIMARY KEY (artifact_sha256, image_id, runtime, device, target)
);
"""
# Schema 1 -> 2: compat results gain the runtime and device (schema 1 ran everything from Python on
# the CPU) and the whole message; the key gains them too, so the table is rebuilt.
_MIGRATE_1_2 = """
ALTER TABLE compat RENAME TO compat_v1;
CREATE TABLE compat (
    artifact_sha256 TEXT NOT NULL, image TEXT NOT NULL, image_id TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT 'python', device TEXT NOT NULL DEFAULT 'cpu', status TEXT NOT NULL,
    detail TEXT, message TEXT, checked REAL NOT NULL,
    PRIMARY KEY (artifact_sha256, image_id, runtime, device)
);
INSERT INTO compat (artifact_sha256, image, image_id, status, detail, message, checked)
    SELECT artifact_sha256, image, image_id, status, detail, detail, checked FROM compat_v1;
DROP TABLE compat_v1;
UPDATE meta SET value = '2' WHERE key = 'schema';
"""
# Schema 2 -> 3: runs gain the fleet target and where they ran; the pushes table comes from SCHEMA.
_MIGRATE_2_3 = """
ALTER TABLE runs ADD COLUMN target TEXT;
ALTER TABLE runs ADD COLUMN "where" TEXT;
UPDATE meta SET value = '3' WHERE key = 'schema';
"""
# Schema 3 -> 4: compat results gain the fleet target and where they ran; one image by digest on two
# targets is two results, so the target joins the key ('' for this machine: a key holds no NULL).
_MIGRATE_3_4 = """
ALTER TABLE compat RENAME TO compat_v3;
CREATE TABLE compat (
    artifact_sha256 TEXT NOT NULL, image TEXT NOT NULL, image_id TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT 'python', device TEXT NOT NULL DEFAULT 'cpu', status TEXT NOT NULL,
    detail TEXT, message TEXT, checked REAL NOT NULL, target TEXT NOT NULL DEFAULT '', "where" TEXT,
    PRIMARY KEY (artifact_sha256, image_id, runtime, device, target)
);
INSERT INTO compat (artifact_sha256, image, image_id, runtime, device, status, detail, message, checked)
    SELECT artifact_sha256, image, image_id, runtime, device, status, detail, message, checked FROM compat_v3;
DROP TABLE compat_v3;
UPDATE meta SET value = '4' WHERE key = 'schema';
"""


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a database of schema ``version`` to SCHEMA_VERSION, one step per transaction."""
    for step in range(version, SCHEMA_VERSION):
        script = {1: _MIGRATE_1_2, 2: _MIGRATE_2_3, 3: _MIGRATE_3_4}[step]
        table = {2: "runs", 3: "compat"}.get(step)  # a table the step alters but the database never made
        if table and db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone() is None:
            script = f"UPDATE meta SET value = '{step + 1}' WHERE key = 'schema';"
        db.executescript("BEGIN;" + script + "COMMIT;")
    db.executescript(SCHEMA)  # tables and indexes a step added only as new (IF NOT EXISTS)
