"""The TUI shows what a bus sends and obeys none of it: control characters, markup.

A DataTable reads a ``str`` cell as markup, as ``Static``, tooltips, the
command palette's help and notifications do: ``[red]`` in a signature was
applied (``list[str]`` lost its ``[str]``) and ESC passed through to the
terminal. Every such text is now a ``Text`` with its controls made visible.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable, Static

from bus import Bus, Service, command, listener
from busctl.tui._local_source import LocalSource
from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.palette import BusCommands
from busctl.tui.tables import CommandsTable, ListenersTable, ServicesTable
from busctl.tui.trace_screen import TraceScreen, span_detail
from tests.busctl.tui.pilot_helpers import until

pytestmark = pytest.mark.timeout(60)

EVIL = "\x1b]0;pwned\x07\x9b31mred\u202eevil\u2028[red]x[/]\x7f\nnext"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class Evil(Service):
    name = "evil"

    @command("evil.echo")
    def echo(self, items: list[str] | None = None, text: str = EVIL) -> str:
        """Echo \x1b[2J[bold]loud[/bold]\u202e text."""
        return EVIL

    @command("evil.fail")
    def fail(self) -> None:
        """Fail."""
        raise ValueError(EVIL)

    @listener("evil.*")
    def on_any(self, *args: object) -> None:
        """Hear everything."""


def plain(renderable: Any) -> str:
    console = Console(width=300, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def cells(table: DataTable[Any]) -> list[Any]:
    return [cell for row in range(table.row_count) for cell in table.get_row_at(row)]


def check_cells(table: DataTable[Any]) -> list[str]:
    """Every cell: a ``Text`` (or our own plain text), nothing raw. Returns the texts."""
    texts = []
    for cell in cells(table):
        if isinstance(cell, str):
            # Our own numbers and times only: a str cell is read as markup.
            assert "[" not in cell, repr(cell)
            assert not RAW.search(cell), repr(cell)
            texts.append(cell)
        else:
            assert isinstance(cell, Text), type(cell)
            assert not RAW.search(cell.plain), repr(cell.plain)
            texts.append(cell.plain)
    return texts


def test_tables_log_trace_form_and_palette_show_bus_text(run_app):
    async def body() -> None:
        with Bus(name="eviltui") as bus:
            bus.add_service(Evil())
            source = LocalSource(bus)
            app = BusctlApp(source=source, poll=0.1)
            async with app.run_test(size=(160, 40)) as pilot:
                commands = app.query_one(CommandsTable)
                await until(pilot, lambda: commands.row_count == 2)
                texts = check_cells(commands)
                signature = next(t for t in texts if "items" in t)
                assert "list[str]" in signature  # was eaten as a [str] tag
                check_cells(app.query_one(ListenersTable))
                check_cells(app.query_one(ServicesTable))

                bus.execute_command("evil.echo").result(timeout=5)
                with pytest.raises(ValueError, match="pwned"):
                    bus.execute_command("evil.fail").result(timeout=5)
                log = app.query_one(ActivityLog)
                await until(pilot, lambda: len(log.entries()) >= 4)
                texts = check_cells(log.table)
                assert any("\\x9b31mred\\u202eevil" in t for t in texts), texts

                failure = next(a for a in log.entries() if a.get("error"))
                screen = TraceScreen(source, str(failure["trace_id"]))
                await app.push_screen(screen)
                await until(pilot, lambda: screen.spans)
                check_cells(screen.query_one("#waterfall", DataTable))
                detail = plain(span_detail(screen.spans[-1]))
                assert "ValueError: \\x1b]0;pwned\\x07" in detail
                assert not RAW.search(detail)
                app.pop_screen()
                await pilot.pause()

                entry = next(c for c in app.inspected["commands"] if c["name"] == "evil.echo")
                form = InvokeScreen(source, "command", entry)
                await app.push_screen(form)
                await pilot.pause()
                doc = plain(form.query_one("#invoke-doc-text", Static).content)
                assert "Echo \\x1b[2J[bold]loud[/bold]\\u202e text." in doc
                await pilot.press("ctrl+r")
                result = form.query_one("#result", Static)
                await until(pilot, lambda: "result" in plain(result.content))
                assert "\\x9b31mred" in plain(result.content)
                assert not RAW.search(plain(result.content))
                app.pop_screen()
                await pilot.pause()

                for _, help_text, _ in BusCommands(app.screen)._entries():
                    shown = Content.from_markup(help_text).plain
                    assert not RAW.search(shown)
                helps = [h for _, h, _ in BusCommands(app.screen)._entries()]
                assert any("list[str]" in Content.from_markup(h).plain for h in helps)
            source.close()

    run_app(body)
