"""The records database: runs carry their fleet target and where they ran (schema 3), pushes are
recorded by digest, compat results carry their target too (schema 4), and older databases are
migrated in place (real SQLite files)."""

from __future__ import annotations

import sqlite3

from envctl.records import SCHEMA_VERSION, Records

SCHEMA_2_RUNS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '2');
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, image TEXT NOT NULL, image_id TEXT,
    spec_hash TEXT, lock_hash TEXT, host TEXT NOT NULL, gpu TEXT, driver TEXT, ok INTEGER NOT NULL, summary TEXT,
    started REAL NOT NULL, duration_s REAL, document TEXT);
INSERT INTO runs (kind, image, host, ok, started) VALUES ('verify', 'old', 'h', 1, 5);
"""


def test_a_schema_2_database_gains_targets_and_pushes(tmp_path):
    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_2_RUNS)
    records = Records(path)
    [old] = records.runs()
    assert old.image == "old" and old.target is None and old.where is None
    records.add_run(kind="verify", image="new", ok=True, started=6, target="h100",
                    where={"executor": "slurm", "job_id": "7", "node": "n1", "gpu": "H100", "driver": "550.1"})
    new = records.runs(image="new")[0]
    assert new.target == "h100" and new.where["node"] == "n1" and new.where["job_id"] == "7"
    assert records.last_push("new") is None
    records.add_push(image="new", ref="127.0.0.1:5000/t/new@sha256:" + "a" * 64, registry="127.0.0.1:5000/t",
                     image_id="sha256:" + "b" * 64, lock_hash="sha256:c")
    assert records.last_push("new") == {"ref": "127.0.0.1:5000/t/new@sha256:" + "a" * 64,
                                        "registry": "127.0.0.1:5000/t", "image_id": "sha256:" + "b" * 64,
                                        "lock_hash": "sha256:c", "pushed": records.last_push("new")["pushed"]}
    assert records.last_push("new", registry="elsewhere:5000") is None
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 4


def test_a_where_no_envctl_wrote_reads_as_unknown(tmp_path):
    path = tmp_path / "r.db"
    records = Records(path)
    records.add_run(kind="verify", image="x", ok=True, started=1, where={"node": "n"})
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE runs SET "where" = '[not json'""")
    assert records.runs()[0].where is None
