"""The in-memory ring of recent spans that the console reads.

Every bus keeps one, whichever provider exports its spans: ``busctl``'s trace
view, ``traces`` method and ``spans`` topic read it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

from opentelemetry.sdk.trace import ReadableSpan

from .._core._ratelog import RateLimitedLog

__all__ = ["SpanRing"]

log = logging.getLogger("bus.tracing")


class SpanRing:
    """The most recent finished spans, bounded; what the console reads.

    Thread-safe: appends and copies of a deque are atomic under the GIL.
    """

    def __init__(self, capacity: int) -> None:
        self._spans: deque[ReadableSpan] = deque(maxlen=capacity)
        self.capacity = capacity
        self._observers: tuple[Callable[[list[ReadableSpan]], None], ...] = ()
        self._observers_lock = threading.Lock()
        self._observer_log = RateLimitedLog(log)

    def extend(self, spans: Iterable[ReadableSpan]) -> None:
        """Add spans, forgetting the oldest beyond the capacity."""
        observers = self._observers
        if not observers:
            self._spans.extend(spans)
            return
        batch = list(spans)
        self._spans.extend(batch)
        if batch:
            for observer in observers:
                try:
                    observer(batch)
                except Exception as exc:
                    self._observer_log.error("a span observer failed (%r)", observer, exc=exc)

    def observe(self, callback: Callable[[list[ReadableSpan]], None]) -> _Unobserve:
        """Call ``callback(spans)`` with each batch of spans as it enters the ring.

        It runs on the bus's trace thread and must be quick (the control
        server only queues the batch). Returns a handle whose ``dispose()``
        stops the calls.
        """
        with self._observers_lock:
            self._observers = (*self._observers, callback)
        return _Unobserve(self, callback)

    def _unobserve(self, callback: Callable[[list[ReadableSpan]], None]) -> None:
        with self._observers_lock:
            self._observers = tuple(o for o in self._observers if o is not callback)

    def spans(self) -> list[ReadableSpan]:
        """Every span held, oldest first."""
        return list(self._spans)

    def trace_ids(self, limit: int) -> list[int]:
        """Ids of the ``limit`` most recent traces, newest first."""
        seen: dict[int, None] = {}
        for span in reversed(self._spans):
            seen.setdefault(span.context.trace_id, None)
            if len(seen) >= limit:
                break
        return list(seen)

    def trace(self, trace_id: int) -> list[ReadableSpan]:
        """The spans of one trace, in start order."""
        spans = [s for s in self._spans if s.context.trace_id == trace_id]
        return sorted(spans, key=lambda s: s.start_time or 0)


class _Unobserve:
    """Handle returned by ``SpanRing.observe``; ``dispose()`` stops the calls."""

    __slots__ = ("_callback", "_ring")

    def __init__(self, ring: SpanRing, callback: Callable[[list[ReadableSpan]], None]) -> None:
        self._ring = ring
        self._callback = callback

    def dispose(self) -> None:
        """Stop calling the callback (idempotent)."""
        self._ring._unobserve(self._callback)
