"""A service that hears a burst of events (not a test module): for what a busy bus traces.

quiet = Quiet(last=499)
bus.add_service(quiet)
for i in range(500):
    bus.fire_event("burst", i)
assert quiet.last.wait(60)
"""

from __future__ import annotations

import threading

from bus import Service, listener


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
