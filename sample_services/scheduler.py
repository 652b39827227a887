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
    """Fires ``clock.tick`` every ``interval`` seconds, starting one interval after start.

    Args:
        interval: seconds between ticks; must be positive.
    """

    name = "scheduler"

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.interval = interval
        self._ticks = 0
        self._started_at = 0.0
        self._last_tick: float | None = None
        self._timer: TimerHandle | None = None

    def on_start(self) -> None:
        """Start ticking."""
        self._started_at = time.time()
        self._timer = self.call_every(self.interval, self._tick)

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

    def _tick(self) -> None:
        self._ticks += 1
        self._last_tick = round(time.time(), 3)
        self.bus.fire_event("clock.tick", count=self._ticks, timestamp=self._last_tick)
