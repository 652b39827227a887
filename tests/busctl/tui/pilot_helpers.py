"""Helpers for the Pilot tests: wait for a condition, read what a widget shows, open a form."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from rich.console import Console
from textual.widget import Widget
from textual.widgets import Checkbox, DataTable, Static

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.tables import CommandsTable, ListenersTable
from busctl.tui.trace_screen import TraceScreen


async def until(
    pilot: Any,
    condition: Callable[[], object],
    timeout: float = 10.0,
    message: Callable[[], object] = lambda: "",
) -> None:
    """Let the app run until ``condition()`` holds (the UI's timers do the work)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}: {message()}")
        await pilot.pause(0.05)


def plain(static: Static) -> str:
    """What a ``Static`` shows, as plain text."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(static.content)
    return console.export_text()


def shown_lines(widget: Widget) -> list[str]:
    """The lines a line-API widget (a ``DataTable``) draws now, as plain text."""
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


def result_text(screen: InvokeScreen) -> str:
    """What a call or fire form shows under it: the result, or the error."""
    return plain(screen.query_one("#result", Static))


async def opened_form(app: BusctlApp, pilot: Any, opener: Callable[[], None]) -> InvokeScreen:
    """Call ``opener`` once the app has read the bus; return the form it opens, composed."""
    await until(pilot, lambda: app.inspected is not None)
    opener()
    screen = await _form_on_top(app, pilot)
    await pilot.pause()
    return screen


async def command_form(app: BusctlApp, pilot: Any, name: str) -> InvokeScreen:
    """Open the form of command ``name`` as a user does: tab 2, its row, Enter."""
    await pilot.press("2")
    table = app.query_one(CommandsTable)
    await until(pilot, lambda: name in table.items)
    return await _enter_on(app, pilot, table, table.get_row_index(name))


async def listener_form(app: BusctlApp, pilot: Any, event: str) -> InvokeScreen:
    """Open the fire form of ``event`` as a user does: tab 3, its listener's row, Enter."""
    await pilot.press("3")
    table = app.query_one(ListenersTable)
    await until(pilot, lambda: table.row_count >= 4)
    row = next(i for i in range(table.row_count) if event in table.get_row_at(i)[0])
    return await _enter_on(app, pilot, table, row)


async def _enter_on(app: BusctlApp, pilot: Any, table: DataTable[Any], row: int) -> InvokeScreen:
    table.move_cursor(row=row)
    await pilot.press("enter")
    return await _form_on_top(app, pilot)


async def _form_on_top(app: BusctlApp, pilot: Any) -> InvokeScreen:
    await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
    screen = app.screen
    assert isinstance(screen, InvokeScreen)
    return screen


async def open_failed_call(app: BusctlApp, pilot: Any, bus: Any) -> TraceScreen:
    """Make ``lights.turn_on`` fail on ``bus``, then open its trace as a user does.

    The errors-only filter, the failed return's row, Enter; returns the trace
    screen once it is on top (its spans may still be loading).
    """
    log = app.query_one(ActivityLog)
    log.query_one("#activity-errors", Checkbox).value = True
    with pytest.raises(ValueError, match="brightness"):
        bus.execute_command("lights.turn_on", "hall", 500).result(timeout=5)
    await until(pilot, lambda: log.entries())
    log.table.focus()
    await pilot.pause()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, TraceScreen))
    assert isinstance(app.screen, TraceScreen)
    return app.screen
