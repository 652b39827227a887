"""The TUI keeps up under a flood: the feed stays bounded and keys still answer at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from textual import events
from textual.widgets import TabbedContent

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp

pytestmark = pytest.mark.timeout(120)

EVENTS = 30_000


def test_flood_keeps_the_feed_bounded_and_the_keys_prompt(sample_bus, source, run_app):
    stop = threading.Event()
    fired = [0]

    def flood() -> None:
        while not stop.is_set():
            for i in range(500):
                sample_bus.fire_event("flood.tick", i)
            fired[0] += 500

    async def body():
        app = BusctlApp(source=source, poll=0.2)
        async with app.run_test(size=(120, 35)) as pilot:
            while app.inspected is None:
                await pilot.pause(0.05)
            flooder = threading.Thread(target=flood, name="flooder", daemon=True)
            flooder.start()
            try:
                biggest = 0
                lags = []
                tabs = app.query_one(TabbedContent)
                keys = ["2", "3", "1"]
                while fired[0] < EVENTS or len(lags) < 6:
                    biggest = max(biggest, len(app.feed))
                    key = keys[len(lags) % 3]
                    want = {"1": "services", "2": "commands", "3": "listeners"}[key]
                    started = time.monotonic()
                    app.post_message(events.Key(key, key))
                    while tabs.active != want and time.monotonic() - started < 10:
                        await asyncio.sleep(0.005)
                    lags.append(time.monotonic() - started)
                    assert tabs.active == want
                    await pilot.pause(0.1)
            finally:
                stop.set()
                flooder.join(timeout=10)
            assert fired[0] >= EVENTS
            assert biggest <= app.feed.maxlen
            # The UI drew some of it, and the rest was counted, not queued up.
            log = app.query_one(ActivityLog)
            await pilot.pause(0.5)
            assert log.table.row_count <= log.MAX_ROWS
            assert any(a["name"] == "flood.tick" for a in log.entries())
            assert len(app.feed) <= app.feed.maxlen
            # Each key press was handled well within a second, flood or not.
            assert max(lags) < 1.0, lags

    run_app(body)
