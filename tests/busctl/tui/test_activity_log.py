"""The activity log under load: what it draws, what it drops (counted), and how often it redraws."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.app import App, ComposeResult

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from tests.busctl.tui.pilot_helpers import until

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000.0


def events(count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` event entries named ``e<start>``, ``e<start+1>``..."""
    return [
        {"kind": "event", "name": f"e{i}", "time": T0 + i, "seq": i, "caller": "x", "args": "[]"}
        for i in range(start, start + count)
    ]


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ActivityLog(id="activity")


def names(log: ActivityLog) -> list[str]:
    return [a["name"] for a in log.entries()]


def run(body) -> None:
    async def main() -> None:
        app = LogApp()
        async with app.run_test(size=(120, 35)) as pilot:
            await body(app.query_one(ActivityLog), pilot)

    asyncio.run(main())


def test_a_flood_replaces_the_rows_with_its_newest_while_the_log_follows():
    async def body(log: ActivityLog, pilot) -> None:
        assert log.add(events(50)) == 50
        assert log.add(events(500, start=50)) == log.PER_BATCH
        assert names(log) == [f"e{i}" for i in range(450, 550)]
        assert log.table.row_count == log.PER_BATCH
        assert log.skipped == 400
        assert log.table.cursor_row == log.table.row_count - 1  # still following

    run(body)


def test_past_max_rows_the_oldest_go_all_at_once_down_to_keep():
    async def body(log: ActivityLog, pilot) -> None:
        added = 0
        while added <= log.MAX_ROWS:
            log.add(events(60, start=added))
            added += 60
        assert log.table.row_count == len(log.entries()) <= log.MAX_ROWS
        assert names(log) == [f"e{i}" for i in range(added - log.KEEP, added)]
        assert log.skipped == 0

    run(body)


def test_a_reader_scrolled_back_keeps_the_entry_under_the_cursor_through_a_flood():
    async def body(log: ActivityLog, pilot) -> None:
        log.add(events(50))
        log.table.move_cursor(row=10)
        await pilot.pause()
        log.add(events(500, start=50))
        await pilot.pause()
        row = log.table.cursor_row
        assert log.entries()[row]["name"] == "e10"
        assert len(log.entries()) == 50 + log.PER_BATCH

    run(body)


class Flooded(BusctlApp):
    FLOODED = 3600.0  # after a flood, no redraw within the test


def test_after_drawing_a_flood_the_app_lets_the_feed_hold_the_rest(fake_source, run_app):
    async def body():
        app = Flooded(source=fake_source, poll=0.05, drain=0.05)
        async with app.run_test(size=(120, 35)) as pilot:
            log = app.query_one(ActivityLog)
            await until(pilot, lambda: len(log.entries()) == 6)  # the fake's own six
            for entry in events(500):
                fake_source.callback(entry)
            await until(pilot, lambda: "e499" in names(log))
            for entry in events(10, start=500):
                fake_source.callback(entry)
            polls = app.polls
            await until(pilot, lambda: app.polls >= polls + 4)  # drain ticks went by
            assert len(app.feed) == 10  # held (and counted), not drawn
            assert "e500" not in names(log)

    run_app(body)
