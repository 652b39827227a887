"""A service that hears a burst of events (not a test module): for what a busy bus traces.

quiet = Quiet(last=499)
bus.add_service(quiet)
for i in range(500):
    bus.fire_event("burst", i)
assert quiet.last.wait(60)
"""

from __future__ import annotations

import threading

from bus import Bus, Service, listener


class Quiet(Service):
    """Listens to ``burst(i)``, does nothing, and sets ``last`` once it hears ``i == last``."""

    name = "quiet"

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last_index = last
        self.last = threading.Event()

    @listener("burst")
    def on_burst(self, i: int) -> None:
        if i == self.last_index:
            self.last.set()


def overflow(bus: Bus, quiet: Quiet) -> int:
    """Fire ``quiet``'s burst while the trace thread is stalled; return the spans dropped.

    The trace thread waits in an observer until the whole burst is fired, so
    a buffer smaller than the burst must overflow; the count is the bus's own
    (``inspect()["tracing"]["dropped"]``), checked to be more than none.
    """
    gate, stuck = threading.Event(), threading.Event()

    def stall(records: object) -> None:  # the trace thread stops here until the gate opens
        stuck.set()
        gate.wait(30)

    observing = bus.spans.observe(stall)
    try:
        bus.fire_event("burst", -1)
        assert stuck.wait(10)
        for i in range(quiet.last_index + 1):
            bus.fire_event("burst", i)
    finally:
        gate.set()
    assert quiet.last.wait(30)
    assert bus.flush_traces(30)
    observing.dispose()
    dropped: int = bus.inspect()["tracing"]["dropped"]
    assert dropped > 0
    return dropped
