"""The trace thread: records in, spans out, off the hot path.

The threads that send and handle work append finished records to a bounded
buffer; one trace thread per bus drains it in batches, has ``SpanBuilder``
make SDK ``ReadableSpan`` objects of them, and hands those to the span
processors of the application's ``TracerProvider`` (or the bus's own), a
chunk at a time (``_handoff``), and its records to
the in-memory ring of recent spans that the console reads. When the buffer
is full the record is counted as dropped: exporting must never slow the bus
down, and a drop is never silent (``inspect()["tracing"]["dropped"]``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence, Sized
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from .._core import _accel
from .._core._ratelog import RateLimitedLog
from .._core._version import VERSION
from ._handoff import Handoff
from ._jsonval import Redactor
from ._otlp_file import OtlpJsonFileExporter
from ._otlp_lines import OtlpLines
from ._provider import processor_of
from ._records import Flat
from ._ring import SpanRing
from ._spans import SpanBuilder

__all__ = ["TraceSink"]

log = logging.getLogger("bus.tracing")


OVERFLOW_POLICIES = ("drop", "wait")


class TraceSink:
    """The bus's trace thread and the bounded buffer feeding it.

    ``submit`` is called from any thread. When the buffer is full it drops
    the record and counts it (``overflow="drop"``, the OpenTelemetry
    convention), or makes the recording thread wait for room, at most
    ``wait_limit`` seconds before it drops and counts after all
    (``overflow="wait"``: lossless, as long as the trace thread keeps up
    within that time). With ``"wait"`` the trace thread likewise waits for
    room in a ``BatchSpanProcessor``'s queue rather than overrun it, since
    that processor drops the oldest span when it is full. Everything else
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
        overflow: str = "drop",
        wait_limit: float = 10.0,
        files: Sequence[OtlpJsonFileExporter] = (),
    ) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"trace_overflow must be 'drop' or 'wait', not {overflow!r}")
        self.overflow = overflow
        self._holds = 0  # lossless holds (``hold_lossless``): "wait" while any is held
        self._holds_lock = threading.Lock()
        self._wait_limit = wait_limit
        self._space = threading.Condition()
        self._waiting = 0  # recording threads waiting for room
        self.waited = 0  # times a recording thread had to wait
        self.waited_ns = 0  # and how long, in all
        self._build_log = RateLimitedLog(log)
        self._export_log = RateLimitedLog(log)
        self._wait_log = RateLimitedLog(log)
        self.provider = provider
        self._processor = processor_of(provider)
        self._tracer = None if self._processor else provider.get_tracer("bus", VERSION)
        resource = getattr(provider, "resource", None)
        if not isinstance(resource, Resource):
            resource = Resource.get_empty()
        self._builder = SpanBuilder(resource, json_limit=json_limit, redact=redact)
        self._lines = OtlpLines(resource, json_limit=json_limit, redact=redact)
        ring.configure(resource, json_limit=json_limit, redact=redact)
        self._files = list(files)
        # SDK spans only for processors that take them, or a provider not the SDK's.
        self._handoff = (
            Handoff(self._processor, self._processor_failed) if self._processor else None
        )
        self._ring = ring
        self._buffer: deque[Flat] = deque()
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

    def submit(self, record: Flat) -> None:
        """Queue a finished record for export (see the class for a full buffer).

        With the C accelerator this is ``_speedups.SinkSubmit``, which does
        the same and hands a record that finds the buffer full to this method.
        """
        buffer = self._buffer
        held = len(buffer)
        if held >= self._room and not self._room_after_waiting():
            with self._drop_lock:
                self.dropped += 1
            return
        buffer.append(record)
        if held == self.BATCH_WAKE:  # a batch is waiting: wake the trace thread early
            self._wake.set()

    @property
    def waits(self) -> bool:
        """Whether a full buffer makes recording threads wait: ``"wait"``, or a hold."""
        return self.overflow == "wait" or self._holds > 0

    def hold_lossless(self) -> _LosslessHold:
        """Wait rather than drop (as ``overflow="wait"``) until the hold is disposed.

        A console capturing spans takes one for as long as it captures, so
        that a busy bus does not drop half of what it records meanwhile.
        """
        with self._holds_lock:
            self._holds += 1
        return _LosslessHold(self)

    def _room_after_waiting(self) -> bool:
        """Waiting (bounded) until the trace thread makes room; whether it did."""
        if not self.waits or self._room == 0:  # dropping, or the thread has ended
            return False
        start = time.perf_counter_ns()
        deadline = time.monotonic() + self._wait_limit
        self._wake.set()
        with self._space:
            self._waiting += 1
            try:
                while len(self._buffer) >= self._room:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._room == 0:
                        self._wait_log.warning(
                            "a span waited %.1fs for room in the trace buffer and was dropped",
                            self._wait_limit,
                        )
                        return False
                    self._space.wait(remaining)
            finally:
                self._waiting -= 1
                self.waited += 1
                self.waited_ns += time.perf_counter_ns() - start
        return True

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
            "overflow": self.overflow,
            "lossless_holds": self._holds,
            "waiting": self._waiting,
            "waited": self.waited,
            "waited_ms": round(self.waited_ns / 1e6, 3),
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
                    self._wake_waiters()
                    self._drain()
                    return
        except BaseException as exc:
            # Span building guards each record, so only the unforeseen gets
            # here (a hook raising SystemExit, say). Nothing reads the buffer
            # any more: count what is in it, and all that comes, as dropped.
            self._room = 0
            self._wake_waiters()
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

    def _wake_waiters(self) -> None:
        with self._space:
            self._space.notify_all()

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
            if self._waiting:
                with self._space:
                    self._space.notify_all()
            made, count = batch, -1
            if self._handoff is None or self._handoff.wanted():
                made, count = self._export(batch)
            if self._files:
                made, count = self._write(batch)
            self._ring.add(made)
            # The spans the last maker made (counted as it made them), or
            # those of the records, for the ring alone.
            self.exported += count if count >= 0 else self._lines.span_total(made)
            with self._idle:
                self._done += len(batch)
                self._in_flight = 0
                self._idle.notify_all()
        with self._idle:
            self._idle.notify_all()

    def _build_failed(self, record: Flat, exc: Exception) -> None:
        self.failed += 1
        self._build_log.error("could not build the span of %r", record, exc=exc)

    def _export(self, batch: list[Flat]) -> tuple[list[Flat], int]:
        """Hand SDK spans of ``batch`` to the processors; the records made, and their spans."""
        spans: list[ReadableSpan] = []
        made = self._builder.build_many(batch, spans, self._build_failed)
        handoff = self._handoff
        if handoff is not None:
            if self.waits and handoff.queues:
                # Room first, for every chunk: one that found a full queue
                # would go span by span through on_end, which drops.
                step = handoff.chunk
                for start in range(0, len(spans), step):
                    chunk = spans if step >= len(spans) else spans[start : start + step]
                    self._wait_for_processor_room(handoff.queues, len(chunk))
                    handoff.hand(chunk)
            else:
                handoff.hand(spans)
        else:
            for span in spans:
                self._replay_through_tracer(span)
        return made, len(spans)

    def _write(self, batch: list[Flat]) -> tuple[list[Flat], int]:
        """Write ``batch`` to the trace files as OTLP JSON made straight from it."""
        made, data, count = self._lines.write_many(batch, self._build_failed)
        if made:
            for exporter in self._files:
                if exporter.write_lines(data) is not SpanExportResult.SUCCESS:
                    self.failed += len(made)
                    self._export_log.error(
                        "could not write spans to a trace file",
                        exc=OSError(f"{exporter!r} refused {len(made)} records"),
                    )
        return made, count

    def _processor_failed(self, exc: Exception) -> None:
        self.failed += 1
        self._export_log.error("a span processor failed", exc=exc)

    def _wait_for_processor_room(self, queues: list[tuple[Sized, int, int]], count: int) -> None:
        """Let a ``BatchSpanProcessor`` export before handing it ``count`` more spans.

        It would drop the oldest of a full queue; in ``"wait"`` mode the trace
        thread waits instead (bounded), yielding its CPU to the processor's
        worker, so the backpressure reaches the recording threads.
        """
        deadline = 0.0
        pause = 0.0001
        for queue, size, _ in queues:
            if len(queue) + count <= size:  # most chunks: no clock read
                continue
            deadline = deadline or time.monotonic() + self._wait_limit
            while len(queue) + count > size and time.monotonic() < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 0.005)

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


class _LosslessHold:
    """Returned by ``TraceSink.hold_lossless``; ``dispose()`` lets go (idempotent)."""

    __slots__ = ("_sink",)

    def __init__(self, sink: TraceSink) -> None:
        self._sink: TraceSink | None = sink

    def dispose(self) -> None:
        """Drop the hold: the sink goes back to its own policy once none is held."""
        sink = self._sink
        if sink is None:
            return
        with sink._holds_lock:
            if self._sink is None:  # another thread disposed of it meanwhile
                return
            self._sink = None
            sink._holds -= 1


_accel.install_sink(TraceSink)  # submit's append in C, when built
