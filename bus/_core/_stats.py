"""Live statistics for commands, listeners and services.

Counting must not cost what it measures, so the hot path takes no lock:

* dispatches come from any thread and go through ``itertools.count``, whose
  ``next()`` is a single C call and therefore atomic under the GIL;
* completions are counted by the owner's thread, the only writer when the
  owner has one thread; owners with several threads (the pool, or
  ``Service(concurrency=N)``) count under a lock;
* rare outcomes (dropped, cancelled, late replies) always take a lock.

Latencies go into a bounded ring, so memory stays flat however long the bus
runs; percentiles are computed only when someone asks.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from typing import Any

from ._errors import error_text

__all__ = ["HandlerStats", "count_value", "percentile"]

LATENCY_SAMPLES = 1024


def count_value(counter: itertools.count[int]) -> int:
    """How many times ``next()`` has been called on a ``count()`` started at 0."""
    # itertools.count has no public read-out; its repr is "count(N)" in every
    # CPython release, which is cheaper and safer than a lock on every next().
    return int(repr(counter)[6:-1])


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile (nearest rank) of already sorted values."""
    if not sorted_values:
        return None
    # The rank is ceil(fraction * n); the epsilon keeps 0.29 * 100, which is
    # 28.999999999999996 in floating point, at rank 29. (round(x + 0.5) was
    # one rank too high whenever fraction * n was a whole number.)
    rank = math.ceil(fraction * len(sorted_values) - 1e-9)
    return sorted_values[min(len(sorted_values) - 1, max(0, rank - 1))]


class HandlerStats:
    """Counters for one registered command or listener.

    ``dispatch`` may be called from any thread; ``finish`` only from the
    owner's threads (it locks when ``shared``, i.e. when there are several);
    the rest from any thread. ``in_flight`` is queued plus running.
    """

    __slots__ = (
        "_latencies",
        "_lock",
        "_rare",
        "calls",
        "cancelled",
        "dispatched",
        "dropped",
        "errors",
        "last_error",
        "last_error_at",
        "late_replies",
        "skipped",
    )

    def __init__(self, *, shared: bool) -> None:
        self._lock = threading.Lock() if shared else None
        self._rare = threading.Lock()
        self.dispatched = itertools.count()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.calls = 0
        self.errors = 0
        self.skipped = 0
        self.cancelled = 0
        self.dropped = 0
        self.late_replies = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def dispatch(self) -> None:
        """Count one piece of work handed to the owner."""
        next(self.dispatched)

    def finish(self, seconds: float, error: BaseException | None) -> None:
        """Count one finished call taking ``seconds``, failed if ``error``."""
        lock = self._lock
        if lock is None:
            self.calls += 1
            self._latencies.append(seconds)
        else:
            with lock:
                self.calls += 1
                self._latencies.append(seconds)
        if error is not None:
            with self._rare:
                self.errors += 1
                self.last_error = error_text(error)
                self.last_error_at = time.time()

    def skip(self, *, cancelled: bool) -> None:
        """Count dispatched work that left the mailbox without running."""
        with self._rare:
            self.skipped += 1
            if cancelled:
                self.cancelled += 1
            else:
                self.dropped += 1

    def interrupted(self) -> None:
        """Count a call cancelled while it ran (an async handler's task)."""
        with self._rare:
            self.cancelled += 1

    def refuse(self) -> None:
        """Count dispatched work that the mailbox refused (full or stopped)."""
        self.skip(cancelled=False)

    def late_reply(self) -> None:
        """Count a result that arrived after its caller stopped waiting."""
        with self._rare:
            self.late_replies += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready dict of the counters and p50/p99 latency in milliseconds."""
        latencies = sorted(list(self._latencies))
        calls = self.calls
        in_flight = count_value(self.dispatched) - calls - self.skipped
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        return {
            "calls": calls,
            "errors": self.errors,
            "in_flight": max(0, in_flight),
            "cancelled": self.cancelled,
            "dropped": self.dropped,
            "late_replies": self.late_replies,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "p50_ms": None if p50 is None else round(p50 * 1000, 4),
            "p99_ms": None if p99 is None else round(p99 * 1000, 4),
        }
