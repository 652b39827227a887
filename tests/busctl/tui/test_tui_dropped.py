"""Spans the bus dropped are on the TUI's top line, near the front: never only a counter."""

from __future__ import annotations

import pytest

from busctl.tui.app import BusctlApp
from tests.bursts import Quiet, overflow
from tests.busctl.served_buses import control_bus
from tests.busctl.tui.conftest import open_source
from tests.busctl.tui.pilot_helpers import plain, until

pytestmark = pytest.mark.timeout(60)


def test_dropped_spans_are_flagged_at_the_front_of_the_top_line(run_app) -> None:
    with control_bus("lossy", span_buffer=8) as bus:
        quiet = Quiet(last=199)
        bus.add_service(quiet)
        dropped = overflow(bus, quiet)
        source = open_source(bus)

        async def body() -> None:
            app = BusctlApp(source=source, poll=0.1)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: "spans dropped" in plain(app.busline))
                parts = [p.strip() for p in plain(app.busline).split("·")]
                assert parts[1] == f"⚠ {dropped} spans dropped"  # right after the bus's name

        try:
            run_app(body)
        finally:
            source.close()
