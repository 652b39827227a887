"""The spans of a flat record: as SDK ``ReadableSpan``s, or straight as OTLP JSON.

A command's record makes a CLIENT and a SERVER span, an event's a PRODUCER
span, each delivery's a CONSUMER span, following the RPC and messaging
semantic conventions (``docs/bus.md`` lists the attributes). ``_Spans``
(``_span_parts``) works out each span's parts once, in one place; its two
makers here turn the parts into what a consumer needs:

- ``SpanBuilder`` makes ``ReadableSpan`` objects, for an application's span
  processors (and ``bus.spans.spans()``);
- ``OtlpSpans`` makes OTLP JSON span objects directly, for the console and
  the ring, with no SDK object in between; ``OtlpLines`` (``_otlp_lines``)
  makes their text, for the bus's own trace files.

Both run on the trace thread (or wherever the console reads the ring). The
attributes that depend only on the name and the services are made once per
such combination and copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, Link, SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode

from .._core._accel import ENV as PURE_PYTHON_ENV
from .._core._version import VERSION
from ._jsonval import Encoded, Redactor
from ._otlp import encode_attributes, encode_event, encode_link, encode_resource
from ._records import CALL, DELIVERY, FIRE, SAMPLED, Flat, span_context
from ._span_parts import _CLIENT, _CONSUMER, _PRODUCER, _SERVER, Attrs, EventParts, _Spans
from ._span_parts import _TEMPLATES_MAX as _TEMPLATES_MAX  # for OtlpLines

try:
    from . import _speedups_otlp
except ImportError:  # built without a compiler: the Python code makes every span
    _speedups_otlp = None  # type: ignore[assignment]

__all__ = [
    "SCOPE",
    "Attrs",
    "EventParts",
    "OtlpSpans",
    "ReferenceSpanBuilder",
    "SpanBuilder",
]

SCOPE = InstrumentationScope("bus", VERSION)
_OK = Status(StatusCode.UNSET)
_PRODUCERS_MAX = 1024  # events whose context is kept for deliveries still to come
_new_object = object.__new__
_FLAGS = 0x101  # sampled, and "has is-remote" (the parent is local)
# OTLP counts kinds from UNSPECIFIED = 0. Keyed by the member's name: an
# enum's .value is a slow property, and hashing a member calls Python code.
_OTLP_KIND = {kind._name_: kind.value + 1 for kind in SpanKind}
# What ReadableSpan.__init__ sets, in its order: SdkSpans (C) sets the same.
_SPAN_ATTRIBUTES = (
    "_name", "_context", "_kind", "_instrumentation_info", "_instrumentation_scope", "_parent",
    "_start_time", "_end_time", "_attributes", "_events", "_links", "_resource", "_status",
)  # fmt: skip
_C_READY = False  # set below, once C's spans are found to be the SDK's constructors'


class SpanBuilder(_Spans):
    """Makes the spans of flat records as SDK ``ReadableSpan`` objects.

    Each span is a plain ``ReadableSpan``, made without calling its
    ``__init__``: the same attributes set in the same order on an object of
    the same class, which is what ``__init__`` does, minus the call through
    the type (a third of what a span cost to make). Contexts are made without
    ``SpanContext``'s validation (``span_context``); a delivery's parent is
    its event's context, made once for the event and its deliveries; the
    CLIENT and SERVER spans of a failed call share one ``Status``. At import,
    a span made this way is compared with one the SDK's constructor makes of
    the same values, and if they differ (another SDK release) the SDK's
    constructors are used (``ReferenceSpanBuilder``'s way).

    The common records (those the trace-file encoder writes in C: a command
    that ran here, an event, a delivery, with no failure, annotation or
    transport attribute) are made by the optional C extension
    (``_speedups_otlp.SdkSpans``) where it was built: the same spans, the
    same objects shared, checked at import against the SDK's constructors
    too; this code makes every other record, in order, and all of them
    with ``BUS_PURE_PYTHON=1``.

    Args:
        resource: the resource every span carries (the provider's).
        json_limit: the most characters of JSON per argument list or result.
        redact: the redaction hook for keyword arguments and dict entries.
        accelerated: make the common records in C; ``None`` (the default)
            means where it was built and ``BUS_PURE_PYTHON`` is not set.
    """

    def __init__(
        self,
        resource: Resource,
        *,
        json_limit: int,
        redact: Redactor | None,
        accelerated: bool | None = None,
    ) -> None:
        super().__init__(resource, json_limit=json_limit, redact=redact)
        # The last span made: (trace id, span id, its context).
        self._last: tuple[int, int, SpanContext | None] = (0, 0, None)
        # The contexts of recent events' PRODUCER spans, by span id: the
        # parent of each of their deliveries (whichever record comes first).
        self._producers: dict[int, SpanContext] = {}
        # The last failure's status description and Status.
        self._failure: tuple[str | None, Status] = (None, _OK)
        if accelerated is None:
            accelerated = os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")
        self._c: Any = None
        if accelerated and _C_READY and type(self)._span is SpanBuilder._span:
            self._c = _sdk_spans(self)

    @property
    def accelerated(self) -> bool:
        """Whether the C extension makes the common records' spans."""
        return self._c is not None

    def build(self, record: Flat, out: list[Any]) -> None:
        """Append the spans of ``record`` to ``out`` (in C if it is a common one)."""
        if self._c is None or not self._c.build(record, out):
            super().build(record, out)

    def build_many(
        self, records: list[Flat], out: list[Any], failed: Callable[[Flat, Exception], None]
    ) -> list[Flat]:
        """As ``_Spans.build_many``: the common records in C, the others here, in order."""
        if self._c is None:
            return super().build_many(records, out, failed)
        made: list[Flat] = self._c.build_many(records, out, failed)
        return made

    def _producer(self, trace_id: int, span_id: int) -> SpanContext:
        """An event's context, made now and kept for its PRODUCER span and deliveries."""
        producers = self._producers
        if len(producers) >= _PRODUCERS_MAX:
            producers.clear()
        made = producers[span_id] = span_context(trace_id, span_id)
        return made

    def _status(self, error: str) -> Status:
        last, status = self._failure
        if last != error:
            status = Status(StatusCode.ERROR, error)
            self._failure = (error, status)
        return status

    def _span(
        self,
        out: list[Any],
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: SpanKind,
        attrs: Attrs,
        events: EventParts | None,
        links: Sequence[Link],
        error: str | None,
        start_ns: int,
        end_ns: int,
    ) -> None:
        # An event's context is its deliveries' parent: made once for all
        # (the SDK shares a parent's), by whichever record comes first.
        if kind is _CONSUMER and parent_id:
            context = span_context(trace_id, span_id)
            parent = self._producers.get(parent_id)
            if parent is None or parent[0] != trace_id:
                parent = self._producer(trace_id, parent_id)
        else:
            if kind is _PRODUCER:
                found = self._producers.get(span_id)
                context = (
                    found
                    if found is not None and found[0] == trace_id
                    else self._producer(trace_id, span_id)
                )
            else:
                context = span_context(trace_id, span_id)
            parent = None
            if parent_id:
                # A SERVER span's parent is the CLIENT span made just before
                # it: share its context. One tuple, so a reader on another
                # thread (the ring's) sees a consistent one.
                last_trace, last_id, last = self._last
                if parent_id == last_id and trace_id == last_trace:
                    parent = last
                else:
                    parent = span_context(trace_id, parent_id)
        self._last = (trace_id, span_id, context)
        # What ReadableSpan.__init__ sets, in its order (checked at import).
        span = _new_object(ReadableSpan)
        span._name = name
        span._context = context
        span._kind = kind
        span._instrumentation_info = None
        span._instrumentation_scope = SCOPE
        span._parent = parent
        span._start_time = start_ns
        span._end_time = end_ns
        span._attributes = attrs
        span._events = [Event(n, a, t) for n, a, t in events] if events else ()
        span._links = links
        span._resource = self._resource
        span._status = _OK if error is None else self._status(error)
        out.append(span)


class ReferenceSpanBuilder(SpanBuilder):
    """``SpanBuilder`` by the SDK's own constructors, each span and context its own.

    What ``SpanBuilder``'s spans must be indistinguishable from
    (``tests/bus/observe/test_fast_spans.py``), and what it falls back to
    when they are not.
    """

    def _span(
        self,
        out: list[Any],
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: SpanKind,
        attrs: Attrs,
        events: EventParts | None,
        links: Sequence[Link],
        error: str | None,
        start_ns: int,
        end_ns: int,
    ) -> None:
        out.append(
            ReadableSpan(
                name,
                SpanContext(trace_id, span_id, is_remote=False, trace_flags=SAMPLED),
                SpanContext(trace_id, parent_id, is_remote=False, trace_flags=SAMPLED)
                if parent_id
                else None,
                self._resource,
                attrs,
                [Event(n, a, t) for n, a, t in events] if events else (),
                links,
                kind,
                None,
                Status(StatusCode.UNSET) if error is None else Status(StatusCode.ERROR, error),
                start_ns,
                end_ns,
                SCOPE,
            )
        )


def _alike(made: list[ReadableSpan], sdk: list[ReadableSpan]) -> bool:
    """Whether spans are the SDK constructors' through what an exporter reads."""
    return all(
        type(a) is type(b)
        and list(vars(a)) == list(vars(b))
        and a.to_json() == b.to_json()
        and (a.context, a.parent, a.kind, a.status.status_code, a.status.description)
        == (b.context, b.parent, b.kind, b.status.status_code, b.status.description)
        and list((a.attributes or {}).items()) == list((b.attributes or {}).items())
        and a.instrumentation_scope == b.instrumentation_scope
        and a.resource is b.resource
        and (a.dropped_attributes, a.dropped_events, a.dropped_links)
        == (b.dropped_attributes, b.dropped_events, b.dropped_links)
        for a, b in zip(made, sdk, strict=True)
    )


def _same_spans() -> bool:
    """Whether ``SpanBuilder`` makes what the SDK's constructors make of the same values."""
    made: list[ReadableSpan] = []
    sdk: list[ReadableSpan] = []
    resource = Resource.get_empty()
    events: EventParts = [("e", {"a": 1}, 5)]
    try:
        for maker, out in ((SpanBuilder, made), (ReferenceSpanBuilder, sdk)):
            builder = maker(resource, json_limit=64, redact=None, accelerated=False)
            # A call's two spans (failed), an event's and a delivery's.
            builder._span(out, "n", 1, 2, 3, _CLIENT, {"k": "v"}, None, (), "E: x", 4, 6)
            builder._span(out, "n", 1, 4, 2, _SERVER, {"k": "v"}, events, (), "E: x", 4, 6)
            builder._span(out, "send n", 1, 5, 0, _PRODUCER, {}, None, (), None, 4, 6)
            builder._span(out, "process n", 1, 6, 5, _CONSUMER, {}, None, (), None, 5, 6)
        return _alike(made, sdk)
    except Exception:
        return False


def _sdk_spans(builder: SpanBuilder) -> Any:
    """The C maker of ``builder``'s common spans, sharing its state (contexts, ``_last``)."""
    return _speedups_otlp.SdkSpans(
        builder, builder._limit, builder._value_json, builder._build_python, Encoded,
        builder._producers, ReadableSpan, SpanContext, SAMPLED, DEFAULT_TRACE_STATE,
        (_CLIENT, _SERVER, _PRODUCER, _CONSUMER), SCOPE, builder._resource, _OK,
        _SPAN_ATTRIBUTES,
    )  # fmt: skip


def _c_same_spans() -> bool:
    """Whether ``SdkSpans`` (C) makes what the SDK's constructors make of the same records."""
    resource = Resource.get_empty()
    records: list[Flat] = [
        (CALL, 1, 9, 2, 3, "n", "a", "b", (1, "x"), None, 4, 5, 6, "t", 7, None, None, None,
         None, None, None),
        (CALL, 1, 0, 2, 3, "n", "a", "b", (), {"k": 1}, 4, 5, 6, "t", "r", None, None, None,
         None, None, None),
        (FIRE, 1, 3, 5, "e", "b", (2.5,), None, 4, 6, 1, None, None),
        (DELIVERY, 1, 5, 6, "e", "e*", "c", 4, 5, 6, "t", None, None, None, None),
    ]  # fmt: skip
    made: list[ReadableSpan] = []
    sdk: list[ReadableSpan] = []
    try:
        fast = SpanBuilder(resource, json_limit=64, redact=None, accelerated=False)
        fast._c = _sdk_spans(fast)
        if not all(fast._c.build(record, made) for record in records):
            return False
        reference = ReferenceSpanBuilder(resource, json_limit=64, redact=None)
        for record in records:
            reference.build(record, sdk)
        return _alike(made, sdk) and made[5].parent is made[4].context
    except Exception:
        return False


if not _same_spans():  # pragma: no cover - another SDK release
    # The SDK's constructors for every span, as the reference makes them.
    SpanBuilder._span = ReferenceSpanBuilder._span  # type: ignore[assignment]
else:
    _C_READY = _speedups_otlp is not None and _c_same_spans()


class OtlpSpans(_Spans):
    """Makes the spans of flat records as OTLP JSON span objects (``encode_spans``'s).

    ``traces_data`` wraps them, with the resource and scope, as one
    ``TracesData`` object, exactly as ``encode_spans`` would from the
    ``ReadableSpan``s that ``SpanBuilder`` makes of the same records.
    """

    def __init__(self, resource: Resource, *, json_limit: int, redact: Redactor | None) -> None:
        super().__init__(resource, json_limit=json_limit, redact=redact)
        self._head = {
            "resource": encode_resource(resource),
            "scope": {"name": SCOPE.name, "version": SCOPE.version},
        }

    def traces_data(self, records: Sequence[Flat]) -> dict[str, Any]:
        """The spans of ``records`` as one OTLP ``TracesData`` JSON object."""
        spans: list[Any] = []
        for record in records:
            self.build(record, spans)
        return self.wrap(spans)

    def wrap(self, spans: list[Any]) -> dict[str, Any]:
        """OTLP span objects (``build``'s) as one ``TracesData`` object."""
        if not spans:
            return {"resourceSpans": []}
        return {
            "resourceSpans": [
                {
                    "resource": self._head["resource"],
                    "scopeSpans": [{"scope": self._head["scope"], "spans": spans}],
                }
            ]
        }

    def _span(
        self,
        out: list[Any],
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: SpanKind,
        attrs: Attrs,
        events: EventParts | None,
        links: Sequence[Link],
        error: str | None,
        start_ns: int,
        end_ns: int,
    ) -> None:
        span: dict[str, Any] = {"traceId": f"{trace_id:032x}", "spanId": f"{span_id:016x}"}
        if parent_id:
            span["parentSpanId"] = f"{parent_id:016x}"
        span["flags"] = _FLAGS
        span["name"] = name
        span["kind"] = _OTLP_KIND[kind._name_]
        span["startTimeUnixNano"] = str(start_ns)
        span["endTimeUnixNano"] = str(end_ns)
        if attrs:
            span["attributes"] = encode_attributes(attrs)
        if events:
            span["events"] = [encode_event(n, a, t) for n, a, t in events]
        if links:
            span["links"] = [encode_link(link) for link in links]
        span["status"] = {} if error is None else {"code": 2, "message": error}
        out.append(span)
