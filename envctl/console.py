"""The one place envctl writes to the terminal.

Data (tables, ``--json``) goes to stdout, status, progress and errors to
stderr.  Markup is off so package names and paths are never read as rich
markup; colour follows NO_COLOR and whether the stream is a terminal.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from envctl.net import redact


def _width(stream) -> int | None:
    # Piped output (CI logs, tests) is not cut to 80 columns: tables take the width they need.
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return 160


def __getattr__(name: str):
    """``out`` and ``err``, the rich consoles, made on first use: rich costs 20 ms of imports,
    which a command that only prints status lines to a pipe (CI, scripts) never pays."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    if name == "out":
        made = Console(markup=False, highlight=False, emoji=False, width=_width(sys.stdout))
    else:  # soft_wrap: an error stays one line however long, so logs and scripts can grep it.
        made = Console(stderr=True, markup=False, highlight=False, emoji=False, soft_wrap=True,
                       width=_width(sys.stderr))
    globals()[name] = made
    return made


def _console(name: str):
    return globals().get(name) or __getattr__(name)


def stderr_is_terminal() -> bool:
    """Whether stderr takes colour and live displays, as rich decides it (FORCE_COLOR and
    TTY_COMPATIBLE=1 count as a terminal, TTY_COMPATIBLE=0 does not)."""
    if "err" in globals():
        return globals()["err"].is_terminal
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    if os.environ.get("FORCE_COLOR") is not None:
        return os.environ["FORCE_COLOR"] != ""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


STATUS_STYLES = {
    "pass": "green", "ok": "green", "locked": "green", "current": "green", "stable": "green",
    "fail": "red", "error": "red", "stale": "yellow", "edited": "red", "warn": "yellow", "experimental": "yellow",
    "skip": "dim", "not locked": "dim", "-": "dim",
}


def styled(value: str, style: str | None = None):
    from rich.text import Text

    return Text(value, style=style or STATUS_STYLES.get(value, ""))


json_printed = False  # a document is on stdout: an error after it must not add a second one


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    global json_printed
    json_printed = True
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=True, default=str)) + "\n")
    sys.stdout.flush()


# C0 and C1 controls and DEL: bytes an index or a tool sent that would move the cursor, retitle
# the window or clear the screen, were they printed as they are.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """A line as envctl shows it: a URL's password as ***, control bytes as visible escapes
    (``\x1b``), so text from outside (an index's answer, a tool's output) stays one plain line."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], redact(text))


def status(message: str) -> None:
    message = shown(message)
    if not stderr_is_terminal():  # what rich prints to a pipe (no style, no wrap), without importing it
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
        return
    _console("err").print(message)


def error(message: str, hint: str | None = None) -> None:
    from rich.text import Text

    err = _console("err")
    line = Text("error: ", style="bold red")
    line.append(shown(message))
    err.print(line)
    if hint:
        err.print(Text("hint: " + shown(hint), style="yellow"))


def write_output(path: os.PathLike | str, text: str | bytes) -> None:
    """Where every ``-o``/``--html``/``--junit`` goes: ``-`` is stdout; a device or FIFO is written
    to as it is; a regular file is replaced atomically (envctl.fsio.atomic_write decides)."""
    if str(path) == "-":
        sys.stdout.write(text if isinstance(text, str) else text.decode("utf-8"))
        sys.stdout.flush()
        return
    from envctl.fsio import atomic_write
    atomic_write(path, text)
    status(f"wrote {path}")
