"""What the hot path writes down about each command and event.

A record is a plain slotted object filled in by the threads that send and
handle the work; building OpenTelemetry span objects from it happens later, on
the bus's trace thread (see ``_tracing``), so a traced call costs a few field
writes rather than the tens of microseconds an SDK span costs.

Arguments and results whose types are immutable atoms are kept as they are and
encoded later; anything mutable is encoded at once, so what the trace shows is
what the handler was given, not what it later turned the value into.
"""

from __future__ import annotations

import time
import traceback
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._jsonval import ATOMIC_TYPES, Encoded, Redactor, encode

__all__ = ["BusSpan", "CallRecord", "DeliveryRecord", "FireRecord", "freeze", "span_context"]

SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def freeze(value: Any, limit: int, redact: Redactor | None) -> Any:
    """Keep ``value`` if it is safe to encode later, else encode it now."""
    kind = type(value)
    if kind in ATOMIC_TYPES:
        return value
    if kind is tuple:
        for v in value:
            if type(v) not in ATOMIC_TYPES:
                return encode(list(value), limit, redact)
        return value
    if kind is dict:
        # A **kwargs dict is the bus's own (the handler gets a fresh one), so
        # only its values can change under us.
        for v in value.values():
            if type(v) not in ATOMIC_TYPES:
                return encode(value, limit, redact)
        return value
    return encode(value, limit, redact)


class _Record:
    """Fields shared by every record: identity, timing, and user annotations."""

    __slots__ = (
        "annotations",
        "args",
        "caller",
        "events",
        "kwargs",
        "links",
        "name",
        "parent_ctx",
        "parent_id",
        "trace_id",
    )

    name: str
    trace_id: int
    parent_id: int
    parent_ctx: otel_context.Context | None
    caller: str
    args: Any
    kwargs: Any
    annotations: dict[str, types.AttributeValue] | None
    events: list[tuple[str, dict[str, types.AttributeValue], int]] | None
    links: list[trace.Link] | None


class CallRecord(_Record):
    """One command: its CLIENT span (caller) and SERVER span (handler)."""

    __slots__ = (
        "client_id",
        "end_ns",
        "error",
        "handled_ns",
        "hop",
        "result",
        "sent_ns",
        "server_id",
        "service",
        "status_message",
        "thread",
        "traceback",
        "wire",
    )

    client_id: int
    server_id: int
    sent_ns: int
    handled_ns: int
    end_ns: int
    service: str
    thread: str
    result: Any
    error: BaseException | None
    traceback: TracebackType | None  # the handler's frames, taken as it failed
    status_message: str | None
    # Across processes each side has one span: "client" in the caller's
    # process (the handler is remote), "server" in the handler's (the caller
    # is remote, its CLIENT span the parent); None for both, in process.
    hop: str | None
    wire: dict[str, types.AttributeValue] | None  # the transport's attributes

    @property
    def span_id(self) -> int:
        """The SERVER span's id: the parent of whatever the handler does."""
        return self.server_id


class FireRecord(_Record):
    """One ``fire_event``: its PRODUCER span."""

    __slots__ = ("context", "end_ns", "listeners", "remote", "sent_ns", "span_id", "wire")

    context: SpanContext | None  # built once by the trace thread, shared with consumers
    span_id: int
    sent_ns: int
    end_ns: int
    listeners: int
    # An event fired in another process: its PRODUCER span is the sender's
    # (``span_id`` is that span's), so this record only parents deliveries.
    remote: bool
    wire: dict[str, types.AttributeValue] | None  # the transport's attributes


class DeliveryRecord:
    """One listener call for one event: its CONSUMER span."""

    __slots__ = (
        "annotations",
        "end_ns",
        "error",
        "events",
        "fire",
        "links",
        "pattern",
        "service",
        "span_id",
        "start_ns",
        "thread",
        "traceback",
    )

    start_ns: int
    end_ns: int
    thread: str
    error: BaseException | None
    traceback: TracebackType | None
    annotations: dict[str, types.AttributeValue] | None
    events: list[tuple[str, dict[str, types.AttributeValue], int]] | None
    links: list[trace.Link] | None

    def __init__(self, fire: FireRecord, pattern: str, service: str, span_id: int) -> None:
        # The other fields are set when the listener has run; the optional
        # ones only if the listener annotates its span (see BusSpan).
        self.fire = fire
        self.pattern = pattern
        self.service = service
        self.span_id = span_id

    @property
    def trace_id(self) -> int:
        """The trace the event belongs to."""
        return self.fire.trace_id


AnyRecord = CallRecord | FireRecord | DeliveryRecord


def span_context(trace_id: int, span_id: int) -> SpanContext:
    """A sampled, local ``SpanContext``, built without re-validating the ids."""
    return _new_tuple(SpanContext, (trace_id, span_id, False, SAMPLED, _NO_STATE, True))


def _checked_span_context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=SAMPLED)


_new_tuple = tuple.__new__
_NO_STATE = trace.DEFAULT_TRACE_STATE
# SpanContext is a tuple whose constructor validates the ids, which costs a
# third of a microsecond; the bus's ids are valid by construction. Use the
# direct route only if it yields exactly what the constructor does.
if span_context(1, 2) != _checked_span_context(1, 2) or not span_context(1, 2).is_valid:
    span_context = _checked_span_context


class BusSpan(trace.Span):
    """The span a handler sees as current: the bus's SERVER or CONSUMER span.

    Spans the handler opens nest under it, and what the handler sets on it
    (``trace.get_current_span().set_attribute(...)``) is exported with it.
    Only the handler's own thread writes to it while it runs.

    When the handler returns, ``release()`` lets go of the record: contexts
    captured inside the handler (by the commands and events it sent, or by a
    user's spans) keep this span alive, and through the record they would
    keep every earlier step of a causal chain alive with it. Afterwards the
    span holds only its ids, and writes to it are ignored, as for any ended
    span.
    """

    __slots__ = ("_context", "_record", "span_id", "trace_id")

    def __init__(self, record: CallRecord | DeliveryRecord, trace_id: int, span_id: int) -> None:
        self._record: CallRecord | DeliveryRecord | None = record
        self.trace_id = trace_id
        self.span_id = span_id
        self._context: SpanContext | None = None

    def release(self) -> None:
        """Forget the record: the handler has returned, and the span has ended."""
        self._record = None

    def get_span_context(self) -> SpanContext:
        if self._context is None:
            self._context = span_context(self.trace_id, self.span_id)
        return self._context

    def is_recording(self) -> bool:
        return self._record is not None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        record = self._record
        if record is None:
            return
        if getattr(record, "annotations", None) is None:
            record.annotations = {}
        record.annotations[key] = value  # type: ignore[index]

    def set_attributes(self, attributes: dict[str, types.AttributeValue]) -> None:  # type: ignore[override]
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        record = self._record
        if record is None:
            return
        if getattr(record, "events", None) is None:
            record.events = []
        events = record.events
        assert events is not None
        events.append((name, dict(attributes or {}), timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        record = self._record
        if record is None:
            return
        if getattr(record, "links", None) is None:
            record.links = []
        links = record.links
        assert links is not None
        links.append(trace.Link(context, attributes))

    def update_name(self, name: str) -> None:
        """Ignored: a bus span is named after its command or event."""

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Ignored: the bus sets the status from the handler's outcome."""

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        attrs: dict[str, types.AttributeValue] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
        }
        attrs.update(attributes or {})
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """Ignored: the bus ends its spans when the handler returns."""


def encoded_text(value: Any, limit: int, redact: Redactor | None) -> Encoded:
    """The JSON of a value kept by ``freeze`` (already encoded, or encoded now)."""
    if isinstance(value, Encoded):
        return value
    if type(value) is tuple:
        return encode(list(value), limit, redact)
    return encode(value, limit, redact)
