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


def test_a_running_timer_job_shows_busy_and_is_reported_hung(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import time

    b = make_bus(hung_after=0.1)
    started, release = threading.Event(), threading.Event()

    def slow_job() -> None:
        started.set()
        release.wait(10)

    class Busy(Service):
        def on_start(self) -> None:
            self.call_later(0, slow_job)

    with caplog.at_level(logging.WARNING, logger="bus"):
        b.add_service(Busy())
        assert started.wait(5)
        deadline = time.monotonic() + 10
        while not any("hung handler" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            threading.Event().wait(0.01)
        service = next(s for s in b.inspect()["services"] if s["name"] == "busy")
        release.set()

    thread = service["threads"][0]
    assert service["activity"] == "busy"
    assert thread["handler"].endswith("slow_job")
    assert thread["hung"] is True
    message = next(r.getMessage() for r in caplog.records if "hung handler" in r.getMessage())
    assert message.startswith("hung handler: timer ")
    b.wait_idle(5)
    assert next(s for s in b.inspect()["services"] if s["name"] == "busy")["activity"] == "idle"


class Starved(Service):
    """A service whose thread can be held busy while its timer falls due."""

    def __init__(self) -> None:
        super().__init__(name="starved")
        self.ticks = 0
        self.busy = threading.Event()
        self.release = threading.Event()

    def on_start(self) -> None:
        self.handle = self.call_every(0.002, self.tick)

    def tick(self) -> None:
        self.ticks += 1

    def hold(self) -> None:
        self.busy.set()
        self.release.wait(10)


def _after_timer_thread_passes(bus: Bus, delay: float) -> None:
    """Return once the bus's timer thread has handled everything due within ``delay``.

    Timers fire in due order on one thread, so a job due after ``delay`` (run
    by a second service) fires only after every earlier one was posted.
    """
    clock = Service(name="clock")
    bus.add_service(clock)
    passed = threading.Event()
    clock.call_later(delay, passed.set)
    assert passed.wait(5)


def test_a_busy_service_gets_no_pile_of_timer_runs_and_cancel_is_final(bus: Bus) -> None:
    service = Starved()
    bus.add_service(service)
    service.call_later(0, service.hold)  # hold the service's own thread
    assert service.busy.wait(5)
    _after_timer_thread_passes(bus, 0.05)  # ~25 runs fall due meanwhile
    (starved,) = [s for s in bus.inspect()["services"] if s["name"] == "starved"]
    assert starved["mailbox"] == 1  # one run waits; the others were skipped
    ticks = service.ticks
    service.handle.cancel()
    service.release.set()
    # The run already queued must not start once cancel() has returned.
    fence = threading.Event()
    service.call_later(0, fence.set)
    assert fence.wait(5)
    assert service.ticks == ticks
