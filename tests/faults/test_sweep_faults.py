"""`envctl matrix verify` and `envctl matrix report` under bad input: a bad range is one line and
exit 2 before anything runs; a records row no sweep wrote (or one forged to carry markup) is
passed over or escaped, never a traceback or a script in the page."""

from __future__ import annotations

import json
import sqlite3

from envctl.lock import load_lock
from tests.faults.conftest import assert_one_line_error, envctl


def test_bad_variants_is_one_line(project):
    proc = envctl("matrix", "verify", "--variants", "cpu,cuda12")
    assert_one_line_error(proc, 2, "--variants cpu,cuda12: cuda12 is not a variant")
    assert "default, all, or a list such as cpu,cu126" in proc.stderr


def test_bad_versions_and_empty_ranges_are_one_line(project):
    assert_one_line_error(envctl("matrix", "verify", "--since", "two"), 2, "--since two: not a version")
    assert_one_line_error(envctl("matrix", "report", "--python", "3.x"), 2, "--python 3.x: not a version")
    assert_one_line_error(envctl("matrix", "verify", "--since", "9.0"), 2, "no torch release x variant in 9.0 .. newest")
    assert_one_line_error(envctl("matrix", "verify", "--gpus", "many"), 2, "--gpus many")


def test_a_remote_target_without_a_registry_and_other_bad_places_are_one_line(project):
    needs = envctl("matrix", "verify", "--on", "slurm", "--since", "2.13", "--until", "2.13")
    assert_one_line_error(needs, 2, "--on slurm runs each image from a registry", "give --registry")
    (project / "fleet.yaml").write_text("version: 1\ntargets:\n  h100: {on: slurm, gres: 'gpu:1'}\n  here: {on: local}\n")
    assert_one_line_error(envctl("matrix", "verify", "--target", "h100"), 2,
                          "target h100 (slurm) runs each image from a registry")
    assert_one_line_error(envctl("matrix", "verify", "--target", "here", "--registry", "127.0.0.1:5000"), 2,
                          "--registry 127.0.0.1:5000 applies only to a remote target")
    assert_one_line_error(envctl("matrix", "verify", "--on", "slurm", "--registry", "https://r.example.com"), 2,
                          "--registry https://r.example.com: give the registry without a scheme")
    assert_one_line_error(envctl("matrix", "verify", "--partition", "gpu"), 2, "--partition needs --on slurm")
    assert_one_line_error(envctl("matrix", "verify", "--on", "slurm", "--context", "gke", "--registry", "r.example.com"),
                          2, "--context does not apply to --on slurm")
    assert_one_line_error(envctl("matrix", "verify", "--target", "nowhere"), 2, "--target nowhere: no such target")
    assert_one_line_error(envctl("matrix", "report", "--on", "moon"), 2, "--on moon: give one of local, slurm")


def _forge(db_path, document, *, lock_hash: str) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("INSERT INTO runs (kind, image, host, ok, started, lock_hash, document) VALUES "
                   "('matrix', 'pytorch-2.13-cpu', 'h', 0, 1.0, ?, ?)", (lock_hash, document))


def test_forged_records_are_escaped_or_passed_over(project, tmp_path, monkeypatch):
    db = tmp_path / "records.db"
    monkeypatch.setenv("ENVCTL_RECORDS", str(db))
    assert envctl("history").returncode == 0  # creates the database
    lock_hash = load_lock(project / "locks" / "pytorch-2.13-cpu.conda-lock.yml").lock_hash
    _forge(db, "not json", lock_hash=lock_hash)
    _forge(db, json.dumps({"torch": "2.13", "variant": "cpu", "state": "exploded"}), lock_hash=lock_hash)
    forged = {"torch": "2.13", "variant": "cpu", "state": "failed", "reason": "<script>alert(1)</script>",
              "failure": "<b>x</b>", "lock_hash": lock_hash, "size": "huge", "build_s": 1e300,
              "versions": {"cuda": "<i>13</i>", "cudnn": 9}, "speedups": {"compile-default": "fast"}}
    _forge(db, json.dumps(forged), lock_hash=lock_hash)
    proc = envctl("matrix", "report", "--since", "2.13", "--until", "2.13", "--variants", "cpu", "--html",
                  str(tmp_path / "page"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout == "pytorch-2.13-cpu: failed: <script>alert(1)</script>\n"
    page = (tmp_path / "page" / "index.html").read_text()
    assert "<script" not in page and "<b>x" not in page and "<i>13" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "cuda &lt;i&gt;13&lt;/i&gt;" in page
    assert "GB" not in page and "build " not in page  # the size and time that were not numbers are left out
