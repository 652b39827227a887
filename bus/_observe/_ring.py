"""The in-memory ring of recent spans that the console reads.

Every bus keeps one, whichever provider exports its spans: ``busctl``'s trace
view, the control protocol's ``traces`` method and ``spans`` topic read it.
It keeps the flat records the spans are made of (``_records``), not span
objects: a record costs a fraction of the memory, and most are never read.
Readers get OTLP JSON made straight from the records (``otlp``), or SDK
spans made on demand (``spans``, ``trace``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from .._core._ratelog import RateLimitedLog
from ._jsonval import Redactor
from ._records import Flat, span_count
from ._spans import OtlpSpans, SpanBuilder

__all__ = ["SpanRing"]

log = logging.getLogger("bus.tracing")


class SpanRing:
    """The most recent finished spans, bounded; what the console reads.

    Args:
        capacity: the most recent commands and events kept (a command is
            two spans, CLIENT and SERVER; an event or a delivery one).

    Thread-safe: appends and copies of a deque are atomic under the GIL.
    """

    def __init__(self, capacity: int) -> None:
        self._records: deque[Flat] = deque(maxlen=capacity)
        self.capacity = capacity
        self._observers: tuple[Callable[[list[Flat]], None], ...] = ()
        self._observers_lock = threading.Lock()
        self._observer_log = RateLimitedLog(log)
        self.configure(Resource.get_empty(), json_limit=4096, redact=None)

    def configure(self, resource: Resource, *, json_limit: int, redact: Redactor | None) -> None:
        """How spans are made of the records: the resource, the JSON bound, the redaction."""
        self._builder = SpanBuilder(resource, json_limit=json_limit, redact=redact)
        self._otlp = OtlpSpans(resource, json_limit=json_limit, redact=redact)

    def add(self, records: list[Flat]) -> None:
        """Add records (the trace thread), forgetting the oldest beyond the capacity."""
        self._records.extend(records)
        for observer in self._observers:
            try:
                observer(records)
            except Exception as exc:
                self._observer_log.error("a span observer failed (%r)", observer, exc=exc)

    def observe(self, callback: Callable[[list[Flat]], None]) -> _Unobserve:
        """Call ``callback(records)`` with each batch of records as it enters the ring.

        It runs on the bus's trace thread and must be quick (the control
        server only queues the batch; ``otlp(batch)`` makes its spans).
        Returns a handle whose ``dispose()`` stops the calls.
        """
        with self._observers_lock:
            self._observers = (*self._observers, callback)
        return _Unobserve(self, callback)

    def _unobserve(self, callback: Callable[[list[Flat]], None]) -> None:
        with self._observers_lock:
            self._observers = tuple(o for o in self._observers if o is not callback)

    def records(self) -> list[Flat]:
        """Every record held, oldest first."""
        return list(self._records)

    def spans(self) -> list[ReadableSpan]:
        """Every span held, oldest first, as SDK spans (made now)."""
        out: list[Any] = []
        for record in list(self._records):
            self._builder.build(record, out)
        return out

    def span_count(self) -> int:
        """How many spans the records held make."""
        return sum(map(span_count, list(self._records)))

    def trace_ids(self, limit: int) -> list[int]:
        """Ids of the ``limit`` most recent traces, newest first."""
        seen: dict[int, None] = {}
        for record in reversed(self._records):
            seen.setdefault(record[1], None)
            if len(seen) >= limit:
                break
        return list(seen)

    def trace(self, trace_id: int) -> list[ReadableSpan]:
        """The spans of one trace, in start order, as SDK spans (made now)."""
        out: list[ReadableSpan] = []
        for record in list(self._records):
            if record[1] == trace_id:
                self._builder.build(record, out)
        return sorted(out, key=lambda s: s.start_time or 0)

    def otlp(
        self, records: list[Flat] | None = None, trace_ids: set[int] | None = None
    ) -> dict[str, Any]:
        """Spans as one OTLP ``TracesData`` JSON object, made straight from records.

        ``records``: these (a batch from ``observe``) rather than the ring's;
        ``trace_ids``: only the spans of these traces.
        """
        chosen = list(self._records) if records is None else records
        if trace_ids is not None:
            chosen = [r for r in chosen if r[1] in trace_ids]
        return self._otlp.traces_data(chosen)


class _Unobserve:
    """Handle returned by ``SpanRing.observe``; ``dispose()`` stops the calls."""

    __slots__ = ("_callback", "_ring")

    def __init__(self, ring: SpanRing, callback: Callable[[list[Flat]], None]) -> None:
        self._ring = ring
        self._callback = callback

    def dispose(self) -> None:
        """Stop calling the callback (idempotent)."""
        self._ring._unobserve(self._callback)
