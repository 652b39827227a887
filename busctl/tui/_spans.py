"""OTLP JSON spans as a tree, and the bars of a waterfall.

    spans = parse_traces(traces_json)        # depth-first, children by start time
    bar = waterfall_bar(span, t0, t1, width=40)

OTLP JSON (``docs/traces.md``): ``resourceSpans[].scopeSpans[].spans[]``,
ids in hex, times as decimal strings of nanoseconds, attributes as
``[{key, value: {stringValue | intValue | doubleValue | boolValue | ...}}]``,
``status.code`` 2 for an error.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text

__all__ = ["SpanView", "attribute_value", "parse_traces", "waterfall_bar"]

KIND_NAMES = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
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


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: attribute_value(kv.get("value", {})) for kv in items or ()}


@dataclass
class SpanView:
    """One span, ready to show.

    Attributes:
        depth: how deep it sits in the tree (0 for a root).
        queued_ns: time spent in a mailbox before the handler ran (``bus.queued_ms``).
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
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def queued_ms(self) -> float | None:
        """Time spent queued before the handler ran, if recorded."""
        value = self.attributes.get("bus.queued_ms")
        return float(value) if isinstance(value, int | float) else None

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
                return _attributes(event.get("attributes"))
        return None


def parse_traces(data: dict[str, Any]) -> list[SpanView]:
    """The spans of an OTLP ``TracesData`` object, depth first, siblings by start time."""
    spans: dict[str, SpanView] = {}
    for resource in data.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for raw in scope.get("spans", ()):
                status = raw.get("status") or {}
                span = SpanView(
                    span_id=raw.get("spanId", ""),
                    parent_id=raw.get("parentSpanId", "") or "",
                    name=raw.get("name", "?"),
                    kind=KIND_NAMES.get(int(raw.get("kind", 0) or 0), "unspecified"),
                    start_ns=int(raw.get("startTimeUnixNano", 0)),
                    end_ns=int(raw.get("endTimeUnixNano", 0)),
                    attributes=_attributes(raw.get("attributes")),
                    events=list(raw.get("events", ())),
                    error=int(status.get("code", 0) or 0) == 2,
                    status_message=str(status.get("message", "")),
                )
                spans[span.span_id] = span
    roots: list[SpanView] = []
    for span in spans.values():
        parent = spans.get(span.parent_id)
        if parent is None or parent is span:
            roots.append(span)
        else:
            parent.children.append(span)
    ordered: list[SpanView] = []

    def walk(span: SpanView, depth: int) -> None:
        span.depth = depth
        ordered.append(span)
        for child in sorted(span.children, key=lambda s: (s.start_ns, s.name)):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: (s.start_ns, s.name)):
        walk(root, 0)
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
