"""OTLP JSON spans as a tree, and the bars of a waterfall.

    spans = parse_traces(traces_json)        # depth-first, children by start time
    bar = waterfall_bar(span, t0, t1, width=40)

OTLP JSON (``docs/traces.md``): ``resourceSpans[].scopeSpans[].spans[]``,
ids in hex, times as decimal strings of nanoseconds, attributes as
``[{key, value: {stringValue | intValue | doubleValue | boolValue | ...}}]``,
``status.code`` 2 for an error. It is read by ``busctl.traces``, as trace
files are: a span that cannot be read is left out and said so, times out of
range are mended, a parent cycle is cut, and the tree is walked without
recursion, however deep.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

__all__ = ["SpanView", "attribute_value", "parse_traces", "waterfall_bar"]

SERVICE_COLOURS = ("green", "blue", "magenta", "yellow", "cyan", "bright_blue", "bright_green")


def attribute_value(value: dict[str, Any]) -> Any:
    """One OTLP ``AnyValue`` as a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [attribute_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {
            kv["key"]: attribute_value(kv.get("value", {}))
            for kv in value["kvlistValue"].get("values", [])
        }
    return None


@dataclass
class SpanView:
    """One span, ready to show.

    Attributes:
        depth: how deep it sits in the tree (0 for a root).
        events: the span's events, each ``{"name": ..., "attributes": {...}}``.
    """

    span_id: str
    parent_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    error: bool
    status_message: str
    depth: int = 0
    children: list[SpanView] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        """How long the span lasted."""
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def queued_ms(self) -> float | None:
        """Time spent queued before the handler ran, if recorded (and a sane number)."""
        value = self.attributes.get("bus.queued_ms")
        if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
            return float(value)
        return None

    @property
    def service(self) -> str:
        """The owning service (``bus.service``), or the caller for a producer."""
        return str(self.attributes.get("bus.service") or self.attributes.get("bus.caller") or "")

    @property
    def thread(self) -> str:
        """The thread the span ran on, if recorded."""
        return str(self.attributes.get("thread.name") or "")

    def exception(self) -> dict[str, Any] | None:
        """The attributes of the recorded ``exception`` event, if any."""
        for event in self.events:
            if event.get("name") == "exception":
                return dict(event.get("attributes") or {})
        return None


def parse_traces(data: dict[str, Any], problems: list[str] | None = None) -> list[SpanView]:
    """The spans of an OTLP ``TracesData`` object, depth first, siblings by start time.

    Args:
        problems: gets one line per span left out or mended (see
            ``busctl.traces.parse_traces_data``).
    """
    from busctl.traces import parse_traces_data

    read = parse_traces_data(data)
    if problems is not None:
        problems.extend(e.message for e in read.errors)
    ordered: list[SpanView] = []
    views: dict[int, SpanView] = {}
    for trace in read.traces():
        for span, depth in trace.walk():
            view = SpanView(
                span_id=span.span_id,
                parent_id=span.parent_id or "",
                name=span.name,
                kind=span.kind,
                start_ns=span.start_ns,
                end_ns=span.end_ns,
                attributes=dict(span.attributes),
                events=[{"name": n, "attributes": a} for n, a, _ in span.events],
                error=span.error,
                status_message=span.status_message or "",
                depth=depth,
            )
            views[id(span)] = view
            if span.parent is not None and id(span.parent) in views:
                views[id(span.parent)].children.append(view)
            ordered.append(view)
    return ordered


def service_colour(service: str) -> str:
    """A stable colour per service name."""
    return SERVICE_COLOURS[zlib.crc32(service.encode()) % len(SERVICE_COLOURS)]


def waterfall_bar(span: SpanView, t0: int, t1: int, width: int) -> Text:
    """The span's bar on a time axis from ``t0`` to ``t1`` nanoseconds, ``width`` cells.

    The queue wait before a handler ran is drawn dotted in front of the bar;
    a failed span is red.
    """
    width = max(width, 4)
    total = max(t1 - t0, 1)

    def cell(t: int) -> int:
        return min(width - 1, max(0, int((t - t0) * width / total)))

    start = cell(span.start_ns)
    end = max(start + 1, min(width, int((span.end_ns - t0) * width / total + 0.999)))
    queued = span.queued_ms
    q_start = start
    if queued:
        q_start = cell(span.start_ns - int(queued * 1e6))
    text = Text(" " * q_start, no_wrap=True)
    if q_start < start:
        text.append("┄" * (start - q_start), style="dim yellow")
    style = "bold red" if span.error else service_colour(span.service)
    text.append("█" * (end - start), style=style)
    text.append(" " * max(width - end, 0))
    return text


def pretty(value: Any) -> str:
    """A JSON-looking value (often already JSON text) indented for reading."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
