"""Helpers for the Pilot tests: wait for a condition, read what a widget shows."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from textual.widget import Widget
from textual.widgets import Static


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
