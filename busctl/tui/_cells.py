"""A ``DataTable`` that draws again only the cells that changed.

``DataTable`` keys every cached cell, row and line by a count that each
``add_row`` and ``update_cell`` moves on, so one new row in the activity log
throws away every drawn cell of the table and the next frame renders each
visible cell again through Rich: at ten events a second, 40% of a CPU for a
console that shows a few new rows. ``CellCachedTable`` keeps each drawn cell
under what it was drawn from: the cell's value (the very object: a changed
cell is a new one), its row and column indices (a drawn cell carries its
row's index for the mouse), its width and height, and the styles that apply.
A new row renders its own cells; the rest come from the cache.

It overrides ``DataTable._render_cell``, which is not public: if Textual's
signature differs from the one this was written against, the table keeps
Textual's own drawing (``CACHED``).
"""

from __future__ import annotations

import inspect
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.widgets import DataTable

__all__ = ["CACHED", "CellCachedTable"]

_SIGNATURE = ["self", "row_index", "column_index", "base_style", "width", "cursor", "hover"]
#: Whether ``CellCachedTable`` draws from its own cache (Textual's signature is the known one).
CACHED = list(inspect.signature(DataTable._render_cell).parameters) == _SIGNATURE
_MOST = 10_000  # drawn cells kept, as DataTable's own cell cache


class CellCachedTable(DataTable[Any]):
    """A ``DataTable`` whose drawn cells survive rows added and cells updated elsewhere."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # (row, column) key -> (value, what else it was drawn with, its lines).
        # Made first: DataTable's watchers clear caches while it initialises.
        self._drawn: dict[tuple[Any, Any], tuple[Any, tuple[Any, ...], list[list[Segment]]]] = {}
        super().__init__(*args, **kwargs)

    def notify_style_update(self) -> None:
        """Styles changed (a theme, a pseudo-class, a heading cut): draw every cell again."""
        super().notify_style_update()
        self._drawn.clear()

    def _clear_caches(self) -> None:
        super()._clear_caches()  # the cursor was turned on or off, or rows sorted
        self._drawn.clear()

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        column_key = self._column_locations.get_key(column_index) if CACHED else None
        row_key = self._row_locations.get_key(row_index) if row_index >= 0 else None
        if column_key is None or (row_key is None and row_index >= 0):
            # Not CACHED, a row label (the bus's tables have none), or no such row.
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if row_key is None:  # the headings' row
            row_key, value = self._header_row_key, self.columns[column_key].label
            height = self.header_height
        else:
            value, height = self._data[row_key][column_key], self.rows[row_key].height
        drawn_with = (
            row_index,
            column_index,
            base_style,
            width,
            height,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self.cursor_type,
            self._pseudo_class_state,
        )
        key = (row_key, column_key)
        found = self._drawn.get(key)
        if found is not None and found[0] is value and found[1] == drawn_with:
            return found[2]
        lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        if len(self._drawn) >= _MOST:
            self._drawn.clear()
        self._drawn[key] = (value, drawn_with, lines)
        return lines
