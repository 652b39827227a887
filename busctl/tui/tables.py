"""The live tables: services, commands and listeners, updated in place.

    table = ServicesTable(id="services")
    table.show(inspect_result)      # on every poll: only changed cells are redrawn

Rows are keyed by name, so an update changes cells where they differ, adds
and removes rows at the edges, and leaves the cursor on the row it was on: no
flicker, no jumping. Columns of free text (a signature, a thread list, an
error) share the width the others leave and are cut with an ellipsis, so the
numbers stay on screen however narrow the terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

from busctl.render.columns import COMMANDS, LISTENERS, SERVICES, Table, across
from busctl.render.fit import cut, share

from ._cells import CellCachedTable
from ._format import styled

__all__ = [
    "CommandsTable",
    "FitTable",
    "ListenersTable",
    "LiveTable",
    "MeasuredTable",
    "ServicesTable",
    "clear_rows",
    "fit_columns",
    "layout",
    "share",
]

Cells = tuple[Any, ...]


def _text(value: Any) -> Text:
    # DataTable reads a str cell as Rich markup: "list[int]" would lose "[int]".
    return value if isinstance(value, Text) else Text(str(value))


def _width(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.splitlines()), default=0)


def clear_rows(table: DataTable[Any]) -> None:
    """Remove every row of ``table``, and the widths its cells gave its columns.

    ``DataTable.clear`` keeps each auto-width column as wide as its widest
    cell ever was (Textual issue #3449): rows drawn again narrower, for a
    narrower terminal or other data, would still be cut at the screen's edge.
    """
    table.clear()
    fit_columns(table)


def fit_columns(table: DataTable[Any]) -> None:
    """Make each auto-width column of ``table`` as wide as its widest cell, now.

    DataTable measures cells it was given only when idle: rows put back after
    ``clear_rows`` would be drawn cut to their columns' headings until then.
    """
    for key, column in table.columns.items():
        if column.auto_width:
            cells = (_cell_width(value) for value in table.get_column(key))
            column.content_width = max([_width(column.label), *cells])
    table.refresh()


def _cell_width(value: Any) -> int:
    if isinstance(value, Text):
        return _width(value)
    if isinstance(value, str):  # DataTable reads a str cell as markup
        return _width(Text.from_markup(value))
    return _width(Text(str(value)))


class MeasuredTable(CellCachedTable):
    """A ``DataTable`` that never shows a row cut to a column width it has since outgrown.

    ``DataTable`` measures new cells when it is next idle, and caches each
    drawn row under a count that adding a row moves on but measuring does
    not. A frame drawn between the two (how often depends on the event
    loop's scheduling: on Python 3.12 it happens at start-up) is cached with
    the labels' widths, and those cut rows stay on screen until the next
    change. Here, a draw at widths other than the last draw's first drops the
    cached rows, so every row is drawn at the widths the table now has.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawn_widths: tuple[int, ...] = ()

    def render_line(self, y: int) -> Strip:
        """Draw line ``y``, first dropping rows cached at other column widths."""
        widths = tuple(column.get_render_width(self) for column in self.ordered_columns)
        if widths != self._drawn_widths:
            self._drawn_widths = widths
            # DataTable's hook for "what was drawn is stale": it empties the
            # render caches (public, unlike the caches themselves).
            self.notify_style_update()
        return super().render_line(y)


class FitTable(MeasuredTable):
    """A ``DataTable`` of keyed rows whose ``FLEX`` columns fit the width the others leave.

    Subclasses set ``COLUMNS`` (key, label) and ``FLEX`` (keys of the columns
    that give way). Rows are put with ``put_rows``/``put_cell``; every cell is
    shown as text (never read as markup), and a flexible cell that does not fit
    is cut with an ellipsis. ``full_row(key)`` is the row as given, uncut.
    """

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    FLEX: ClassVar[tuple[str, ...]] = ()
    FLEX_WEIGHTS: ClassVar[dict[str, int]] = {}
    """How much of the width left each flexible column gets, relatively (default 1)."""
    KEEP_END: ClassVar[tuple[str, ...]] = ()
    """Flexible columns cut at their start (``…o/greeter``): their end says the most."""
    FLEX_LEAST: ClassVar[int] = 8
    """Cells a flexible column keeps however narrow the table (it scrolls then)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        # The class's layout, until ``relayout`` gives another.
        self._columns = self.COLUMNS
        self._flex = self.FLEX
        self._weights = self.FLEX_WEIGHTS
        self._keep_end = self.KEEP_END
        self._keys = [key for key, _ in self._columns]
        self._full: dict[str, tuple[Text, ...]] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._wants = {key: cell_len(label) for key, label in self._columns}
        self._widths: dict[str, int] = {}

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    def relayout(
        self,
        columns: tuple[tuple[str, str], ...],
        flex: tuple[str, ...],
        weights: dict[str, int],
        keep_end: tuple[str, ...],
    ) -> None:
        """Other columns (as ``layout`` gives them): every row and column is put anew."""
        self._columns, self._flex, self._weights, self._keep_end = columns, flex, weights, keep_end
        self._keys = [key for key, _ in columns]
        self._full.clear()
        self._cells.clear()
        self._widths = {}
        self._wants = {key: cell_len(label) for key, label in columns}
        self.clear(columns=True)
        for key, label in columns:
            self.add_column(label, key=key)

    def has_row(self, key: str) -> bool:
        """Whether a row of key ``key`` is in the table."""
        return key in self._full

    def full_row(self, key: str) -> tuple[Text, ...]:
        """The cells of row ``key`` as given, before any is cut to fit."""
        return self._full[key]

    def put_rows(self, rows: Iterable[tuple[str, Cells]]) -> None:
        """Hold exactly ``rows`` (key, cells): changed cells are redrawn, new rows added last."""
        full = {key: tuple(_text(c) for c in cells) for key, cells in rows}
        for key in [k for k in self._cells if k not in full]:
            del self._cells[key]
            with contextlib.suppress(RowDoesNotExist):
                self.remove_row(key)
        self._full = full
        for index, (key, label) in enumerate(self._columns):
            self._wants[key] = max([cell_len(label), *(_width(c[index]) for c in full.values())])
        self._fit()

    def put_cell(self, key: str, column: str, value: Any) -> None:
        """Change one cell of row ``key`` (cheap however many rows there are)."""
        index = self._keys.index(column)
        cells = list(self._full[key])
        before, cells[index] = _width(cells[index]), _text(value)
        self._full[key] = tuple(cells)
        width = _width(cells[index])
        if width >= self._wants[column]:
            self._wants[column] = width
        elif before == self._wants[column]:  # it may have been the widest: count again
            label = dict(self._columns)[column]
            self._wants[column] = max(
                [cell_len(label), *(_width(c[index]) for c in self._full.values())]
            )
        self._fit(only=key)

    def reset(self) -> None:
        """Remove every row."""
        self._full.clear()
        self._cells.clear()
        self._wants = {key: cell_len(label) for key, label in self._columns}
        clear_rows(self)

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def watch_show_vertical_scrollbar(self) -> None:
        # A scroll bar that comes or goes as rows do narrows or widens the
        # room, and no Resize need follow (the widget's region is the same).
        self._fit()

    def _fit(self, only: str | None = None) -> None:
        widths = self._flex_widths()
        if widths != self._widths:
            self._widths = widths
            self._cut_labels()
            only = None  # every row is cut anew
        rows = self._full if only is None else {only: self._full[only]}
        for row, full in rows.items():
            cells = tuple(
                self._cut(cell, widths[key], key in self._keep_end) if key in widths else cell
                for key, cell in zip(self._keys, full, strict=True)
            )
            old = self._cells.get(row)
            if old is None:
                self.add_row(*cells, key=row)
            elif old != cells:
                for key, new, was in zip(self._keys, cells, old, strict=True):
                    if new != was:
                        self.update_cell(row, key, new, update_width=True)
            self._cells[row] = cells
        if only is None:
            self._measure()

    def _cut_labels(self) -> None:
        # A DataTable column is never narrower than its label: a heading wider
        # than its column's share is cut as the printed tables cut theirs, or
        # the table would run a cell or more past the screen's edge.
        changed = False
        for key, label in self._columns:
            column = self.columns.get(ColumnKey(key))
            if column is None:
                continue
            shown = cut(label, self._widths[key]) if key in self._widths else label
            if column.label.plain != shown:
                column.label, changed = Text(shown), True
        if changed:
            self.notify_style_update()  # the heading's cached line is stale

    def _label_width(self, key: str, label: str) -> int:
        return cell_len(cut(label, self._widths[key])) if key in self._widths else cell_len(label)

    def _measure(self) -> None:
        # DataTable grows a column to its widest cell but seldom shrinks it:
        # not when rows are cleared or removed (Textual issue #3449), and only
        # when idle when cells are cut narrower. Every row was just (re)cut,
        # so set each column to what its cells now take.
        changed = False
        for index, (key, label) in enumerate(self._columns):
            column = self.columns.get(ColumnKey(key))
            if column is None or not column.auto_width:
                continue
            cells = (_width(c[index]) for c in self._cells.values())
            width = max([self._label_width(key, label), *cells])
            if column.content_width != width:
                column.content_width, changed = width, True
        if changed:
            self._require_update_dimensions = True
            self.refresh()

    @staticmethod
    def _cut(cell: Text, width: int, keep_end: bool = False) -> Text:
        if _width(cell) <= width:
            return cell
        if keep_end and width > 1:
            # Whole characters from the end, as many as fit after the ellipsis.
            plain, room, start = cell.plain, width - 1, len(cell.plain)
            while start > 0 and cell_len(plain[start - 1 :]) <= room:
                start -= 1
            return Text("…", style=cell.style) + cell[start:]
        cut = cell.copy()
        cut.truncate(width, overflow="ellipsis")
        return cut

    def _flex_widths(self) -> dict[str, int]:
        if not self._flex:
            return {}
        # Hidden (another tab) or not laid out yet: the screen's width is the best guess.
        room = self.scrollable_content_region.width or self.app.size.width
        pad = 2 * self.cell_padding
        for key in self._keys:
            room -= pad if key in self._flex else self._wants[key] + pad
        flex = [key for key in self._flex if key in self._wants]
        wants = [self._wants[key] for key in flex]
        weights = [self._weights.get(key, 1) for key in flex]
        shares = share(room, wants, self.FLEX_LEAST, weights)
        return dict(zip(flex, shares, strict=True))


class LiveTable(FitTable):
    """A table of one part of ``inspect()``, replaced by key, keeping the cursor.

    Subclasses set ``SPEC`` (a ``busctl.render.columns.Table``) and the
    ``COLUMNS``, ``FLEX``, ``FLEX_WEIGHTS`` and ``KEEP_END`` that ``layout(SPEC)``
    gives.
    """

    SPEC: ClassVar[Table]

    @dataclass
    class Chosen(Message):
        """A row was chosen (Enter or a click on the highlighted row)."""

        table: LiveTable
        key: str
        item: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.items: dict[str, dict[str, Any]] = {}
        self.spec = self.SPEC

    def table_rows(self, inspected: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], Cells]]:
        """(row key, the inspect entry, the cells) for each row, in the TUI's colours."""
        for key, entry, cells in self.spec.rows(inspected):
            yield key, dict(entry), tuple(styled(cell) for cell in cells)

    def show(self, inspected: dict[str, Any]) -> None:
        """Bring the table in line with ``inspected``, touching only what changed.

        A bus across processes (over NATS) gets the table with the processes'
        column (``busctl.render.columns.across``).
        """
        spec = across(self.SPEC, inspected)
        if spec is not self.spec:
            self.spec = spec
            self.relayout(*layout(spec))
        rows = list(self.table_rows(inspected))
        self.items = {key: item for key, item, _ in rows}
        self.put_rows((key, cells) for key, _, cells in rows)

    def current(self) -> tuple[str, dict[str, Any]] | None:
        """The key and entry of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        if key is None or key not in self.items:
            return None
        return key, self.items[key]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None and key in self.items:
            self.post_message(self.Chosen(self, key, self.items[key]))


def layout(
    spec: Table,
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...], dict[str, int], tuple[str, ...]]:
    """``COLUMNS``, ``FLEX``, ``FLEX_WEIGHTS`` and ``KEEP_END`` of a ``LiveTable`` of ``spec``.

    The columns are ``busctl.render.columns``'s, the same as ``busctl
    services`` prints, headed in lower case.
    """
    columns = tuple((column.key, column.header.lower()) for column in spec.columns)
    flex = tuple(column.key for column in spec.columns if column.flex)
    weights = {column.key: column.flex for column in spec.columns if column.flex}
    keep_end = tuple(column.key for column in spec.columns if column.keep == "end")
    return columns, flex, weights, keep_end


class ServicesTable(LiveTable):
    """Each service: state, what it is doing, threads, mailbox, handled, failed, dropped.

    A service the bus marks ``failed`` is red from its name on, its state
    saying why.
    """

    SPEC = SERVICES
    COLUMNS, FLEX, FLEX_WEIGHTS, KEEP_END = layout(SERVICES)


class CommandsTable(LiveTable):
    """Each command: owner, read-only, signature, calls, errors, p50/p99; stubs marked."""

    SPEC = COMMANDS
    COLUMNS, FLEX, FLEX_WEIGHTS, KEEP_END = layout(COMMANDS)
    # Owner and signature both give way here: at 80 columns, with the
    # read-only column, 8 cells each would push the latencies off screen.
    FLEX_LEAST = 6


class ListenersTable(LiveTable):
    """Each listener, in delivery order: pattern, owner, handler, deliveries, errors, p50."""

    SPEC = LISTENERS
    COLUMNS, FLEX, FLEX_WEIGHTS, KEEP_END = layout(LISTENERS)
