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
    from envctl.lockstate import body_hash

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
