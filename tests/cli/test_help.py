"""`-h` as click writes it: flags without placeholders, NAME in usage lines, one-line summaries (issue #21)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
import typer

from envctl.cli.main import app


def envctl(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _commands(command=None, path=()):
    """Every command and group of envctl, with the words that run it."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name in list(getattr(command, "commands", {})):
        yield from _commands(command.commands[name], (*path, name))


COMMANDS = [path for path, _ in _commands()]


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "envctl" for p in COMMANDS])
def test_help_has_no_placeholders_on_flags_and_names_arguments_in_capitals(path):
    result = envctl(*path, "-h")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout and "{" not in result.stdout, result.stdout
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
    command = dict(_commands())[path]
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.name.upper() in usage, usage


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "envctl" for p in COMMANDS])
def test_help_texts_read_as_written(path):
    command = dict(_commands())[path]
    # A group lists each command by the first paragraph of its help: one line, or the listing
    # breaks mid-sentence where the docstring did.
    assert "\n" not in inspect.cleandoc(command.help or "").split("\n\n")[0]
    for param in command.params:  # typer reads [...] in help as rich markup and drops it
        assert "[" not in (getattr(param, "help", None) or ""), (param.name, param.help)
    # The description under the usage line is wrapped by the terminal, never where the source
    # wrapped: a line breaks only where the next word would not fit.
    text = envctl(*path, "-h").stdout.splitlines()
    top = text[:next(i for i, line in enumerate(text) if line.startswith("╭"))]
    for line, after in zip(top, top[1:]):
        if line.strip() and after.strip() and "Usage:" not in line:
            assert len(line.rstrip()) + 1 + len(after.split()[0]) > 79, (line, after)


def test_matrix_help_exactly():
    assert envctl("matrix", "-h").stdout == """\
                                                                                
 Usage: envctl matrix [OPTIONS] COMMAND [ARGS]...                               
                                                                                
 The PyTorch release matrix envctl checks every spec against.                   
                                                                                
╭─ Options ────────────────────────────────────────────────────────────────────╮
│ --help  -h        Show this message and exit.                                │
╰──────────────────────────────────────────────────────────────────────────────╯
╭─ Commands ───────────────────────────────────────────────────────────────────╮
│ refresh  Bring the release matrix up to date from the package indexes.       │
│ verify   Lock, build and verify every real torch x variant in a range.       │
│ report   What matrix verify recorded for a range, as lines or a page.        │
╰──────────────────────────────────────────────────────────────────────────────╯

"""
