"""What the hot path writes down about each command and event.

While a command runs, a small slotted ``CallRecord`` goes with it from caller
to handler; an event carries one shared, immutable *head* tuple to all its
listeners, and each listener's ``BusSpan`` (the span its handler sees as
current) takes what the handler annotates. When the work is done, what was
written down is *flattened* into one tuple of ids, numbers, strings and
encoded values, and queued for the trace thread (``_sink``), which builds
spans from it off the hot path.

Flat records keep ids, never the objects around them (contexts, spans,
parent records), so a causal chain of a million hops holds nothing of its
earlier hops; and a tuple of atoms is one the garbage collector stops
tracking, so a backlog of thousands of queued records costs the collector
nothing. The layouts (the first item says which):

    (CALL, trace_id, parent_id, client_id, server_id, name, caller, service,
     args, kwargs, sent_ns, handled_ns, end_ns, thread, result,
     error, traceback, status_message, extras, hop, wire)
    (FIRE, trace_id, parent_id, span_id, name, caller, args, kwargs,
     sent_ns, end_ns, listeners, extras, wire)
    (DELIVERY, trace_id, fire_span_id, span_id, name, pattern, service,
     fire_sent_ns, start_ns, end_ns, thread, error, traceback, extras, wire)

``extras`` is ``None`` or ``(annotations, events, links)``: what a handler
set on its span, or the replay marking. ``error`` and ``traceback`` are the
handler's exception and its frames (taken as it failed), ``None`` otherwise;
``status_message`` is set for a command that never ran. Across processes
(the NATS transport) a command has one span on each side: ``hop`` is
``"client"`` in the caller's process (the handler is remote) and
``"server"`` in the handler's (the caller is remote, its CLIENT span the
parent), ``None`` in process; ``wire`` is ``None`` or attributes every span
of the record carries: the transport's (``messaging.system=nats``, the
server, the group...), a console hold's (``bus.held_ms``, ``bus.edited``,
see ``Hub.held``) and a live stub's ``bus.stubbed``.

Arguments and results whose types are immutable atoms are kept as they are
and encoded later; anything mutable is encoded at once (``freeze``), so what
the trace shows is what the handler was given, not what it later turned the
value into.
"""

from __future__ import annotations

import time
import traceback
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._jsonval import ATOMIC_TYPES, Encoded, Redactor, encode

__all__ = [
    "CALL",
    "DELIVERY",
    "FIRE",
    "WATCHED",
    "BusSpan",
    "CallRecord",
    "Extras",
    "Flat",
    "encoded_text",
    "freeze",
    "span_context",
    "span_count",
]

CALL, FIRE, DELIVERY = 0, 1, 2


class _Watched:
    """The ticket of work that is watched but not traced."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WATCHED"


WATCHED: Any = _Watched()
"""The ticket the hub gives work that watchers see and no span records."""

Flat = tuple[Any, ...]
"""A finished record, flattened (see the layouts above)."""

Extras = tuple[
    dict[str, types.AttributeValue] | None,
    list[tuple[str, dict[str, types.AttributeValue], int]] | None,
    list[trace.Link] | None,
]
"""``(annotations, events, links)`` that a handler or a replay put on a span."""

SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def span_count(record: Flat) -> int:
    """How many spans a flat record makes: two for a command that ran here, else one."""
    return 2 if record[0] == CALL and record[17] is None and record[19] is None else 1


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


def encoded_text(value: Any, limit: int, redact: Redactor | None) -> Encoded:
    """The JSON of a value kept by ``freeze`` (already encoded, or encoded now)."""
    if isinstance(value, Encoded):
        return value
    if type(value) is tuple:
        return encode(list(value), limit, redact)
    return encode(value, limit, redact)


class CallRecord:
    """One command in flight: written by its caller, then by its handler's thread."""

    __slots__ = (
        "args",
        "caller",
        "client_id",
        "extras",
        "handled_ns",
        "hop",
        "kwargs",
        "name",
        "parent_id",
        "sent_ns",
        "server_id",
        "service",
        "thread",
        "trace_id",
        "wire",
    )

    trace_id: int
    parent_id: int
    client_id: int
    server_id: int
    name: str
    caller: str
    service: str
    args: Any
    kwargs: Any
    sent_ns: int
    handled_ns: int
    thread: str
    extras: Extras | None
    hop: str | None
    wire: dict[str, types.AttributeValue] | None

    def flat(
        self,
        end_ns: int,
        result: Any,
        error: BaseException | None,
        tb: TracebackType | None,
        status_message: str | None,
    ) -> Flat:
        """The finished command, as the trace thread takes it."""
        return (
            CALL, self.trace_id, self.parent_id, self.client_id, self.server_id, self.name,
            self.caller, self.service, self.args, self.kwargs, self.sent_ns, self.handled_ns,
            end_ns, self.thread, result, error, tb, status_message, self.extras, self.hop,
            self.wire,
        )  # fmt: skip


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
    Only the handler's own thread writes to it while it runs; when the
    handler returns, ``release()`` ends it and later writes are ignored, as
    for any ended span. It holds ids and what was set on it, nothing else, so
    contexts captured inside the handler keep nothing else alive.
    """

    __slots__ = ("_context", "_extras", "_live", "span_id", "trace_id")

    def __init__(self, trace_id: int, span_id: int, extras: Extras | None = None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self._live = True
        self._context: SpanContext | None = None
        # [annotations, events, links], made when the handler first sets one.
        self._extras: list[Any] | None = None if extras is None else list(extras)

    def extras(self) -> Extras | None:
        """What was set on the span, or ``None`` when nothing was."""
        found = self._extras
        return None if found is None else (found[0], found[1], found[2])

    def _slot(self, index: int, make: Any) -> Any:
        found = self._extras
        if found is None:
            found = self._extras = [None, None, None]
        if found[index] is None:
            found[index] = make()
        return found[index]

    def release(self) -> None:
        """End the span: the handler has returned; later writes are ignored."""
        self._live = False

    def get_span_context(self) -> SpanContext:
        if self._context is None:
            self._context = span_context(self.trace_id, self.span_id)
        return self._context

    def is_recording(self) -> bool:
        return self._live

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._live:
            self._slot(0, dict)[key] = value

    def set_attributes(self, attributes: dict[str, types.AttributeValue]) -> None:  # type: ignore[override]
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._live:
            events = self._slot(1, list)
            events.append((name, dict(attributes or {}), timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._live:
            self._slot(2, list).append(trace.Link(context, attributes))

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
