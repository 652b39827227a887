"""Cancelling a call the TUI started: Ctrl+G in its form, driven by Pilot against a real bus.

The bus runs ``Counted``: an async command that awaits an ``asyncio.Event``
nothing sets (counting the ``CancelledError`` it sees) and a sync one that
blocks its thread until released. It is reached over its control socket
(``ClientSource``) and in this process (``LocalSource``); both must behave
the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from bus import Bus
from busctl.tui.app import BusctlApp
from busctl.tui.help_screen import HELP
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.tables import CommandsTable
from tests.busctl.counted_services import Counted
from tests.busctl.served_buses import counted_bus
from tests.busctl.tui.pilot_helpers import opened_form, result_text, until

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 40)
WAIT = 20.0


@pytest.fixture
def counted_served() -> Iterator[tuple[Bus, Counted]]:
    """The bus ``counted_source`` reaches: ``Counted`` and ``Releaser``."""
    with counted_bus("cancel") as served:
        yield served


def footer_keys(screen: Screen[Any]) -> dict[str, bool]:
    """What the form's footer shows: each key's description -> whether it is enabled."""
    return {
        key.description: not key.has_class("-disabled")
        for key in screen.query_one(Footer).query(FooterKey)
    }


async def _running(app: BusctlApp, pilot: Any, name: str, counted: Counted) -> InvokeScreen:
    """Open the form of ``name``, run it, and return once its handler runs."""
    screen = await opened_form(app, pilot, lambda: app.open_invoke(name))
    # Shown, and idle: nothing to cancel yet.
    await until(
        pilot,
        lambda: footer_keys(screen).get("Cancel call") is False,
        message=lambda: footer_keys(screen),
    )
    await pilot.press("ctrl+r")
    await until(pilot, lambda: counted.started.is_set() and screen.running is not None)
    await until(pilot, lambda: footer_keys(screen).get("Cancel call") is True)
    return screen


def test_ctrl_g_cancels_a_running_async_call(counted_source, counted_served, run_app):
    bus, counted = counted_served

    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await _running(app, pilot, "counted.wait_async", counted)
            await pilot.press("ctrl+g")
            await until(
                pilot, lambda: screen.outcome is not None, WAIT, lambda: result_text(screen)
            )
            assert result_text(screen).strip() == (
                "cancelled counted.wait_async: its handler was interrupted (or never started)"
            )
            assert screen.running is None
            await until(pilot, lambda: footer_keys(screen)["Cancel call"] is False)

    run_app(body)
    assert bus.wait_idle(5)
    assert counted.cancelled == 1  # the handler saw CancelledError at its await


def test_ctrl_g_on_a_sync_call_says_it_cannot_be_interrupted(
    counted_source, counted_served, run_app
):
    bus, counted = counted_served

    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await _running(app, pilot, "counted.wait_sync", counted)
            await pilot.press("ctrl+r")  # again: refused, the running call kept in reach
            await until(pilot, lambda: bool(app._notifications))
            assert [n.message for n in app._notifications] == [
                "counted.wait_sync is still running: Ctrl+G cancels it, Esc leaves it running"
            ]
            app.clear_notifications()
            await pilot.press("ctrl+g")
            await until(pilot, lambda: screen.cancel_outcome is not None)
            assert screen.cancel_outcome == "sync"
            said = " ".join(result_text(screen).split())
            assert said == (
                "running… could not cancel counted.wait_sync: its handler is sync and cannot "
                "be interrupted; still waiting for it to finish"
            )
            await until(pilot, lambda: footer_keys(screen)["Cancel call"] is False)  # no more
            assert counted.finished == 0
            counted.release.set()
            await until(pilot, lambda: screen.outcome is not None, WAIT)
            assert screen.outcome.result == "finished"  # it ran to its end, and shows
            assert "finished" in result_text(screen)

    run_app(body)
    assert bus.wait_idle(5)
    assert counted.finished == 1
    assert counted.cancelled == 0


def test_the_keys_are_in_the_help():
    assert "| `Ctrl+G` | in a form: cancel the call it is running |" in HELP
    assert "| `x` | on a command: cancel the call of it this TUI started" in HELP


def test_a_fire_form_offers_no_cancel(counted_source, run_app):
    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_fire("counted.changed"))
            await until(pilot, lambda: "Run" in footer_keys(screen))
            assert "Cancel call" not in footer_keys(screen)
            assert list(footer_keys(screen)) == ["Close", "Run", "Copy as"]

    run_app(body)


def test_x_on_the_command_cancels_the_call_after_its_form_is_closed(
    counted_source, counted_served, run_app
):
    bus, counted = counted_served

    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            main = app.screen
            await pilot.press("2")
            table = app.query_one(CommandsTable)
            await until(pilot, lambda: "counted.wait_async" in table.items)
            assert "Cancel call" not in footer_keys(main)  # nothing of ours runs
            table.move_cursor(row=table.get_row_index("counted.wait_async"))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            await pilot.press("ctrl+r")
            await until(pilot, lambda: counted.started.is_set())
            await pilot.press("escape")  # the form goes; the call runs on, and it says how
            await until(pilot, lambda: app.screen is main)
            assert [n.message for n in app._notifications] == [
                "counted.wait_async runs on in the bus: x on it in the Commands tab cancels it"
            ]
            await until(pilot, lambda: footer_keys(main).get("Cancel call") is True)
            await pilot.press("x")
            message = "cancelled counted.wait_async: its handler was interrupted (or never started)"
            await until(
                pilot,
                lambda: message in [n.message for n in app._notifications],
                WAIT,
                lambda: [n.message for n in app._notifications],
            )
            await until(pilot, lambda: "Cancel call" not in footer_keys(main))
            assert app.in_flight.count() == 0

    run_app(body)
    assert bus.wait_idle(5)
    assert counted.cancelled == 1
