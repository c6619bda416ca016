"""Tables that never lose data at the terminal's width.

Short columns (versions, states, counts) are never cut or wrapped: each gets the width of
its longest value.  When every column fits, one boxed table is printed and long cells
wrap.  When it does not, the table keeps the short columns that fit, in priority order,
and the rest of each row moves to an indented second line under it, wrapped, never cut.
``--wide`` prints the whole table at its natural width whatever the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a table is drawn, not by every command that has one
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

LONG_MIN = 16  # a long column narrower than this reads badly: move it to the second line instead
GAP = 2  # spaces between columns of the compact table


@dataclass(frozen=True)
class Column:
    header: str
    short: bool = True  # never cut, never wrapped
    priority: int = 0  # lower stays in the table longer when the terminal is narrow
    justify: str = "left"


def _plain(cell: str | Text) -> str:
    return cell if isinstance(cell, str) else cell.plain


def _width_of(col: Column, rows: list[list[str | Text]], i: int) -> int:
    return max([len(col.header)] + [len(_plain(r[i])) for r in rows])


def full_table(columns: list[Column], rows: list[list[str | Text]]) -> Table:
    from rich.table import Table

    table = Table()
    for i, col in enumerate(columns):
        width = _width_of(col, rows, i)
        if col.short:
            table.add_column(col.header, no_wrap=True, min_width=width, justify=col.justify)
        else:
            table.add_column(col.header, overflow="fold", min_width=min(width, LONG_MIN), justify=col.justify)
    for r in rows:
        table.add_row(*r)
    return table


def _full_fits(columns: list[Column], rows: list[list[str | Text]], width: int) -> bool:
    # The boxed table: one border plus a space either side per column, and one closing border.
    need = 1 + sum(3 + (_width_of(c, rows, i) if c.short else min(_width_of(c, rows, i), LONG_MIN))
                   for i, c in enumerate(columns))
    return need <= width


def render(columns: list[Column], rows: list[list[str | Text]], *, width: int,
           wide: bool = False) -> RenderableType:
    """The table for a terminal ``width`` columns wide (``wide``: everything in one table)."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    if wide or _full_fits(columns, rows, width):
        return full_table(columns, rows)
    widths = [_width_of(c, rows, i) for i, c in enumerate(columns)]
    kept: list[int] = []
    used = 0
    for i in sorted(range(len(columns)), key=lambda i: (columns[i].priority, i)):
        if not columns[i].short:
            continue
        extra = widths[i] + (GAP if kept else 0)
        if used + extra <= width:
            kept.append(i)
            used += extra
    kept.sort()
    moved = [i for i in range(len(columns)) if i not in kept]
    parts: list[RenderableType] = []
    for n, r in enumerate(rows):
        table = Table(box=None, show_header=n == 0, pad_edge=False, padding=(0, GAP // 2),
                      header_style="bold")
        for i in kept:
            table.add_column(columns[i].header, no_wrap=True, width=widths[i], justify=columns[i].justify)
        table.add_row(*(r[i] for i in kept))
        parts.append(table)
        rest = [(columns[i].header, r[i]) for i in moved if _plain(r[i]) not in ("", "-")]
        if rest:
            line = Text(overflow="fold")
            for k, (header, cell) in enumerate(rest):
                line.append(("; " if k else "") + header + ": ", style="dim")
                line.append(cell if isinstance(cell, Text) else Text(cell))
            parts.append(Padding(line, (0, 0, 0, 4), expand=False))
    return Group(*parts)


def print_table(console: Console, columns: list[Column], rows: list[list[str | Text]], *,
                wide: bool = False) -> None:
    renderable = render(columns, rows, width=console.width, wide=wide)
    if wide:
        # At its natural width, not cut to the terminal: for scripts and wide screens.
        natural = console.measure(renderable, options=console.options.update(width=10_000)).maximum
        console.print(renderable, width=natural, crop=False)
    else:
        console.print(renderable)
