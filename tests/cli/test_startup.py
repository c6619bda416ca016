"""The quick commands stay quick: no heavy import on their path (issue #15; timings: benchmarks/bench_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = {"pydantic", "conda_lock", "docker", "jinja2", "rattler"}


@pytest.mark.parametrize("args", [["catalog"], ["catalog", "--json"], ["show", "pytorch-2.8-cu118"],
                                  ["show", "pytorch-2.13-cpu"], ["show", "pytorch-2.14-cu130-pypi", "--json"]])
def test_catalog_and_show_import_nothing_heavy(project, args):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "envctl", *args], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode in (0, 2)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not HEAVY & imported, sorted(HEAVY & imported)


def test_show_reads_cuda_libraries_as_the_build_does(project):
    from envctl.catalog import Project
    from envctl.core_views import describe
    from envctl.lock import cuda_libraries, load_lock

    p = Project(project)
    info = describe(p, "pytorch-2.14-cu130-pypi")
    assert info["cuda_libraries"] == cuda_libraries(load_lock(p.lock_path("pytorch-2.14-cu130-pypi")).pip)
    assert "nvidia-cuda-runtime" in info["cuda_libraries"]


@pytest.mark.parametrize("env, expected", [({}, False), ({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": ""}, False),
                                           ({"TTY_COMPATIBLE": "1"}, True), ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False)])
def test_stderr_counts_as_a_terminal_where_rich_would_say_so_without_importing_it(monkeypatch, env, expected):
    # status lines skip rich only where rich itself would print plain text (a pipe, here)
    from rich.console import Console

    from envctl import console

    for key in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delitem(console.__dict__, "err", raising=False)
    assert console.stderr_is_terminal() is expected
    assert Console(stderr=True).is_terminal is expected
