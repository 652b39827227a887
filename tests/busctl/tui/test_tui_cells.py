"""The TUI's tables draw again only what changed (``busctl/tui/_cells.py``).

``DataTable`` throws away every drawn cell whenever a row is added or a cell
updated anywhere: at ten events a second the activity log rendered each
visible cell ten times a second through Rich. These tests count what is
rendered (the console's ``render_lines``, which every cell drawn goes
through) and check that what is shown stays right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from busctl.tui._cells import CACHED
from busctl.tui.activity import ActivityLog
from busctl.tui.tables import MeasuredTable
from tests.busctl.tui.pilot_helpers import shown_lines

pytestmark = pytest.mark.timeout(60)

COLUMNS = ("time", "kind", "name", "service", "detail")
ROWS = 30


class _OneTable(App[None]):
    CSS = "DataTable { height: 1fr; }"

    def __init__(self, make: Callable[[], Any]) -> None:
        super().__init__()
        self._make = make

    def compose(self) -> ComposeResult:
        yield self._make()


def _count_renders(app: App[None]) -> list[int]:
    # Every cell a DataTable draws goes through the console's render_lines
    # (which calls itself for what the cell holds: counted once).
    count, depth = [0], [0]
    render_lines = app.console.render_lines

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += depth[0] == 0
        depth[0] += 1
        try:
            return render_lines(*args, **kwargs)
        finally:
            depth[0] -= 1

    app.console.render_lines = counted  # type: ignore[method-assign]
    return count


def _row(i: int) -> tuple[Text, ...]:
    return tuple(Text(f"{column}-{i}") for column in COLUMNS)


def test_textual_draws_cells_as_this_was_written_for():
    # Another Textual release with another _render_cell would silently fall
    # back to drawing every cell again: this says so instead.
    assert CACHED


def test_a_new_row_renders_its_own_cells_and_no_others(run_app):
    async def body():
        app = _OneTable(lambda: MeasuredTable())
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one(MeasuredTable)
            table.add_columns(*COLUMNS)
            for i in range(ROWS):
                table.add_row(*_row(i), key=str(i))
            await pilot.pause()
            await pilot.pause()
            count = _count_renders(app)
            table.add_row(*_row(ROWS), key=str(ROWS))
            await pilot.pause()
            await pilot.pause()
            shown = shown_lines(table)
            assert any(f"name-{ROWS}" in line for line in shown), shown
            # The new row's cells, and the headings' if DataTable redraws
            # them; without the cache every visible cell: 31 rows of 5.
            assert 0 < count[0] <= 2 * len(COLUMNS), count[0]

    run_app(body)


def test_an_updated_cell_is_drawn_anew_and_its_neighbours_are_kept(run_app):
    async def body():
        app = _OneTable(lambda: MeasuredTable())
        async with app.run_test(size=(120, 20)) as pilot:
            table = app.query_one(MeasuredTable)
            table.add_columns(*COLUMNS)
            for i in range(5):
                table.add_row(*_row(i), key=str(i))
            await pilot.pause()
            count = _count_renders(app)
            # As wide as what it replaces: a wider one widens its column, and
            # every row is drawn again at the new widths (as it must be).
            table.update_cell("2", table.ordered_columns[2].key, Text("NAME-2"))
            await pilot.pause()
            await pilot.pause()
            shown = shown_lines(table)
            row = next(line for line in shown if "time-2" in line)
            assert "NAME-2" in row
            assert "name-2" not in row
            assert all(f"name-{i}" in "".join(shown) for i in (0, 1, 3, 4))
            assert 0 < count[0] <= 2 * len(COLUMNS), count[0]

    run_app(body)


def test_the_cursor_moving_redraws_the_rows_it_leaves_and_enters(run_app):
    async def body():
        app = _OneTable(lambda: MeasuredTable(cursor_type="row"))
        async with app.run_test(size=(120, 20)) as pilot:
            table = app.query_one(MeasuredTable)
            table.add_columns(*COLUMNS)
            for i in range(5):
                table.add_row(*_row(i), key=str(i))
            table.focus()
            await pilot.pause()
            before = table.render_line(2)  # row 1 (line 0 is the heading)
            await pilot.press("down")
            await pilot.pause()
            after = table.render_line(2)
            assert after.text == before.text  # the same text...
            assert after != before  # ...now drawn as the cursor's row

    run_app(body)


def test_the_activity_log_under_a_stream_renders_only_new_rows(run_app):
    async def body():
        app = _OneTable(lambda: ActivityLog())
        async with app.run_test(size=(120, 40)) as pilot:
            log = app.query_one(ActivityLog)

            def entries(start: int, count: int) -> list[dict[str, Any]]:
                return [
                    {"kind": "event", "name": f"tick.{i}", "time": 1.7e9 + i, "seq": i,
                     "caller": "clock", "args": "[]"}
                    for i in range(start, start + count)
                ]  # fmt: skip

            log.add(entries(0, 30))
            await pilot.pause()
            await pilot.pause()
            count = _count_renders(app)
            for batch in range(5):  # five drains of two rows each
                log.add(entries(30 + 2 * batch, 2))
                await pilot.pause()
            await pilot.pause()
            assert any("tick.39" in line for line in shown_lines(log.table))
            columns = len(log.table.columns)
            # Ten new rows' cells, the rows the cursor left and entered, and
            # the headings: far fewer than the ~35 visible rows per drain.
            assert count[0] <= 10 * columns + 5 * 2 * columns + 5 * columns, count[0]

    run_app(body)
