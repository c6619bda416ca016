"""Issue #22 items 6 and 7: every document envctl reads is untrusted input.

YAML aliases (a billion laughs) are refused before they expand, an echoed value never makes an
error line longer than ``envctl.errors.MAX_LINE``, and each damaged document (bench JSON, the
records database, the release matrix, command-line numbers) is one line and exit 2, never a
traceback.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import yaml

from envctl.errors import MAX_LINE
from tests.faults.conftest import REPO, assert_one_line_error, envctl
from tests.faults.test_forged_locks import forge

CPU = yaml.safe_load((REPO / "images" / "pytorch-2.13-cpu.yaml").read_text())


def _laughs(levels: int = 9) -> str:
    """A billion laughs: ten aliases of ten aliases ... of one string (10**levels strings, 1 KB)."""
    lines = ['lol: &l0 "lol lol lol lol lol lol lol lol lol lol"']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def spec_project(tmp_path) -> dict:
    (tmp_path / "images").mkdir()
    return {"ENVCTL_PROJECT": str(tmp_path), "ENVCTL_CACHE": str(tmp_path / "cache"),
            "ENVCTL_RECORDS": str(tmp_path / "records.db")}


def test_a_spec_of_yaml_aliases_is_refused_at_once(spec_project):
    text = yaml.safe_dump({**CPU, "name": "laughs"}) + _laughs().replace("l9:", "pip:")
    assert len(text) < 2000
    Path(spec_project["ENVCTL_PROJECT"], "images", "laughs.yaml").write_text(text)
    started = time.monotonic()
    proc = envctl("show", "laughs", env=spec_project, timeout=60)
    assert time.monotonic() - started < 20
    line = assert_one_line_error(proc, 2, "laughs.yaml", "YAML anchors and aliases (&name, *name) are not allowed")
    assert len(line) < MAX_LINE + 10


def test_a_single_anchor_is_refused_and_a_star_in_a_string_is_not():
    from envctl import yamldoc

    with pytest.raises(yamldoc.DocumentError, match="anchors and aliases") as caught:
        yamldoc.parse("a: &x 1\nb: 2\n")
    assert caught.value.line == 1
    assert yamldoc.parse('m: ["nvidia-*", "*"]\nn: a*b\no: "&x"\n') == {"m": ["nvidia-*", "*"], "n": "a*b", "o": "&x"}


def test_envctls_own_documents_hold_no_alias():
    """What envctl writes and ships parses under the rule: the committed locks, specs and data."""
    from envctl import yamldoc

    for path in [*REPO.glob("locks/*.yml"), *REPO.glob("images/*.yaml"), *REPO.glob("envctl/data/*.yaml")]:
        yamldoc.parse(path.read_text())


def test_a_lock_body_of_aliases_is_refused(pip_project, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(Path(pip_project["ENVCTL_PROJECT"]) / "images", root / "images")
    shutil.copytree(Path(pip_project["ENVCTL_PROJECT"]) / "locks", root / "locks")
    lock = root / "locks" / "fixture-pip.conda-lock.yml"
    forge(lock, lambda data: None)
    head, body = lock.read_text().split("version: 1\n", 1)
    from envctl.lock.state import body_hash

    body = "version: 1\n" + _laughs() + body  # the attacker recomputes the hash of the new body
    head = "".join(f"# lock hash: {body_hash(body)}\n" if ln.startswith("# lock hash:") else ln
                   for ln in head.splitlines(keepends=True))
    lock.write_text(head + body)
    env = {**pip_project, "ENVCTL_PROJECT": str(root)}
    for argv in (["export", "fixture-pip", "--format", "requirements"], ["show", "fixture-pip"]):
        proc = envctl(*argv, env=env, timeout=60)
        assert_one_line_error(proc, 2, "anchors and aliases")


def test_an_echoed_value_is_capped(pip_project, tmp_path):
    """A megabyte value echoed in an error is cut in the middle; the line still says where and what."""
    root = tmp_path / "project"
    shutil.copytree(Path(pip_project["ENVCTL_PROJECT"]), root, ignore=shutil.ignore_patterns("cache", "*.db*"))
    forge(root / "locks" / "fixture-pip.conda-lock.yml",
          lambda data: data["package"][0].update(version="x" * 1_000_000))
    proc = envctl("export", "fixture-pip", "--format", "requirements", env={**pip_project, "ENVCTL_PROJECT": str(root)})
    line = assert_one_line_error(proc, 2, "fixture-pip.conda-lock.yml is not a valid conda-lock file: package[0] "
                                 "(mpmath): version 'xxx", "x\u2026x", "' is not a PEP 440 version")
    assert len(line) <= len("error: ") + MAX_LINE and len(proc.stderr) < 2 * MAX_LINE


def test_clip_keeps_one_line_with_its_start_and_end():
    from envctl.errors import EnvctlError, clip

    assert clip("short") == "short" and clip("a\nb\rc") == "a\\nb\\rc"
    cut = EnvctlError("where: " + "v" * 10_000 + " is wrong", hint="h" * 10_000)
    assert len(str(cut)) == MAX_LINE and str(cut).startswith("where: vvv") and str(cut).endswith("v is wrong")
    assert len(cut.hint) == MAX_LINE and "\u2026" in cut.hint


# -- item 7: a table of damaged documents, each one line and exit 2 ----------------------------

def _row(**fields) -> dict:
    return {"model": "mlp", "dtype": "fp32", "batch": 1, "mode": "default", "status": "ok", "median_ms": 2.0,
            "ci_low_ms": 1.9, "ci_high_ms": 2.1, "group": 0,
            "speedup": {"median": 1.5, "low": 1.4, "high": 1.6, "conclusive": True, "verdict": "faster", "why": []},
            **fields}


GOOD_RUN = {"schema": "envctl.probe/1", "device": "cpu", "level": "quick", "env": {"torch": {"version": "2.13.0"}},
            "benchmarks": [_row(mode="eager", speedup=None), _row()]}


def _bench_file(tmp_path: Path, doc) -> list[str]:
    import json

    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return ["bench", "compare", str(path), str(path)]


def _records(tmp_path: Path, *statements: tuple[str, tuple]) -> None:
    """The records database envctl makes, then changed behind its back."""
    import sqlite3

    from envctl.records import Records

    db = Records(tmp_path / "records.db")
    db.add_run(kind="verify", image="pytorch-2.13-cpu", ok=True, started=1.0, document=GOOD_RUN)
    with sqlite3.connect(db.path) as conn:
        for sql, args in statements:
            conn.execute(sql, args)


def _artifact_info(info: str) -> tuple[str, tuple]:
    return ("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?)", ("a" * 64, "double", "torchscript", 10, info, 1.0))


def _matrix(tmp_path: Path, text: str) -> dict:
    """A copy of the envctl package whose packaged release matrix is ``text``."""
    shutil.copytree(REPO / "envctl", tmp_path / "pkg" / "envctl", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pkg" / "envctl" / "data" / "release-matrix.yaml").write_text(text)
    return {"PYTHONPATH": str(tmp_path / "pkg")}


MATRIX = (REPO / "envctl" / "data" / "release-matrix.yaml").read_text()

DAMAGED = {  # id -> (make the document, return (extra env, argv)), what the one line says
    "bench-json-list": (lambda t: ({}, _bench_file(t, [1, 2])), "the document is [1, 2], not a JSON object"),
    "bench-env-torch-string": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "env": {"torch": "2.13"}})),
                               "env.torch is '2.13', not a JSON object"),
    "bench-benchmarks-string": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "benchmarks": "many"})),
                                "benchmarks is 'many', not a list"),
    "bench-row-int": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "benchmarks": [7]})),
                      "benchmarks[0] is 7, not a JSON object"),
    "bench-batch-string": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "benchmarks": [_row(batch="1")]})),
                           "benchmarks[0].batch is '1', not an integer"),
    "bench-speedup-zero": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "benchmarks": [_row(speedup={
        "median": 1.0, "low": 0, "high": 1.2, "conclusive": True})]})),
        "benchmarks[0].speedup.low is 0, not a positive number"),
    "bench-median-text": (lambda t: ({}, ["bench", "show", _bench_file(t, {**GOOD_RUN, "benchmarks": [
        _row(median_ms="fast")]})[2]]), "benchmarks[0].median_ms is 'fast', not a positive number"),
    # what the benchmark page names about a run: when it was made, the host's speed, its CUDA
    "bench-made-at-text": (lambda t: ({}, ["bench", "show", _bench_file(t, {**GOOD_RUN, "machine": {
        "before": {"t": "yesterday"}}})[2], "--html", str(t / "page.html")]),
        "machine.before.t is 'yesterday', not a positive number"),
    "bench-host-speed-list": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "machine": {
        "after": {"t": 1.0, "host": {"torch_op_us": [3.1]}}}})),
        "machine.after.host.torch_op_us is [3.1], not a positive number"),
    "bench-image-string": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "image": "pytorch-2.13-cpu"})),
                           "image is 'pytorch-2.13-cpu', not a JSON object"),
    "bench-cuda-number": (lambda t: ({}, _bench_file(t, {**GOOD_RUN, "env": {"torch": {"version": "2.13.0",
                                                                                     "cuda": 13.0}}})),
                          "env.torch.cuda is 13.0, not a string"),
    "records-schema-text": (lambda t: (_records(t, ("UPDATE meta SET value = 'abc' WHERE key = 'schema'", ())),
                                       ({}, ["history"]))[1],
                            "meta.schema is 'abc', not a schema number"),
    "records-document-not-json": (lambda t: (_records(t, ("UPDATE runs SET document = '{oops'", ())),
                                             ({}, ["bench", "show", "#1"]))[1],
                                  "record #1: the stored probe document is not JSON"),
    "records-document-list": (lambda t: (_records(t, ("UPDATE runs SET document = '[1]'", ())),
                                         ({}, ["bench", "compare", "pytorch-2.13-cpu", "#1"]))[1],
                              "record #1: the document is [1], not a JSON object"),
    "artifact-info-not-json": (lambda t: (_records(t, _artifact_info("{not json")), ({}, ["artifacts", "list"]))[1],
                               "artifact 'double' in the records database: its info is not JSON"),
    "artifact-info-traversal": (lambda t: (_records(t, _artifact_info('{"file": "../../etc/passwd"}')),
                                           ({}, ["artifacts", "list"]))[1],
                                "its info is file: not a file name of the artifact's folder"),
    "artifact-hashes-traversal": (lambda t: (_records(t, _artifact_info(
        '{"file": "artifact.pt", "hashes": {"../../etc/shadow": "x"}}')), ({}, ["artifacts", "list"]))[1],
        "its info is hashes: not a file name of the artifact's folder"),
    "matrix-empty": (lambda t: (_matrix(t, ""), ["show", "pytorch-2.13-cpu"]),
                     "release-matrix.yaml is not a release matrix (empty, or not a mapping)"),
    "matrix-not-yaml": (lambda t: (_matrix(t, "torch: [unclosed\n"), ["show", "pytorch-2.13-cpu"]),
                        "release-matrix.yaml is not YAML"),
    "matrix-row-string": (lambda t: (_matrix(t, MATRIX.replace('  "2.15":\n', '  "2.15": oops\n  "2.99":\n')),
                                     ["show", "pytorch-2.13-cpu"]),
                          "torch.2.15: not a torch minor"),
    "matrix-python-number": (lambda t: (_matrix(t, MATRIX.replace('python: ["3.11", "3.15"]', "python: 3.11")),
                                        ["catalog"]), "torch.2.15.python: not [oldest, newest]"),
    "matrix-bad-range": (lambda t: (_matrix(t, MATRIX.replace('{torch: ">=2.11"', '{torch: "about 2.11"')),
                                    ["show", "pytorch-2.13-cpu"]), "arch_lists.12.8[0].torch: 'about 2.11'"),
    "matrix-file-to-refresh": (lambda t: ({}, ["matrix", "refresh", "--check", "--file", str(_write(
        t / "m.yaml", MATRIX.replace("drivers:\n", "drivers: [1]\nold_drivers:\n"))),
        "--index-url", "http://127.0.0.1:9/simple", "--pytorch-index", "none"]),
        "m.yaml: drivers: not a mapping"),
    "refresh-ipv6-url": (lambda t: ({}, ["matrix", "refresh", "--check", "--index-url", "http://[::1"]),
                         "--index-url http://[::1 is not a URL"),
    "history-huge-limit": (lambda t: ({}, ["history", "--limit", "99999999999999999999"]),
                           "--limit 99999999999999999999: give a positive number of rows, at most"),
    "bench-run-level": (lambda t: ({}, ["bench", "compare", "--run", "--level", "ludicrous", "pytorch-2.13-cpu",
                                        "pytorch-2.13-cpu"]), "--level ludicrous is not a probe level"),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_document_is_one_line_and_exit_2(tmp_path, case):
    make, needle = DAMAGED[case]
    extra, argv = make(tmp_path)
    env = {"ENVCTL_PROJECT": str(REPO), "ENVCTL_CACHE": str(tmp_path / "cache"),
           "ENVCTL_RECORDS": str(tmp_path / "records.db"), **extra}
    assert_one_line_error(envctl(*argv, env=env, cwd=tmp_path, timeout=120), 2, needle)  # cwd: not this checkout


def test_an_intact_probe_document_compares(tmp_path):
    """The checks refuse nothing a probe writes: the same document compares, and so does a record."""
    proc = envctl(*_bench_file(tmp_path, GOOD_RUN), env={"ENVCTL_RECORDS": str(tmp_path / "records.db")})
    assert proc.returncode == 0, proc.stderr
    _records(tmp_path)
    proc = envctl("bench", "show", "#1", env={"ENVCTL_RECORDS": str(tmp_path / "records.db")})
    assert proc.returncode == 0 and "mlp" in proc.stdout, proc.stderr
