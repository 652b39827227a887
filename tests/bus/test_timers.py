"""Service timers: call_later and call_every run on the service's thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bus import Bus, BusError, Service

pytestmark = pytest.mark.timeout(30)


class Ticker(Service):
    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[str] = []
        self.later = threading.Event()
        self.three = threading.Event()

    def on_start(self) -> None:
        self.handle = self.call_every(0.01, self.tick)
        self.call_later(0.01, self.once, "x")

    def tick(self) -> None:
        self.ticks.append(threading.current_thread().name)
        if len(self.ticks) == 3:
            self.handle.cancel()
            self.three.set()

    def once(self, value: str) -> None:
        self.later_value = (value, threading.current_thread().name)
        self.later.set()


def test_timers_run_on_the_service_thread_and_cancel_stops_them(bus: Bus) -> None:
    ticker = Ticker()
    bus.add_service(ticker)

    assert ticker.later.wait(5)
    assert ticker.three.wait(5)
    assert ticker.later_value == ("x", "bus:test/ticker")
    assert set(ticker.ticks) == {"bus:test/ticker"}
    assert ticker.handle.cancelled
    # Cancelled: no fourth tick, however long we wait for one.
    fourth = threading.Event()
    ticker.call_later(0.1, fourth.set)
    assert fourth.wait(5)
    assert len(ticker.ticks) == 3


def test_timer_of_a_service_not_on_the_bus_is_refused(bus: Bus) -> None:
    bus.add_service(Service(name="on_bus"))
    stranger = Service(name="stranger")
    stranger.bus = bus
    with pytest.raises(BusError, match="not on bus"):
        stranger.call_later(1, lambda: None)


def test_close_stops_repeating_timers_and_joins_the_timer_thread(
    live_bus_threads: Callable[[str], list[threading.Thread]],
) -> None:
    ticked = threading.Event()

    class Forever(Service):
        def on_start(self) -> None:
            self.call_every(0.005, ticked.set)

    with Bus(name="timers") as b:
        b.add_service(Forever())
        assert ticked.wait(5)
    assert live_bus_threads("timers") == []
