"""Spans that decoded but cannot be used as they are: out-of-range times and numbers.

    checker = SpanChecker()
    span, problems = checker.check(readable_span)   # span is None when left out

OTLP JSON carries times and integers as decimal strings, so a file can hold
any number: ``10**30`` nanoseconds, an attribute past the 64-bit range.
Shown, exported or replayed as they are, they crash (``datetime`` overflows,
protobuf refuses them) or mislead (a span that ends before it starts). Each
is mended where a faithful reading exists and reported in one line; a span
with no usable start time is left out, reported, and everything else is
still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link

from bus.otlp import DecodedEvent, DecodedLink, DecodedResource, DecodedSpan

from ..render.text import clipped, visible

__all__ = ["SpanChecker"]

_MAX_TIME = 2**64 - 1  # OTLP's fixed64 nanoseconds since the epoch (to the year 2554)
_INT64 = (-(2**63), 2**63 - 1)  # OTLP's intValue


def _number(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"a {len(text)}-digit number"


def _time_ok(value: Any) -> bool:
    return isinstance(value, int) and 0 <= value <= _MAX_TIME


def _int_ok(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or _INT64[0] <= value <= _INT64[1]


def _fits(value: Any) -> bool:
    """Whether every integer in a value, however nested in lists and maps, is an int64."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is int:
            if not _INT64[0] <= item <= _INT64[1]:
                return False
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
    return True


def _ints_fit(attributes: Mapping[str, Any] | None) -> bool:
    for value in (attributes or {}).values():
        kind = type(value)
        if kind is str or kind is float or kind is bool:  # the common atoms, at once
            continue
        if kind is int:
            if not _INT64[0] <= value <= _INT64[1]:
                return False
        elif not _fits(value):
            return False
    return True


def _as_text_past_64_bits(value: Any) -> Any:
    """``value`` with each integer beyond the int64 range, however nested, as its text."""
    if isinstance(value, int) and not _int_ok(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_as_text_past_64_bits(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _as_text_past_64_bits(v) for k, v in value.items()}
    return value


def _mend_attributes(
    attributes: Mapping[str, Any] | None, where: str, problems: list[str]
) -> dict[str, Any] | None:
    """The attributes with out-of-range integers as their decimal text; ``None`` if all fit."""
    if not attributes:
        return None
    mended: dict[str, Any] | None = None
    for key, value in attributes.items():
        if _fits(value):
            continue
        if mended is None:
            mended = dict(attributes)
        mended[key] = _as_text_past_64_bits(value)
        problems.append(
            f"{where}attribute '{clipped(visible(key), 60)}': an integer beyond the "
            "64-bit range, kept as text"
        )
    return mended


class SpanChecker:
    """Checks decoded spans one by one; a resource shared by many is checked once."""

    def __init__(self) -> None:
        # id -> (resource, its mended copy or None, problems not yet reported)
        self._resources: dict[int, tuple[Resource, Resource | None, list[str]]] = {}
        self._plain: dict[int, tuple[Resource, dict[str, Any]]] = {}

    def attributes_of(self, resource: Resource) -> dict[str, Any]:
        """The resource's attributes as one plain dict, shared by every span that has it."""
        known = self._plain.get(id(resource))
        if known is None or known[0] is not resource:
            known = self._plain[id(resource)] = (resource, dict(resource.attributes))
        return known[1]

    def _checked_resource(self, resource: Resource) -> tuple[Resource, Resource | None, list[str]]:
        known = self._resources.get(id(resource))
        if known is None or known[0] is not resource:
            found: list[str] = []
            attributes = _mend_attributes(resource.attributes, "resource ", found)
            mended = (
                None
                if attributes is None
                else DecodedResource(
                    attributes,
                    resource.schema_url,
                    dropped_attributes=getattr(resource, "dropped_attributes", 0),
                )
            )
            known = self._resources[id(resource)] = (resource, mended, found)
        return known

    def _resource(self, resource: Resource, problems: list[str]) -> Resource | None:
        """The mended resource, or ``None``; its problems go with the first span that uses it."""
        _, mended, found = self._checked_resource(resource)
        problems.extend(found)
        found.clear()
        return mended

    def check(self, span: ReadableSpan) -> tuple[ReadableSpan | None, list[str]]:
        """``(span to use or None, one line per problem)``; the span itself when all is well."""
        start, end = span.start_time, span.end_time
        if (
            type(start) is int
            and type(end) is int
            and 0 <= start <= end <= _MAX_TIME
            and not span.events
            and not span.links
            and _ints_fit(span.attributes)
            and self._checked_resource(span.resource)[1] is None
        ):
            return span, []  # the common case, kept cheap: files hold 100,000s of spans
        ctx = span.context
        assert ctx is not None
        who = f"span {ctx.span_id:016x} ('{clipped(visible(span.name), 60)}')"
        if not _time_ok(start):
            shown = _number(start) if isinstance(start, int) else repr(start)
            return None, [f"{who}: start time {shown} ns is out of range: the span is left out"]
        assert isinstance(start, int)
        problems: list[str] = []
        changed: dict[str, Any] = {}
        if not _time_ok(end):
            shown = _number(end) if isinstance(end, int) else repr(end)
            problems.append(f"{who}: end time {shown} ns is out of range: shown as taking no time")
            changed["end_time"] = start
        elif end is not None and end < start:
            problems.append(
                f"{who}: ends {(start - end) / 1e6:,.3f} ms before it starts: "
                "shown as taking no time"
            )
            changed["end_time"] = start
        found: list[str] = []
        attributes = _mend_attributes(span.attributes, "", found)
        if attributes is not None:
            changed["attributes"] = attributes
        events = []
        events_changed = False
        for i, event in enumerate(span.events):
            event_attributes = _mend_attributes(event.attributes, f"event {i}: ", found)
            stamp = event.timestamp
            if not _time_ok(stamp):
                found.append(
                    f"event {i}: time {_number(stamp)} ns is out of range: set to the start"
                )
                stamp = start
            if event_attributes is None and stamp == event.timestamp:
                events.append(event)
                continue
            events_changed = True
            attrs = event_attributes if event_attributes is not None else event.attributes
            events.append(
                DecodedEvent(event.name, attrs, stamp, dropped_attributes=event.dropped_attributes)
            )
        if events_changed:
            changed["events"] = events
        links = []
        links_changed = False
        for i, link in enumerate(span.links):
            link_attributes = _mend_attributes(link.attributes, f"link {i}: ", found)
            if link_attributes is None:
                links.append(link)
                continue
            links_changed = True
            links.append(_link(link, link_attributes))
        if links_changed:
            changed["links"] = links
        resource = self._resource(span.resource, found)
        if resource is not None:
            changed["resource"] = resource
        problems.extend(f"{who}: {problem}" for problem in found)
        if not changed:
            return span, problems
        return _rebuilt(span, changed), problems


def _link(link: Link, attributes: dict[str, Any]) -> Link:
    if isinstance(link, DecodedLink):
        return DecodedLink(
            link.context,
            attributes,
            otlp_flags=link.otlp_flags,
            otlp_trace_state=link.otlp_trace_state,
            dropped_attributes=link.dropped_attributes,
        )
    return Link(link.context, attributes)


def _rebuilt(span: ReadableSpan, changed: dict[str, Any]) -> ReadableSpan:
    if isinstance(span, DecodedSpan):  # what the SDK's span cannot hold goes along
        return span.replaced(**changed)
    fields: dict[str, Any] = {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "resource": span.resource,
        "attributes": span.attributes,
        "events": span.events,
        "links": span.links,
        "kind": span.kind,
        "status": span.status,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "instrumentation_scope": span.instrumentation_scope,
    }
    fields.update(changed)
    return ReadableSpan(**fields)
