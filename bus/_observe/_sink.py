"""The trace thread: records in, spans out, off the hot path.

The threads that send and handle work append finished records to a bounded
buffer; one trace thread per bus drains it in batches, has ``SpanBuilder``
make SDK ``ReadableSpan`` objects of them, and hands those to the span
processors of the application's ``TracerProvider`` (or the bus's own) and to
the in-memory ring of recent spans that the console reads. When the buffer
is full the record is counted as dropped: exporting must never slow the bus
down, and a drop is never silent (``inspect()["tracing"]["dropped"]``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from .._core._ratelog import RateLimitedLog
from .._core._version import VERSION
from ._jsonval import Redactor
from ._provider import processor_of
from ._records import CallRecord, DeliveryRecord, FireRecord
from ._ring import SpanRing
from ._spans import SpanBuilder

__all__ = ["TraceSink"]

log = logging.getLogger("bus.tracing")


class TraceSink:
    """The bus's trace thread and the bounded buffer feeding it.

    ``submit`` is called from any thread and never blocks. Everything else
    runs on the trace thread, except ``flush``, which waits for it.
    """

    BATCH_WAKE = 4096

    def __init__(
        self,
        provider: trace.TracerProvider,
        ring: SpanRing,
        *,
        capacity: int,
        json_limit: int,
        redact: Redactor | None,
        start_thread: Any,
        thread_name: str,
    ) -> None:
        self._build_log = RateLimitedLog(log)
        self._export_log = RateLimitedLog(log)
        self.provider = provider
        self._processor = processor_of(provider)
        self._tracer = None if self._processor else provider.get_tracer("bus", VERSION)
        resource = getattr(provider, "resource", None)
        self._builder = SpanBuilder(
            resource if isinstance(resource, Resource) else Resource.get_empty(),
            json_limit=json_limit,
            redact=redact,
        )
        self._ring = ring
        self._buffer: deque[CallRecord | FireRecord | DeliveryRecord] = deque()
        self._capacity = capacity
        self._room = capacity  # 0 once the trace thread has ended
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._in_flight = 0  # taken off the buffer, not yet handed on
        self._stopping = False
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self.error: str | None = None  # what ended the trace thread, if it died
        self._drop_lock = threading.Lock()
        self._thread = start_thread(thread_name, self._run)

    # -- any thread ---------------------------------------------------------

    def submit(self, record: CallRecord | FireRecord | DeliveryRecord) -> None:
        """Queue a finished record for export; count it dropped if the buffer is full."""
        buffer = self._buffer
        if len(buffer) >= self._room:
            with self._drop_lock:
                self.dropped += 1
            return
        buffer.append(record)
        if len(buffer) == self.BATCH_WAKE:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Export everything submitted so far; ``False`` if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            # Records the trace thread has taken but not finished count too:
            # without them, a batch finishing could look like the buffer's.
            target = self._done + self._in_flight + len(self._buffer)
            self._wake.set()
            while self._done < target and self._thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            # A trace thread that died left some of them unexported.
            return self._done >= target

    def stop(self, timeout: float) -> None:
        """Export what is buffered, then end the trace thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    def statistics(self) -> dict[str, Any]:
        """JSON-ready counters: exported, dropped (buffer full), failed, buffered."""
        return {
            "exported": self.exported,
            "dropped": self.dropped,
            "failed": self.failed,
            "buffered": len(self._buffer),
            "capacity": self._capacity,
            "ring": self._ring.capacity,
            "error": self.error,
        }

    # -- trace thread -------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(0.05)
                self._wake.clear()
                self._drain()
                if self._stopping:
                    # What handlers still running past close() submit from now
                    # on is counted as dropped, not left in a buffer no one reads.
                    self._room = 0
                    self._drain()
                    return
        except BaseException as exc:
            # Span building guards each record, so only the unforeseen gets
            # here (a hook raising SystemExit, say). Nothing reads the buffer
            # any more: count what is in it, and all that comes, as dropped.
            self._room = 0
            self.error = f"{type(exc).__name__}: {exc}"
            lost = self._in_flight
            while True:
                try:
                    self._buffer.popleft()
                except IndexError:
                    break
                lost += 1
            with self._drop_lock:
                self.dropped += lost
            log.critical(
                "the trace thread died of %s; spans are dropped (and counted) from now on",
                self.error,
                exc_info=exc,
            )
            with self._idle:
                self._idle.notify_all()

    def _drain(self) -> None:
        buffer = self._buffer
        while buffer:
            # Small batches, and the GIL offered back between them: a long
            # stretch of span building would hold up the bus's own threads
            # for a whole switch interval (5 ms) each time one wakes.
            time.sleep(0)
            with self._idle:
                batch = [buffer.popleft() for _ in range(min(len(buffer), 256))]
                self._in_flight = len(batch)
            spans: list[ReadableSpan] = []
            for record in batch:
                try:
                    self._builder.build(record, spans)
                except Exception as exc:
                    self.failed += 1
                    self._build_log.error("could not build the span of %r", record, exc=exc)
            self._ring.extend(spans)
            self._export(spans)
            with self._idle:
                self._done += len(batch)
                self._in_flight = 0
                self._idle.notify_all()
        with self._idle:
            self._idle.notify_all()

    def _export(self, spans: Sequence[ReadableSpan]) -> None:
        if self._processor is not None:
            on_end = self._processor.on_end
            for span in spans:
                try:
                    on_end(span)
                except Exception as exc:
                    self.failed += 1
                    self._export_log.error("a span processor failed", exc=exc)
        else:
            for span in spans:
                self._replay_through_tracer(span)
        self.exported += len(spans)

    def _replay_through_tracer(self, span: ReadableSpan) -> None:
        # A provider that is not the SDK's: re-create the span through its API.
        # Its span ids will be its own, so user spans nested under bus spans
        # lose their parent there; the in-memory ring keeps the true tree.
        assert self._tracer is not None
        parent = (
            trace.set_span_in_context(trace.NonRecordingSpan(span.parent)) if span.parent else None
        )
        live = self._tracer.start_span(
            span.name, parent, span.kind, span.attributes, span.links, span.start_time
        )
        live.set_status(span.status)
        for event in span.events:
            live.add_event(event.name, event.attributes, event.timestamp)
        live.end(span.end_time)
