"""A screen on top (a form, a trace, help) holds the main screen still; nothing is lost.

Textual draws a covered screen again, dimmed, under the screen on top each
time anything on it changes. Live tables and a scrolling log behind a form
cost a tenth of a second a frame, and every key typed into the form waited
behind them. And a tab label set again on every poll slid the tabs' underline
for good. These tests hold the TUI to standing still when nothing changes.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from bus import Bus, Service, listener
from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.holds_panel import HeldTable
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.tables import ServicesTable
from tests.busctl.tui.pilot_helpers import until

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 35)


class Late(Service):
    """A service that arrives while a form covers the tables."""

    name = "late"

    @listener("late.ping")
    def on_ping(self) -> None:
        pass


def test_the_main_screen_stands_still_under_a_form_and_catches_up_after(
    source, sample_bus: Bus, run_app
) -> None:
    async def body() -> None:
        app = BusctlApp(source=source, drain=0.05, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            services = app.query_one(ServicesTable)
            await until(pilot, lambda: log.entries() and "scheduler" in services.items)
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            rows = log.table.row_count
            sample_bus.add_service(Late())
            for i in range(5):
                sample_bus.fire_event("covered.ping", i)
            # The bus said so (its newest reply is kept, the activity held)...
            await until(pilot, lambda: "late" in str(app.inspected))
            await until(pilot, lambda: sum(e["name"] == "covered.ping" for e in log._held) == 5)
            # ...but nothing behind the form was drawn.
            assert log.table.row_count == rows
            assert "late" not in services.items
            assert not any(e["name"] == "covered.ping" for e in log.entries())

            await pilot.press("escape")
            await until(pilot, lambda: "late" in services.items)
            await until(pilot, lambda: sum(e["name"] == "covered.ping" for e in log.entries()) == 5)

    run_app(body)


def test_an_unchanged_holds_tab_lets_the_ui_come_to_rest(sample_bus: Bus, source, run_app) -> None:
    sample_bus.holds.add("lights.turn_on", kind="call")
    out: Future[object] = Future()
    threading.Thread(
        target=lambda: out.set_result(sample_bus.execute_command("lights.turn_on", "den")),
        daemon=True,
    ).start()
    assert out.result(5) is not None  # the call's future, held: the bus's close fails it

    async def body() -> None:
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            held = app.query_one(HeldTable)
            await until(pilot, lambda: held.row_count == 1)
            app.tabs.active = "holds"  # as 5 does; Pilot's press would wait out the animation
            polls = app.polls
            while app.polls < polls + 5:
                await asyncio.sleep(0.05)
            assert "Holds (1)" in str(app.tabs.get_tab("holds").label)
            # Polls that find the same held item change nothing on screen, so
            # no animation runs on: the tabs' underline slid forever before.
            await asyncio.wait_for(app.animator.wait_until_complete(), 2)

    run_app(body)
