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


SCHEMA_3_COMPAT = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '3');
CREATE TABLE artifacts (sha256 TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    size INTEGER NOT NULL, info TEXT NOT NULL, added REAL NOT NULL);
CREATE TABLE compat (artifact_sha256 TEXT NOT NULL, image TEXT NOT NULL, image_id TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT 'python', device TEXT NOT NULL DEFAULT 'cpu', status TEXT NOT NULL,
    detail TEXT, message TEXT, checked REAL NOT NULL, PRIMARY KEY (artifact_sha256, image_id, runtime, device));
INSERT INTO artifacts VALUES ('abc', 'm', 'torchscript', 1, '{}', 0);
INSERT INTO compat VALUES ('abc', 'img', 'sha256:1', 'python', 'cpu', 'ok', 'fine', 'fine', 1);
"""


def test_a_schema_3_database_keeps_its_compat_results_which_gain_a_target(tmp_path):
    from envctl.artifacts import Artifact
    from envctl.compat import Outcome, Target, matrix, record

    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_3_COMPAT)
    records = Records(path)
    art = Artifact(sha256="abc", name="m", kind="torchscript", size=1, info={}, added=0)
    ref = Target("img", "image", "127.0.0.1:5000/ml/img@sha256:" + "a" * 64)
    # One image by digest on two targets is two results: the target is part of the key.
    record(records, [Outcome(art, ref, "ok", "fine", on=on, where={"executor": "slurm", "node": on})
                     for on in ("pool-a", "pool-b")])
    data = matrix(records)
    assert data["targets"] == ["img python/cpu", "img on pool-a python/cpu", "img on pool-b python/cpu"]
    assert [c["on"] for c in data["columns"]] == [None, "pool-a", "pool-b"]
    old, a = data["cells"]["m"]["img python/cpu"], data["cells"]["m"]["img on pool-a python/cpu"]
    assert old["status"] == "ok" and old["on"] is None and old["where"] is None
    assert a["on"] == "pool-a" and a["where"] == {"executor": "slurm", "node": "pool-a"}
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION == 4
