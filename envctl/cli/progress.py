"""Progress for long work: a spinner on a terminal, plain status lines otherwise."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from envctl import console


@contextmanager
def activity(title: str) -> Iterator[Callable[[str], None]]:
    """Yield a callback that reports the current step; spinner only on a TTY."""
    if console.stderr_is_terminal():  # the spinner's lines pass through console.shown as status lines do
        with console.err.status(console.shown(title)) as status:
            yield lambda msg: status.update(console.shown(f"{title}: {msg}"))
    else:
        console.status(title)
        yield lambda msg: console.status(f"  {msg}")
