"""Scheduler: ``clock.tick`` from a timer on the service's thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus
from bus.testing import capture_events
from sample_services import Scheduler

Call = Callable[..., Any]

pytestmark = pytest.mark.timeout(30)


def test_ticks_count_up_with_timestamps(bus: Bus) -> None:
    with capture_events(bus, "clock.tick") as events:
        bus.add_service(Scheduler(interval=0.01))
        ticks = events.wait_for("clock.tick", count=3)

    assert [t.kwargs["count"] for t in ticks[:3]] == [1, 2, 3]
    stamps = [t.kwargs["timestamp"] for t in ticks[:3]]
    assert stamps == sorted(stamps)
    assert all(t.args == () for t in ticks)


def test_ticks_reach_listeners(bus: Bus) -> None:
    bus.add_service(Scheduler(interval=0.01))
    with capture_events(bus, "heard.tick") as heard:
        bus.register_listener(
            "clock.tick", lambda count, timestamp: bus.fire_event("heard.tick", count)
        )
        assert len(heard.wait_for("heard.tick", count=2)) >= 2


def test_status_reports_the_ticks(bus: Bus, call: Call) -> None:
    with capture_events(bus, "clock.tick") as events:
        bus.add_service(Scheduler(interval=0.01))
        events.wait_for("clock.tick", count=2)

    status = call("scheduler.status")

    assert status["interval"] == 0.01
    assert status["ticks"] >= 2
    assert status["last_tick"] is not None
    assert status["last_tick"] >= status["started_at"]


def test_status_before_the_first_tick(bus: Bus, call: Call) -> None:
    bus.add_service(Scheduler(interval=3600))

    assert call("scheduler.status")["ticks"] == 0
    assert call("scheduler.status")["last_tick"] is None


@pytest.mark.parametrize("interval", [0, -1.0])
def test_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Scheduler(interval=interval)


def test_first_tick_can_come_before_the_interval(bus: Bus) -> None:
    with capture_events(bus, "clock.tick") as events:
        bus.add_service(Scheduler(interval=3600, first_tick=0))
        (tick,) = events.wait_for("clock.tick", count=1)
    assert tick.kwargs["count"] == 1


@pytest.mark.parametrize("first_tick", [-1.0, float("nan")])
def test_a_negative_first_tick_is_refused(first_tick: float) -> None:
    with pytest.raises(ValueError, match="first_tick must be zero or more"):
        Scheduler(first_tick=first_tick)
