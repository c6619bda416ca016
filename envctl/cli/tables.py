"""Every table envctl prints, under one policy: no value is ever cut.

Short columns (names, versions, states, counts, tags) are never cut or wrapped: each gets the
width of its longest value.  Long columns (details, summaries, lists) wrap only between words,
so a word is never split.  When every column fits the terminal, one boxed table is printed.  When
it does not, the table keeps the short columns that fit, in priority order, and the rest of each
row moves to an indented line under it, wrapped, never cut.  ``--wide`` prints the whole table at
its natural width whatever the terminal (piped output gets that width too).

A grid (artifacts down, targets across) keeps its shape: long labels wrap between words in their
headers; when even that is too wide the columns are numbered and a legend names each; narrower
still, it is laid out as any table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # rich is imported when a table is drawn, not by every command that has one
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

WIDE_OPT = typer.Option(False, "--wide", help="One table at its full width, whatever the terminal.")

LONG_MIN = 16  # a long column narrower than this reads badly: move it to the second line instead
GAP = 2  # spaces between columns of the compact table
BORDER = 3  # a boxed table's border and the space either side of each column


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


def _longest_word(texts: list[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=0)


def _min_width(col: Column, rows: list[list[str | Text]], i: int) -> int:
    """The narrowest a column may be in the boxed table: a short one its whole width, a long one
    its longest word (never split) and at least LONG_MIN."""
    width = _width_of(col, rows, i)
    if col.short:
        return width
    return max(min(width, LONG_MIN), _longest_word([col.header] + [_plain(r[i]) for r in rows]))


def _fitted(naturals: list[int], minimums: list[int], available: int) -> list[int]:
    """Column widths within ``available``: the column with the most room to spare gives it up
    first, none below its minimum (rich's own squeeze splits words and shrinks short columns)."""
    widths = list(naturals)
    excess = sum(widths) - available
    while excess > 0:
        i = max(range(len(widths)), key=lambda k: widths[k] - minimums[k])
        if widths[i] <= minimums[i]:
            break
        widths[i] -= 1
        excess -= 1
    return widths


def _boxed(headers: list[str], widths: list[int], justify: list[str]) -> Table:
    from rich.table import Table

    table = Table()
    for header, width, side in zip(headers, widths, justify):
        table.add_column(header, width=width, overflow="fold", justify=side)
    return table


def full_table(columns: list[Column], rows: list[list[str | Text]], *, width: int | None = None) -> Table:
    """The boxed table: at its natural width, or fitted to ``width`` by wrapping long columns."""
    widths = [_width_of(c, rows, i) for i, c in enumerate(columns)]
    if width is not None:
        widths = _fitted(widths, [_min_width(c, rows, i) for i, c in enumerate(columns)],
                         width - 1 - BORDER * len(columns))
    table = _boxed([c.header for c in columns], widths, [c.justify for c in columns])
    for r in rows:
        table.add_row(*r)
    return table


def _full_fits(columns: list[Column], rows: list[list[str | Text]], width: int) -> bool:
    need = 1 + sum(BORDER + _min_width(c, rows, i) for i, c in enumerate(columns))
    return need <= width


def visible(cell):
    """A cell with control bytes as visible escapes (``\x1b``): a value read from a document
    (a model name in a bench file) must not move the cursor or clear the screen."""
    from rich.text import Text

    from envctl.console import _CONTROLS

    if isinstance(cell, Text):
        return Text(_CONTROLS.sub(lambda m: repr(m.group())[1:-1], cell.plain), style=cell.style) \
            if _CONTROLS.search(cell.plain) else cell
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], cell) if isinstance(cell, str) else cell


def render(columns: list[Column], rows: list[list[str | Text]], *, width: int,
           wide: bool = False) -> RenderableType:
    """The table for a terminal ``width`` columns wide (``wide``: everything in one table)."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    rows = [[visible(c) for c in r] for r in rows]
    if wide:
        return full_table(columns, rows)
    if _full_fits(columns, rows, width):
        return full_table(columns, rows, width=width)
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


def render_grid(corner: str, labels: list[str], rows: list[list[str | Text]], *, width: int) -> RenderableType:
    """A grid of short values: ``rows`` are [name, value per label].  Labels wrap between words in
    their headers; when the grid is still too wide, the columns are numbered under a legend."""
    from rich.console import Group
    from rich.text import Text

    rows = [[visible(c) for c in r] for r in rows]
    labels = [visible(label) for label in labels]

    first = max([len(corner)] + [len(_plain(r[0])) for r in rows])
    cells = [max([1] + [len(_plain(r[j + 1])) for r in rows]) for j in range(len(labels))]
    available = width - 1 - BORDER * (len(labels) + 1)
    headers, legend = labels, []
    minimums = [first] + [max(c, _longest_word([label])) for c, label in zip(cells, labels)]
    if sum(minimums) > available:
        headers = [str(j + 1) for j in range(len(labels))]
        legend = [Text(f"{j + 1} = {label}", overflow="fold") for j, label in enumerate(labels)]
        minimums = [first] + [max(c, len(h)) for c, h in zip(cells, headers)]
    if sum(minimums) > available:  # not even numbered: one record per row, as any table
        return render([Column(corner), *(Column(label) for label in labels)], rows, width=width)
    naturals = [first] + [max(c, len(h)) for c, h in zip(cells, headers)]
    widths = _fitted(naturals, minimums, available)
    table = _boxed([corner, *headers], widths, ["left"] * len(widths))
    for r in rows:
        table.add_row(*r)
    return Group(table, *legend)


def render_record(pairs: list[tuple[str, str | Text]], *, width: int) -> RenderableType:
    """Keys and values (``envctl show``): a value wraps between words beside its key; one with a
    word too wide for that room starts on the line under its key, indented, so it is not split."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    key_width = max(len(key) for key, _ in pairs)
    room = width - key_width - GAP
    parts: list[RenderableType] = []
    for key, value in pairs:
        text = value if isinstance(value, Text) else Text(value)
        text.overflow = "fold"  # only a word wider than the whole terminal is folded
        if _longest_word([text.plain]) <= room:
            row = Table(box=None, show_header=False, pad_edge=False, padding=(0, GAP // 2))
            row.add_column(width=key_width, no_wrap=True, style="bold")
            row.add_column(max_width=room, overflow="fold")
            row.add_row(key, text)
            parts.append(row)
        else:
            parts += [Text(key, style="bold"), Padding(text, (0, 0, 0, 4), expand=False)]
    return Group(*parts)


def print_table(console: Console, columns: list[Column], rows: list[list[str | Text]], *,
                wide: bool = False) -> None:
    renderable = render(columns, rows, width=console.width, wide=wide)
    if wide:
        print_natural(console, renderable)
    else:
        console.print(renderable)


def print_natural(console: Console, renderable: RenderableType) -> None:
    """At its natural width, not cut to the terminal: for scripts and wide screens."""
    natural = console.measure(renderable, options=console.options.update(width=10_000)).maximum
    width = console.width
    console.width = max(width, natural)  # print(width=) is capped at the console's own width
    try:
        console.print(renderable, crop=False)
    finally:
        console.width = width
