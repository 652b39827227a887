"""The calls the TUI started that have not ended, so that one can be cancelled later.

    in_flight = InFlight()
    in_flight.add("counted.wait_async", call)   # call: the future Source.execute gave
    in_flight.latest("counted.wait_async")      # the newest still running, or None

A form registers each call it runs; the call stays here until it ends, even
when its form is closed, so ``x`` on the commands table can still cancel it.
Calls end on the client's (or a bus's) thread: everything here is guarded by
a lock and quick.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

__all__ = ["InFlight"]


class InFlight:
    """Calls started here and still running, by command name, newest last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, list[Future[Any]]] = {}

    def add(self, name: str, call: Future[Any]) -> None:
        """Hold ``call`` of command ``name`` until it ends."""
        with self._lock:
            self._calls.setdefault(name, []).append(call)
        call.add_done_callback(lambda done: self._ended(name, done))

    def _ended(self, name: str, call: Future[Any]) -> None:
        with self._lock:
            calls = self._calls.get(name, [])
            if call in calls:
                calls.remove(call)
            if not calls:
                self._calls.pop(name, None)

    def latest(self, name: str) -> Future[Any] | None:
        """The newest call of ``name`` still running, or ``None``."""
        with self._lock:
            calls = self._calls.get(name)
            return calls[-1] if calls else None

    def count(self, name: str | None = None) -> int:
        """How many calls (of ``name``, or of any command) are running."""
        with self._lock:
            if name is not None:
                return len(self._calls.get(name, ()))
            return sum(len(calls) for calls in self._calls.values())
