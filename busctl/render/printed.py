"""The printing faces' side of rendering: rich tables, coloured activity lines, JSON.

    out.print(registry_table(COMMANDS, snapshot, colour=True))
    out.print(grid(["NAME", "PID"], [["home", 4242]], right=["PID"], colour=False))
    out.print(activity_markup(activity_view(activity)), markup=True)
    out.print(json_highlighted(visible_json(text)))

The CLI and the REPL both print to a rich ``Console``: the same tables, the
same activity lines, the same JSON, coloured only when ``colour`` (a
terminal, ``NO_COLOR`` unset). The TUI draws the same cells with Textual
(``busctl.tui``). Every cell is visible text, escaped for rich markup here,
so ``[red]`` in a name is shown, not applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .activity import NAME_WIDTH, ActivityView
from .columns import Cell, Table, Tone
from .fit import cut, share
from .text import visible

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.table import Table as RichTable
    from rich.text import Text

__all__ = [
    "TONE_STYLES",
    "FittedTable",
    "activity_markup",
    "grid",
    "json_highlighted",
    "registry_table",
]

TONE_STYLES: dict[Tone, str] = {"": "", "bad": "red", "warn": "yellow", "good": "", "strong": ""}
"""How a printed cell of each tone looks on a terminal: only trouble stands out."""

_KIND_STYLES = {"call": "cyan", "return": "green", "event": "magenta", "delivery": "blue"}


def grid(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    colour: bool,
    right: Iterable[str] = (),
    title: str | None = None,
) -> RichTable:
    """A plain table: ``columns`` headings, ``right`` the right-aligned ones (numbers)."""
    from rich.markup import escape

    table = _frame(colour, title)
    aligned = set(right)
    for name in columns:
        table.add_column(name, justify="right" if name in aligned else "left", overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else escape(visible(cell)) for cell in row))
    return table


def registry_table(table: Table, snapshot: Mapping[str, Any], *, colour: bool) -> FittedTable:
    """``table`` (``busctl.render.columns``) of an ``inspect()`` snapshot, fit to the console."""
    return FittedTable(table, [cells for _, _, cells in table.rows(snapshot)], colour=colour)


class FittedTable:
    """A registry table that fits the width it is printed in, one line per row.

    Names and numbers are printed whole; the free-text columns (``flex``:
    owners, signatures, errors) share the width left and are cut with an
    ellipsis, as the TUI cuts them (``busctl.render.fit``). A pipe or a file
    is 200 columns wide (``busctl.cli._output``): little is cut there, and
    ``--json`` has every value whole.
    """

    LEAST = 6  # cells a free-text column keeps, if the others fit beside it
    SMALLEST = 3  # ...and however narrow the console: then the table is too wide

    def __init__(self, table: Table, rows: list[tuple[Cell, ...]], *, colour: bool) -> None:
        self.table = table
        self.rows = rows
        self.colour = colour

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RichTable]:
        yield self.fit(options.max_width)

    def fit(self, width: int) -> RichTable:
        """The rich table of these rows, at most ``width`` cells wide where it can be."""
        from rich.cells import cell_len
        from rich.markup import escape

        columns = self.table.columns
        wants = [
            max([cell_len(column.header), *(cell_len(row[i].text) for row in self.rows)])
            for i, column in enumerate(columns)
        ]
        flex = [i for i, column in enumerate(columns) if column.flex]
        room = width - 2 * (len(columns) - 1)  # two cells between columns (``_frame``)
        room -= sum(want for i, want in enumerate(wants) if i not in flex)
        # Each keeps LEAST cells, fewer only if the others would not fit beside it.
        least = max(self.SMALLEST, min(self.LEAST, room // max(len(flex), 1)))
        shares = share(room, [wants[i] for i in flex], least, [columns[i].flex for i in flex])
        widths = dict(zip(flex, shares, strict=True))
        out = _frame(self.colour, None)
        for i, column in enumerate(columns):
            header = cut(column.header, widths[i]) if i in widths else column.header
            out.add_column(header, justify="right" if column.numeric else "left", no_wrap=True)
        for row in self.rows:
            texts = [
                cut(cell.text, widths[i], keep_end=columns[i].keep == "end")
                if i in widths
                else cell.text
                for i, cell in enumerate(row)
            ]
            out.add_row(
                *(
                    f"[{TONE_STYLES[cell.tone]}]{escape(text)}[/]"
                    if self.colour and TONE_STYLES[cell.tone]
                    else escape(text)
                    for cell, text in zip(row, texts, strict=True)
                )
            )
        return out


def activity_markup(view: ActivityView, *, trace: bool = False, process: object = None) -> str:
    """One activity line in rich markup: the kind in its colour, failures red.

    The same parts as ``busctl.render.activity.activity_line`` (``process``
    first, if given), with the kind's mark before it; every part is escaped.
    ``trace`` puts the short trace id after the time, as ``activity_line``
    does.
    """
    from rich.markup import escape

    style = "red" if view.failed else _KIND_STYLES.get(view.kind, "white")
    detail = f"[red]{escape(view.detail)}[/]" if view.failed else escape(view.detail)
    tail = f"  {view.tail}" if view.tail else ""
    lead = f"[cyan]{escape(visible(process))}[/] " if isinstance(process, str) and process else ""
    when = f"{view.time} [/][yellow]{escape(view.trace):<6}" if trace else view.time
    return (
        f"{lead}[dim]{when}[/] [{style}]{view.mark} {escape(view.kind):<8}[/] "
        f"[bold]{escape(view.name):<{NAME_WIDTH}}[/] "
        f"[dim]{escape(view.who)}[/] {detail}[dim]{escape(tail)}[/]"
    ).rstrip()


def json_highlighted(text: str) -> Text:
    """JSON text coloured as rich's ``JSON`` does, without parsing and dumping it again.

    (``rich.json.JSON`` re-dumps the data, which would undo ``visible_json``.)
    """
    from rich.highlighter import JSONHighlighter
    from rich.text import Text

    return JSONHighlighter()(Text(text))


def _frame(colour: bool, title: str | None) -> RichTable:
    from rich import box
    from rich.table import Table as RichTable

    return RichTable(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD if colour else None,
        header_style="bold" if colour else "",
        pad_edge=False,
        show_edge=False,
        # Two cells between columns either way: the box's rule gap takes one.
        collapse_padding=colour,
    )
