"""The one place envctl writes to the terminal.

Data (tables, ``--json``) goes to stdout, status, progress and errors to
stderr.  Markup is off so package names and paths are never read as rich
markup; colour follows NO_COLOR and whether the stream is a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

def _width(stream) -> int | None:
    # Piped output (CI logs, tests) is not cut to 80 columns: tables take the width they need.
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


out = Console(markup=False, highlight=False, width=_width(sys.stdout))
# soft_wrap: an error stays one line however long, so logs and scripts can grep it.
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True, width=_width(sys.stderr))

STATUS_STYLES = {
    "pass": "green", "ok": "green", "locked": "green", "current": "green", "stable": "green",
    "fail": "red", "error": "red", "stale": "yellow", "edited": "red", "warn": "yellow", "experimental": "yellow",
    "skip": "dim", "not locked": "dim", "-": "dim",
}


def styled(value: str, style: str | None = None) -> Text:
    return Text(value, style=style or STATUS_STYLES.get(value, ""))


json_printed = False  # a document is on stdout: an error after it must not add a second one


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    global json_printed
    json_printed = True
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def status(message: str) -> None:
    err.print(message)


def error(message: str, hint: str | None = None) -> None:
    line = Text("error: ", style="bold red")
    line.append(message)
    err.print(line)
    if hint:
        err.print(Text("hint: " + hint, style="yellow"))
