"""The span tree of a trace file: spans, traces, and what the bus recorded on them.

from busctl.traces import read_trace_file

for trace in read_trace_file("traces/sample.jsonl").traces():
    for span, depth in trace.walk():
        print("  " * depth, span.name, span.service, f"{span.duration_ms:.2f} ms")
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import StatusCode

__all__ = ["BUS_KEYS", "NOT_JSON", "Span", "json_value"]

_KIND_NAMES = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


class _NotJson:
    """The value of an argument list or result that was not recorded as JSON."""

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Any = _NotJson()
"""Returned by ``Span.json`` when the recorded text is truncated, lossy or missing."""

BUS_KEYS = frozenset(
    {
        "rpc.system.name",
        "rpc.method",
        "messaging.system",
        "messaging.destination.name",
        "messaging.operation.type",
        "messaging.operation.name",
        "thread.name",
        "error.type",
    }
)
"""Attributes the bus writes on its spans besides its own ``bus.*`` ones (``docs/traces.md``)."""

_HANDLERS = frozenset({"server", "consumer"})


def json_value(value: Any) -> Any:
    """An attribute value as JSON data, spelled as OTLP JSON spells what JSON cannot hold.

    Bytes become their base64 text, non-finite doubles ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``; lists and maps are converted inside.
    Iterative: a value read from a file may be nested deep.
    """
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, into, key = stack.pop()
        if isinstance(item, float):
            item = item if math.isfinite(item) else _NON_FINITE[str(item)]
        elif isinstance(item, bytes | bytearray):
            item = base64.b64encode(item).decode("ascii")
        elif isinstance(item, Mapping):
            shaped: dict[str, Any] = dict.fromkeys(str(k) for k in item)  # keeps their order
            stack.extend((v, shaped, str(k)) for k, v in item.items())
            item = shaped
        elif isinstance(item, list | tuple):
            listed: list[Any] = [None] * len(item)
            stack.extend((v, listed, i) for i, v in enumerate(item))
            item = listed
        elif not isinstance(item, str | int | bool) and item is not None:
            item = str(item)
        into[key] = item
    return root[0]


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


@dataclass(eq=False, slots=True)
class Span:
    """One recorded span, with the bus's attributes made easy to reach.

    Attributes:
        trace_id: 32 lower-case hex digits.
        span_id: 16 lower-case hex digits.
        parent_id: the parent's span id, or ``None`` for a root.
        name: the span's name (``lights.turn_on``, ``send motion.detected``).
        kind: ``client``, ``server``, ``producer``, ``consumer``, ``internal``,
            or ``unspecified`` (kind 0 in the file).
        start_ns: start, in nanoseconds since the epoch.
        end_ns: end, in nanoseconds since the epoch.
        attributes: every attribute, decoded.
        error: whether the span's status is ERROR.
        status_message: the status description (``SensorError: ...``).
        events: ``(name, attributes, time_ns)`` of each span event.
        links: ``(trace_id, span_id, attributes)`` of each link.
        resource: the resource's attributes (``service.name``...).
        line: the line of the trace file the span came from (0 if none).
        children: the spans whose parent this is, in start order.
        parent: the parent span, when it is in the same file.
        source: the SDK span it was built from (what OTLP exporters take).
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool = False
    status_message: str | None = None
    events: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    resource: Mapping[str, Any] = field(default_factory=dict)  # shared by a bus's spans
    line: int = 0
    children: list[Span] = field(default_factory=list)
    parent: Span | None = None
    source: ReadableSpan | None = field(default=None, repr=False)
    _thread: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_readable(
        cls, span: ReadableSpan, line: int = 0, resource: Mapping[str, Any] | None = None
    ) -> Span:
        """Build from an SDK ``ReadableSpan`` (as ``bus.otlp.decode_spans`` returns).

        Args:
            resource: the resource's attributes as a plain dict, when the
                caller keeps one per resource (the SDK's mapping takes a lock
                on every read).
        """
        ctx = span.context
        assert ctx is not None
        kind = _KIND_NAMES.get(span.kind, "internal")
        if getattr(span, "otlp_kind", None) == 0:  # written as SPAN_KIND_UNSPECIFIED
            kind = "unspecified"
        return cls(
            trace_id=f"{ctx.trace_id:032x}",
            span_id=f"{ctx.span_id:016x}",
            parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
            name=span.name,
            kind=kind,
            start_ns=span.start_time or 0,
            end_ns=span.end_time or 0,
            attributes=dict(span.attributes or {}),
            error=span.status.status_code is StatusCode.ERROR,
            status_message=span.status.description,
            events=[(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
            links=[
                (
                    f"{k.context.trace_id:032x}",
                    f"{k.context.span_id:016x}",
                    dict(k.attributes or {}),
                )
                for k in span.links
            ],
            resource=(
                resource
                if resource is not None
                else dict(span.resource.attributes)
                if span.resource
                else {}
            ),
            line=line,
            source=span,
        )

    # -- what the bus recorded ---------------------------------------------------

    @property
    def duration_ms(self) -> float:
        """How long the span lasted, in milliseconds."""
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def command(self) -> str | None:
        """The command's name, for a command's CLIENT or SERVER span."""
        value = self.attributes.get("rpc.method")
        return value if isinstance(value, str) else None

    @property
    def event(self) -> str | None:
        """The event's name, for an event's PRODUCER or CONSUMER span."""
        value = self.attributes.get("messaging.destination.name")
        return value if isinstance(value, str) else None

    @property
    def operation(self) -> str:
        """The command or event name, else the span's name."""
        return self.command or self.event or self.name

    @property
    def service(self) -> str:
        """The service the span ran on: the handler's, or the caller's for a sender."""
        if self.kind in ("client", "producer"):
            caller = self.attributes.get("bus.caller")
            if isinstance(caller, str):
                return caller
        value = self.attributes.get("bus.service") or self.resource.get("service.name")
        return str(value) if value else "?"

    @property
    def is_bus(self) -> bool:
        """Whether the bus made this span (a command's or an event's), not an application."""
        return (
            self.attributes.get("rpc.system.name") == "bus"
            or self.attributes.get("messaging.system") == "bus"
        )

    @property
    def thread(self) -> str:
        """The thread the span ran on.

        Its ``thread.name`` (a handler's thread). A span that records none and
        is not a handler's (a command called or an event fired from inside a
        handler, a span a user opened there) ran on the thread of the span
        that encloses it in the same process; without one, on the caller's
        (``bus.caller``) or, failing that, the service's. Worked out once,
        without recursion, however long the chain.
        """
        if self._thread is not None:
            return self._thread
        path: list[Span] = []
        span = self
        while True:
            own = span.attributes.get("thread.name")
            if isinstance(own, str):
                found = own
                break
            if span._thread is not None:
                found = span._thread
                break
            path.append(span)
            parent = span.parent
            if (
                span.kind in _HANDLERS
                or parent is None
                or (parent.resource is not span.resource and parent.resource != span.resource)
            ):
                found = span.service
                break
            span = parent
        for member in path:
            member._thread = found
        return found

    @property
    def error_type(self) -> str | None:
        """``error.type`` of a failed span."""
        value = self.attributes.get("error.type")
        return str(value) if value is not None else None

    @property
    def error_text(self) -> str | None:
        """Why the span failed, ``None`` if it did not.

        The status message; else ``error.type``; else the recorded exception
        (``ValueError: no``); else ``"error"``: a failed span always says so.
        """
        if not self.error:
            return None
        if self.status_message:
            return self.status_message
        if self.error_type:
            return self.error_type
        for name, attributes, _ in self.events:
            if name == "exception":
                kind = attributes.get("exception.type")
                message = attributes.get("exception.message")
                if kind is not None or message is not None:
                    return ": ".join(str(p) for p in (kind, message) if p is not None)
        return "error"

    def own_attributes(self) -> dict[str, Any]:
        """The attributes that are not the bus's: a span's own, a user's additions to a bus span."""
        if not self.is_bus:
            return self.attributes
        return {
            key: value
            for key, value in self.attributes.items()
            if not key.startswith("bus.") and key not in BUS_KEYS
        }

    def own_events(self) -> list[tuple[str, dict[str, Any], int]]:
        """The span's events, less a failed bus span's ``exception`` event (its error says it)."""
        if not self.is_bus:
            return self.events
        return [e for e in self.events if e[0] != "exception"]

    def own_links(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The span's links, less a bus span's link to what it replays (``replayed`` says it)."""
        if not self.is_bus:
            return self.links
        return [k for k in self.links if k[2].get("bus.replay") is not True]

    def to_json(self) -> dict[str, Any]:
        """The span's attributes, events and links as JSON data (``json_value``'s spelling)."""
        return {
            "attributes": json_value(self.attributes),
            "events": [
                {"name": name, "time_unix_nano": time, "attributes": json_value(attributes)}
                for name, attributes, time in self.events
            ],
            "links": [
                {"trace_id": trace_id, "span_id": span_id, "attributes": json_value(attributes)}
                for trace_id, span_id, attributes in self.links
            ],
        }

    @property
    def replayed(self) -> bool:
        """Whether the span was produced by a replay (and so links to the original)."""
        if self.attributes.get("bus.replayed") is True:
            return True
        return any(attrs.get("bus.replay") is True for _, _, attrs in self.links)

    def json(self, key: str) -> Any:
        """The recorded JSON attribute ``key`` (``bus.args``...) decoded, or ``NOT_JSON``.

        ``NOT_JSON`` when it is missing, or marked truncated or lossy by the
        bus: such a value cannot be sent again faithfully.
        """
        text = self.attributes.get(key)
        if not isinstance(text, str):
            return NOT_JSON
        if self.attributes.get(key + ".truncated") or self.attributes.get(key + ".lossy"):
            return NOT_JSON
        try:
            return json.loads(text)
        except ValueError:
            return NOT_JSON

    @property
    def server(self) -> Span | None:
        """For a command's CLIENT span, its SERVER span (the handler's) if recorded."""
        for child in self.children:
            if child.kind == "server":
                return child
        return None

    def descendants(self) -> Iterator[Span]:
        """Every span under this one, depth first, in start order.

        Iterative: a causal chain may be thousands of spans deep.
        """
        stack = list(reversed(self.children))
        while stack:
            span = stack.pop()
            yield span
            stack.extend(reversed(span.children))
