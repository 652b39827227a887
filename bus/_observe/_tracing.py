"""Turning records into OpenTelemetry spans, off the hot path.

The threads that send and handle work append finished records to a bounded
buffer; one trace thread per bus drains it in batches, builds SDK
``ReadableSpan`` objects and hands them to the span processors of the
application's ``TracerProvider`` (or the bus's own), and to the in-memory
ring of recent spans that the console reads. When the buffer is full the
record is counted as dropped: exporting must never slow the bus down, and a
drop is never silent (``inspect()["tracing"]["dropped"]``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from .._core._ratelog import RateLimitedLog
from .._core._version import VERSION
from ._jsonval import Encoded, Redactor, atom_json, atoms_json
from ._records import CallRecord, DeliveryRecord, FireRecord, encoded_text, span_context

__all__ = ["SpanRing", "TraceSink", "resolve_provider", "tracing_disabled_by_env"]

log = logging.getLogger("bus.tracing")

SCOPE = InstrumentationScope("bus", VERSION)
_OK = Status(StatusCode.UNSET)
_KIND_CLIENT, _KIND_SERVER = SpanKind.CLIENT, SpanKind.SERVER
_KIND_PRODUCER, _KIND_CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


def tracing_disabled_by_env() -> bool:
    """Whether ``OTEL_SDK_DISABLED`` turns tracing off for the process."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _env_exporters() -> list[SpanExporter]:
    """Exporters named by ``OTEL_TRACES_EXPORTER``, loaded as the SDK does.

    Unlike the SDK's auto-configuration, nothing is exported when the variable
    is unset: a bus on its own keeps its spans in memory for the console.
    """
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    exporters: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "none":
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("OTEL_TRACES_EXPORTER names %r, but no such exporter is installed", name)
            continue
        try:
            exporters.append(next(iter(found)).load()())
        except Exception:
            log.exception("could not start the span exporter %r", name)
    return exporters


def resolve_provider(explicit: trace.TracerProvider | None, bus_name: str) -> trace.TracerProvider:
    """The provider whose processors receive the bus's spans.

    An explicit provider wins, then the application's global one; with neither,
    the bus makes its own (resource from ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``, exporters from ``OTEL_TRACES_EXPORTER``).
    """
    if explicit is not None:
        return explicit
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return current
    # The bus's name is only the default: OTEL_SERVICE_NAME (or service.name
    # in OTEL_RESOURCE_ATTRIBUTES) wins, as it does for the SDK.
    resource = Resource.create()
    if not OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        resource = resource.merge(Resource({SERVICE_NAME: bus_name}))
    own = TracerProvider(resource=resource)
    for exporter in _env_exporters():
        own.add_span_processor(BatchSpanProcessor(exporter))
    return own


def _processor_of(provider: trace.TracerProvider) -> SpanProcessor | None:
    # The SDK has no public getter for a provider's processors. Handing spans
    # to them directly is what lets the bus build spans off the hot path with
    # ids it chose on the hot path; every SDK release since 1.0 has this
    # attribute, and a provider without it gets the slower fallback below.
    processor = getattr(provider, "_active_span_processor", None)
    return processor if isinstance(processor, SpanProcessor) else None


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


def _exception_event(error: BaseException, tb: TracebackType | None, at: int) -> Event:
    # ``tb`` was taken when the handler failed: by now a caller may have
    # re-raised the same exception object and prepended its own frames.
    return Event(
        "exception",
        {
            "exception.type": type(error).__qualname__,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(type(error), error, tb)),
            "exception.escaped": True,
        },
        at,
    )


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
        self._processor = _processor_of(provider)
        self._tracer = None if self._processor else provider.get_tracer("bus", VERSION)
        resource = getattr(provider, "resource", None)
        self._resource = resource if isinstance(resource, Resource) else Resource.get_empty()
        self._ring = ring
        self._buffer: deque[CallRecord | FireRecord | DeliveryRecord] = deque()
        self._capacity = capacity
        self._room = capacity  # 0 once the trace thread has ended
        self._limit = json_limit
        self._redact = redact
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
                    self._build(record, spans)
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

    def _put_json(self, attrs: dict[str, types.AttributeValue], key: str, value: Any) -> None:
        """Set ``attrs[key]`` to the JSON of a value kept by ``freeze``, with its markers."""
        kind = type(value)
        if kind is tuple:
            text = atoms_json(value)
        elif kind is Encoded:
            text = None
        else:
            text = atom_json(value)
        if text is not None and len(text) <= self._limit:
            attrs[key] = text
            return
        encoded = encoded_text(value, self._limit, self._redact)
        attrs[key] = encoded.text
        if encoded.truncated:
            attrs[key + ".truncated"] = True
        if encoded.lossy:
            attrs[key + ".lossy"] = True

    def _build(
        self, record: CallRecord | FireRecord | DeliveryRecord, out: list[ReadableSpan]
    ) -> None:
        kind = type(record)
        if kind is DeliveryRecord:
            self._build_delivery(record, out)  # type: ignore[arg-type]
        elif kind is CallRecord:
            self._build_call(record, out)  # type: ignore[arg-type]
        else:
            self._build_fire(record, out)  # type: ignore[arg-type]

    def _outcome(
        self,
        attrs: dict[str, types.AttributeValue],
        record: Any,
        error: BaseException | None,
        end_ns: int,
    ) -> tuple[Sequence[Event], Status]:
        """Fold the handler's annotations and error into ``attrs``; events and status."""
        annotations = getattr(record, "annotations", None)
        recorded = getattr(record, "events", None)
        if error is None and not annotations and not recorded:
            return (), _OK
        if annotations:
            attrs.update(annotations)
        events = [Event(n, a, t) for n, a, t in recorded or ()]
        if error is None:
            return events, _OK
        attrs["error.type"] = type(error).__qualname__
        events.append(_exception_event(error, getattr(record, "traceback", None), end_ns))
        return events, Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")

    def _build_call(self, r: CallRecord, out: list[ReadableSpan]) -> None:
        trace_id = r.trace_id
        client_ctx = span_context(trace_id, r.client_id)
        parent = span_context(trace_id, r.parent_id) if r.parent_id else None
        client_attrs: dict[str, types.AttributeValue] = {
            "rpc.system.name": "bus",
            "rpc.method": r.name,
            "bus.service": r.service,
            "bus.caller": r.caller,
        }
        self._put_json(client_attrs, "bus.args", r.args)
        if r.kwargs:
            self._put_json(client_attrs, "bus.kwargs", r.kwargs)
        resource = self._resource
        if r.status_message is not None:  # never ran: cancelled, or failed at close
            status = Status(StatusCode.ERROR, r.status_message)
            client_attrs["error.type"] = r.status_message.split(":", 1)[0]
            out.append(
                ReadableSpan(
                    r.name, client_ctx, parent, resource, client_attrs, (), (), _KIND_CLIENT,
                    None, status, r.sent_ns, r.end_ns, SCOPE,
                )
            )  # fmt: skip
            return
        server_attrs = dict(client_attrs)
        server_attrs["thread.name"] = r.thread
        server_attrs["bus.queued_ms"] = (r.handled_ns - r.sent_ns) / 1e6
        error = r.error
        if error is None:
            self._put_json(server_attrs, "bus.result", r.result)
        else:
            client_attrs["error.type"] = type(error).__qualname__
        events, status = self._outcome(server_attrs, r, error, r.end_ns)
        out.append(
            ReadableSpan(
                r.name, client_ctx, parent, resource, client_attrs, (), (), _KIND_CLIENT,
                None, status, r.sent_ns, r.end_ns, SCOPE,
            )
        )  # fmt: skip
        out.append(
            ReadableSpan(
                r.name, span_context(trace_id, r.server_id), client_ctx, resource, server_attrs,
                events, r.links or (), _KIND_SERVER, None, status, r.handled_ns, r.end_ns, SCOPE,
            )
        )  # fmt: skip

    def _fire_context(self, r: FireRecord) -> SpanContext:
        # Shared by the PRODUCER span and every CONSUMER span under it.
        ctx = r.context
        if ctx is None:
            ctx = r.context = span_context(r.trace_id, r.span_id)
        return ctx

    def _build_fire(self, r: FireRecord, out: list[ReadableSpan]) -> None:
        attrs: dict[str, types.AttributeValue] = {
            "messaging.system": "bus",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": r.name,
            "bus.caller": r.caller,
            "bus.listeners": r.listeners,
        }
        self._put_json(attrs, "bus.args", r.args)
        if r.kwargs:
            self._put_json(attrs, "bus.kwargs", r.kwargs)
        if r.annotations:
            attrs.update(r.annotations)
        parent = span_context(r.trace_id, r.parent_id) if r.parent_id else None
        out.append(
            ReadableSpan(
                f"send {r.name}",
                self._fire_context(r),
                parent,
                self._resource,
                attrs,
                (),
                r.links or (),
                _KIND_PRODUCER,
                None,
                _OK,
                r.sent_ns,
                r.end_ns,
                SCOPE,
            )
        )

    def _build_delivery(self, r: DeliveryRecord, out: list[ReadableSpan]) -> None:
        fire = r.fire
        attrs: dict[str, types.AttributeValue] = {
            "messaging.system": "bus",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": fire.name,
            "bus.service": r.service,
            "bus.listener.pattern": r.pattern,
            "bus.queued_ms": (r.start_ns - fire.sent_ns) / 1e6,
        }
        if r.thread:  # none for a delivery the mailbox refused
            attrs["thread.name"] = r.thread
        events, status = self._outcome(attrs, r, r.error, r.end_ns)
        out.append(
            ReadableSpan(
                f"process {fire.name}",
                span_context(fire.trace_id, r.span_id),
                self._fire_context(fire),
                self._resource,
                attrs,
                events,
                getattr(r, "links", None) or (),
                _KIND_CONSUMER,
                None,
                status,
                r.start_ns,
                r.end_ns,
                SCOPE,
            )
        )
