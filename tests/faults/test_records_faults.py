"""Item 3 (and the records part of 9): finished work is shown first and never lost to the database.

A real second process holds the database; a damaged or foreign file stands in for corruption.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.faults.conftest import FAKE_PROBE, assert_one_line_error, envctl


def _saved_file(line: str) -> Path:
    match = re.search(r"saved to (\S+\.json)", line)
    assert match, line
    return Path(match.group(1))


def test_a_damaged_database_does_not_cost_the_report(tmp_path, artifact_env):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PROBE)
    fake.chmod(0o755)
    db = Path(artifact_env["ENVCTL_RECORDS"])
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    result = envctl("smoke", "--python", str(fake), "--json", env=artifact_env)
    assert json.loads(result.stdout)["ok"] is True  # the report came first
    line = assert_one_line_error(result, 1, str(db), "cannot open the records database")
    saved = json.loads(_saved_file(line).read_text())
    assert saved["data"]["kind"] == "smoke" and saved["data"]["document"]["ok"] is True


def test_damaged_pages_are_one_line_for_every_reader(artifact_env):
    db = Path(artifact_env["ENVCTL_RECORDS"])
    db.parent.mkdir(parents=True)
    for i in range(3):  # a few pages of rows, then garbage over everything after the header page
        assert envctl("history", env=artifact_env).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.executemany("INSERT INTO runs (kind, image, host, ok, started, document) VALUES (?,?,?,?,?,?)",
                         [("build", f"img{i}", "h", 1, i, "x" * 3000) for i in range(50)])
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    for args in (["history"], ["catalog"], ["compat", "matrix"], ["artifacts", "list"]):
        assert_one_line_error(envctl(*args, env=artifact_env), 1, str(db))


def test_a_database_held_by_another_process_keeps_the_compat_results(made_artifacts, artifact_env):
    added = envctl("artifacts", "add", str(made_artifacts["pt"]), "--inputs", str(made_artifacts["inputs"]),
                   "--python", sys.executable, env=artifact_env)
    assert added.returncode == 0, added.stderr
    db = artifact_env["ENVCTL_RECORDS"]
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(120)"), db],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = envctl("compat", "run", "--python", sys.executable, "--json", "--timeout", "60",
                        env={**artifact_env, "ENVCTL_RECORDS_WAIT": "2"})
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(result.stdout)[0]["status"] == "ok"  # shown first
    line = assert_one_line_error(result, 1, db, "cannot record 1 compat results", "locked")
    saved = json.loads(_saved_file(line).read_text())
    assert saved["data"][0]["status"] == "ok" and saved["data"][0]["artifact"] == "double"
    # The holder gone, the next run records normally.
    again = envctl("compat", "run", "--python", sys.executable, env=artifact_env)
    assert again.returncode == 0, again.stderr
    assert os.path.exists(db)


def test_a_read_only_database_is_still_read_and_a_write_is_one_line(tmp_path, readonly_dir):
    """chmod 0444 does not stop root, so the database also sits under a read-only bind mount."""
    fake = tmp_path / "python"
    fake.write_text(FAKE_PROBE)
    fake.chmod(0o755)
    writable = readonly_dir.parent / "ro-src"  # the same folder, seen through the writable side
    made = envctl("smoke", "--python", str(fake), env={"ENVCTL_RECORDS": str(writable / "records.db")})
    assert made.returncode == 0, made.stderr
    (writable / "records.db").chmod(0o444)
    db = readonly_dir / "records.db"
    shown = envctl("history", "--json", env={"ENVCTL_RECORDS": str(db)})
    assert shown.returncode == 0, shown.stderr
    assert [r["kind"] for r in json.loads(shown.stdout)] == ["smoke"]
    written = envctl("smoke", "--python", str(fake), env={"ENVCTL_RECORDS": str(db)})
    line = assert_one_line_error(written, 1, str(db), "cannot record")
    assert json.loads(_saved_file(line).read_text())["data"]["row"]["kind"] == "smoke"


def test_a_run_whose_times_are_not_times_is_one_line_for_history_and_fleet(tmp_path):
    from envctl.records import Records

    db = tmp_path / "records.db"
    Records(db).add_run(kind="verify", image="pytorch-2.13-cpu", ok=True, started=1.0e9, duration_s=3.0)
    env = {"ENVCTL_RECORDS": str(db), "ENVCTL_PROJECT": str(Path(__file__).resolve().parents[2])}
    for started, duration in (("'yesterday'", "3.0"), ("1e308", "3.0"), ("1.0e9", "'long'")):
        with sqlite3.connect(db) as con:
            con.execute(f"UPDATE runs SET started = {started}, duration_s = {duration}")
        for command in (["history"], ["fleet"]):
            assert_one_line_error(envctl(*command, env=env, timeout=60), 2, "in the records database has started=")
