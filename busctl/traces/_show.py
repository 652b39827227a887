"""``busctl trace show``: traces as trees, with services, durations and errors.

from busctl.traces import TraceFilter, read_trace_file, render_traces

traces = TraceFilter(errors_only=True).apply(read_trace_file(path).traces())
print(render_traces(traces))
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..render.text import clipped, visible
from ..render.units import trace_ms
from ._model import Span, json_value
from ._tree import Trace

__all__ = ["TraceFilter", "render_trace", "render_traces", "summary_json"]

Style = Callable[[str, str], str]


def _plain(text: str, _style: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Which traces to show; a trace is kept when every given criterion matches.

    Attributes:
        names: glob patterns; some span's command, event or span name matches one.
        services: service names (or globs); some span ran on one of them.
        trace_ids: trace ids or their prefixes (at least 4 hex digits).
        errors_only: keep only traces with a failed span.
    """

    names: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    trace_ids: tuple[str, ...] = ()
    errors_only: bool = False

    def matches(self, trace: Trace) -> bool:
        """Whether ``trace`` passes the filter."""
        if self.trace_ids and not any(trace.trace_id.startswith(t.lower()) for t in self.trace_ids):
            return False
        if self.errors_only and not trace.errors:
            return False
        if self.names and not any(
            _glob(span.operation, self.names) or _glob(span.name, self.names)
            for span in trace.spans
        ):
            return False
        return not self.services or any(_glob(span.service, self.services) for span in trace.spans)

    def apply(self, traces: Iterable[Trace]) -> list[Trace]:
        """The traces that pass, in their order."""
        return [t for t in traces if self.matches(t)]


def _glob(value: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _when(ns: int) -> str:
    try:
        stamp = datetime.fromtimestamp(ns / 1e9, UTC)
    except (OverflowError, ValueError, OSError):  # not a time a calendar can show
        return f"{ns} ns since the epoch"
    return stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


MAX_INDENT = 16
"""Tree levels drawn with guides; a deeper span is drawn at this indent, marked
with its depth (``↳1234``), so a chain thousands deep stays readable and its
output linear in size."""

NAME_WIDTH = 200
"""Names, services and error messages longer than this are cut (``--json`` has them whole)."""

ARGS_WIDTH = 400
"""``--args``: arguments and results longer than this are cut."""


def _text(value: object, width: int = NAME_WIDTH) -> str:
    # Names and attributes come from a file anyone may have written.
    return clipped(visible(value), width)


def _label(span: Span) -> str:
    # A bus command's spans are both named after the command; another
    # application's spans are named by it ("handle Pay", "GET /orders").
    if span.kind == "client" and span.command and span.is_bus:
        return _text(f"call {span.command}")
    if span.kind == "server" and span.command and span.is_bus:
        return _text(f"handle {span.command}")
    return _text(span.name)


def _detail(span: Span) -> str:
    if span.kind in ("server", "consumer") or not span.is_bus:
        where = span.service
        if span.thread != span.service:
            where += f" @{span.thread}"
        queued = span.attributes.get("bus.queued_ms")
        if isinstance(queued, int | float) and math.isfinite(queued) and queued >= 0.01:
            return f"{_text(where)}, queued {trace_ms(float(queued))}"
        return _text(where)
    if span.kind == "client":
        return _text(f"{span.service} -> {span.attributes.get('bus.service', '?')}")
    if span.kind == "producer":
        n = span.attributes.get("bus.listeners")
        if n is None:
            return _text(span.service)
        return _text(f"{span.service}, {n} listener{'s' if n != 1 else ''}")
    return _text(span.service)


def _mark(span: Span, style: Style) -> str:
    mark = ""
    if span.error:
        reason = span.error_text or "error"
        server = span.server if span.kind == "client" else None
        if server is not None and server.error:
            reason = span.error_type or "error"  # the handler's line says why
        mark = "  " + style(f"✗ {_text(reason)}", "error")
    if span.replayed:
        mark += "  " + style("[replayed]", "dim")
    return mark


def render_trace(trace: Trace, *, style: Style = _plain, args: bool = False) -> list[str]:
    """The lines showing one trace: a header, then its span tree.

    Linear in the number of spans, and iterative: no depth is too deep.
    Beyond ``MAX_INDENT`` levels a span is drawn at that indent and marked
    with its depth. Every name and attribute is shown with its control
    characters made visible (``busctl.render.text.visible``).
    """
    errors = trace.errors
    count = len(trace.spans)
    header = (
        f"trace {trace.trace_id}  {_text(trace.name)}  {trace_ms(trace.duration_ms)}  "
        f"{_when(trace.start_ns)}  {count} span{'s' if count != 1 else ''}"
    )
    if errors:
        header += "  " + style(f"{errors} error{'s' if errors != 1 else ''}", "error")
    services = ", ".join(_text(service) for service in trace.services)
    lines = [style(header, "header"), "  services: " + services]
    # (span, guides drawn before it, last among its siblings, depth)
    stack: list[tuple[Span, str, bool, int]] = [
        (root, "", True, 0) for root in reversed(trace.roots)
    ]
    while stack:
        span, prefix, last, depth = stack.pop()
        if depth == 0:
            branch = ""
        elif depth > MAX_INDENT:
            branch = f"↳{depth} "
        else:
            branch = "└─ " if last else "├─ "
        offset = (span.start_ns - trace.start_ns) / 1e6
        lines.append(
            f"  {prefix}{branch}{style(_label(span), 'name')}  "
            f"{style(_detail(span), 'dim')}  +{trace_ms(offset)}  {trace_ms(span.duration_ms)}"
            f"{_mark(span, style)}"
        )
        if depth == 0 or depth >= MAX_INDENT:
            child_prefix = prefix
        else:
            child_prefix = prefix + ("   " if last else "│  ")
        if args:
            extra = _args_lines(span)
            if extra:
                if depth > MAX_INDENT:
                    pad = prefix + " " * len(branch)
                else:
                    pad = prefix + ("   " if depth == 0 or last else "│  ")
                lines.extend(f"  {pad}   {style(text, 'dim')}" for text in extra)
        children = span.children
        for i in range(len(children) - 1, -1, -1):
            stack.append((children[i], child_prefix, i == len(children) - 1, depth + 1))
    return lines


def _args_lines(span: Span) -> list[str]:
    """``--args``: what the span carries beyond its tree line, a line per kind of thing.

    A bus span's arguments and result; then, for any span, the attributes,
    events and links that are not the bus's own (all of them, for another
    application's span).
    """
    lines = []
    parts = []
    keys: tuple[tuple[str, str], ...] = (
        ("bus.args", "args"),
        ("bus.kwargs", "kwargs"),
        ("bus.result", "result"),
    )
    if span.kind == "server" and span.parent is not None:
        keys = keys[2:]  # the arguments are on the caller's line
    for key, label in keys:
        text = span.attributes.get(key)
        if isinstance(text, str) and text not in ("[]", "{}"):
            shown = _text(text, ARGS_WIDTH)
            if span.attributes.get(key + ".truncated"):
                shown += " (truncated)"
            parts.append(f"{label}={shown}")
    if parts:
        lines.append("  ".join(parts))
    attributes = span.own_attributes()
    if attributes:
        lines.append(_pairs(attributes))
    for name, event_attributes, time_ns in span.own_events():
        line = f"event {_text(name)} +{trace_ms((time_ns - span.start_ns) / 1e6)}"
        if event_attributes:
            line += "  " + _pairs(event_attributes)
        lines.append(line)
    for trace_id, span_id, link_attributes in span.own_links():
        line = f"link {trace_id} {span_id}"
        if link_attributes:
            line += "  " + _pairs(link_attributes)
        lines.append(line)
    return lines


def _pairs(attributes: dict[str, Any]) -> str:
    """``key=value`` for each attribute, values as JSON (so "1" and 1 differ), each cut."""
    return "  ".join(
        f"{_text(key)}={_text(json.dumps(json_value(value), ensure_ascii=False), ARGS_WIDTH)}"
        for key, value in attributes.items()
    )


def render_traces(traces: Iterable[Trace], *, style: Style = _plain, args: bool = False) -> str:
    """Every trace, as ``render_trace`` lines, separated by a blank line."""
    blocks = ["\n".join(render_trace(t, style=style, args=args)) for t in traces]
    return "\n\n".join(blocks)


def summary_json(trace: Trace) -> dict[str, Any]:
    """A trace as JSON-ready data for ``--json``: spans flattened with depth."""
    return {
        "trace_id": trace.trace_id,
        "name": trace.name,
        "start": _when(trace.start_ns),
        "duration_ms": round(trace.duration_ms, 3),
        "errors": trace.errors,
        "services": trace.services,
        "spans": [
            {
                "depth": depth,
                "span_id": span.span_id,
                "parent_id": span.parent_id,
                "name": span.name,
                "kind": span.kind,
                "service": span.service,
                "thread": span.thread,
                "offset_ms": round((span.start_ns - trace.start_ns) / 1e6, 3),
                "duration_ms": round(span.duration_ms, 3),
                "error": span.error_text,
                "line": span.line,
                **span.to_json(),
            }
            for span, depth in trace.walk()
        ],
    }
