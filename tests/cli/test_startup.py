"""The quick commands stay quick: no heavy import on their path (issue #15; timings: benchmarks/bench_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = {"pydantic", "conda_lock", "docker", "jinja2", "rattler"}


@pytest.mark.parametrize("args", [["catalog"], ["catalog", "--json"], ["show", "pytorch-2.8-cu118"],
                                  ["show", "pytorch-2.13-cpu"], ["show", "pytorch-2.14-cu130", "--json"]])
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
    from envctl.overview import describe
    from envctl.lock import cuda_libraries, load_lock

    p = Project(project)
    info = describe(p, "pytorch-2.14-cu130")
    assert info["cuda_libraries"] == cuda_libraries(load_lock(p.lock_path("pytorch-2.14-cu130")).pip)
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


_LOADED = ("import atexit, json, sys\n"
           "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.__stderr__))\n"
           "sys.argv = ['envctl', *sys.argv[1:]]\n"
           "from envctl.cli.main import run\nrun()\n")


def _imports(args, env):
    """The modules an envctl run has loaded when it exits (-X importtime misses some: typer's help
    swaps sys.stderr while it renders)."""
    import json

    proc = subprocess.run([sys.executable, "-c", _LOADED, *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "80", **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stderr.splitlines()[-1]))


def test_a_command_builds_only_its_own_module_and_help_lists_every_command(project, tmp_path):
    from envctl.cli.main import COMMANDS

    env = {"ENVCTL_CACHE": str(tmp_path / "cache")}
    others = {f"envctl.cli.{m}" for m in COMMANDS.values()} - {"envctl.cli.catalog"}
    assert not others & _imports(["show", "pytorch-2.13-cpu"], env)
    assert others <= _imports(["--help"], env)
    listed = subprocess.run([sys.executable, "-m", "envctl", "--help"], capture_output=True, text=True,
                            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, check=True).stdout
    assert [n for n in COMMANDS if f"│ {n} " in listed] == list(COMMANDS)


def test_each_command_module_registers_what_the_table_says():
    import typer

    from envctl.cli.main import COMMANDS, _Commands

    for module in sorted(set(COMMANDS.values())):
        from importlib import import_module

        sub = typer.Typer()
        sub.callback()(lambda: None)
        import_module(f"envctl.cli.{module}").register(sub)
        added = set(typer.main.get_command(sub).commands)
        assert added == {n for n, m in COMMANDS.items() if m == module}, module
    commands = _Commands()
    assert list(commands) == list(COMMANDS) and commands["lock"].name == "lock"


def test_a_spec_read_again_needs_no_pyyaml(project, tmp_path):
    """The parsed specs, matrix and defaults come from envctl.yamldoc's cache on the second run."""
    env = {"ENVCTL_CACHE": str(tmp_path / "cache")}
    assert "yaml" in _imports(["show", "pytorch-2.13-cpu"], env)
    assert "yaml" not in _imports(["show", "pytorch-2.13-cpu"], env)
    (project / "images" / "pytorch-2.13-cpu.yaml").write_text(
        (project / "images" / "pytorch-2.13-cpu.yaml").read_text() + "\n# edited\n")
    assert "yaml" in _imports(["show", "pytorch-2.13-cpu"], env)  # new text: parsed afresh


def test_a_command_typer_hands_the_group_is_kept():
    import typer

    from envctl.cli.main import COMMANDS, _Commands

    extra = typer.main.get_command(typer.Typer(name="x", callback=lambda: None)).commands
    sub = typer.Typer()
    sub.command("hello")(lambda: None)
    sub.callback()(lambda: None)
    commands = _Commands({**extra, **typer.main.get_command(sub).commands})
    assert "hello" in commands and list(commands)[:len(COMMANDS)] == list(COMMANDS) and list(commands)[-1] == "hello"
