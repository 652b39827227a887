"""Scheduler: the house clock, firing ``clock.tick`` at a steady interval.

    from bus import Bus
    from sample_services import Scheduler

    with Bus(name="demo") as bus:
        bus.add_service(Scheduler(interval=0.5))
        bus.register_listener("clock.tick", lambda count, timestamp: print("tick", count))

Each tick fires ``clock.tick`` with the keyword arguments ``count`` (1, 2,
3...) and ``timestamp`` (``time.time()``). The ticks are timers the bus runs on
the scheduler's own thread (``Service.call_every``), so its counters need no
lock, and closing the bus stops them.
"""

from __future__ import annotations

import time
from typing import TypedDict

from bus import Service, TimerHandle, command

__all__ = ["DEFAULT_INTERVAL", "Scheduler", "SchedulerStatus"]

DEFAULT_INTERVAL = 1.0
"""Seconds between ticks unless told otherwise."""


class SchedulerStatus(TypedDict):
    """What ``scheduler.status`` returns."""

    interval: float
    ticks: int
    started_at: float
    last_tick: float | None


class Scheduler(Service):
    """Fires ``clock.tick`` every ``interval`` seconds.

    Args:
        interval: seconds between ticks; must be positive.
        first_tick: seconds from start to the first tick (default: one
            interval); a console shows activity at once with a small one.
    """

    name = "scheduler"

    def __init__(self, interval: float = DEFAULT_INTERVAL, first_tick: float | None = None) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if first_tick is not None and not first_tick >= 0:
            raise ValueError(f"first_tick must be zero or more, not {first_tick}")
        self.interval = interval
        self.first_tick = interval if first_tick is None else first_tick
        self._ticks = 0
        self._started_at = 0.0
        self._last_tick: float | None = None
        self._timer: TimerHandle | None = None

    def on_start(self) -> None:
        """Start ticking."""
        self._started_at = time.time()
        if self.first_tick == self.interval:
            self._timer = self.call_every(self.interval, self._tick)
        else:
            self._timer = self.call_later(self.first_tick, self._first)

    def on_stop(self) -> None:
        """Stop ticking."""
        if self._timer is not None:
            self._timer.cancel()

    @command("scheduler.status", readonly=True)
    def status(self) -> SchedulerStatus:
        """The tick interval, how many ticks were fired and when the last one was."""
        return SchedulerStatus(
            interval=self.interval,
            ticks=self._ticks,
            started_at=self._started_at,
            last_tick=self._last_tick,
        )

    def _first(self) -> None:
        self._tick()
        self._timer = self.call_every(self.interval, self._tick)

    def _tick(self) -> None:
        self._ticks += 1
        self._last_tick = round(time.time(), 3)
        self.bus.fire_event("clock.tick", count=self._ticks, timestamp=self._last_tick)
