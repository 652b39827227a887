"""``history``: what just happened on a bus, read from its ring of recent spans.

    entries = history_entries(bus.spans, ("lights.*",), ("call", "event"), 20)
    entries[-1]   # {"kind": "call", "name": "lights.turn_on", "args": '["hall"]', "result": ...}

Each command is one entry (its arguments and its result or error, how long
it ran and waited), each event one (its arguments, how many listeners), and
each delivery one when asked for. Entries have the fields of the activity
stream (``Activity.to_json()``: ``kind``, ``name``, ``time``, ``service``,
``caller``, ``args``, ``kwargs``, ``result``, ``error``, ``duration_ms``,
``queued_ms``, ``listeners``, ``pattern``, ``thread``, ``trace_id``,
``span_id``), plus what a console's hold or stub left on the spans
(``held_ms``, ``edited``, ``original_args``, ``stubbed``). They are made from
the OTLP JSON of the records (``SpanRing.otlp``), the ring's documented
form, and ordered by when they started, newest last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core._patterns import pattern_matches
from .._observe._records import CALL, DELIVERY, FIRE
from .._observe._ring import SpanRing
from ._subs import span_key

__all__ = ["KINDS", "history_entries"]

KINDS = ("call", "event", "delivery")
"""What ``history`` can list: commands, events, and each listener's delivery."""

_RECORD_KINDS = {"call": CALL, "event": FIRE, "delivery": DELIVERY}
_SERVER, _CLIENT, _PRODUCER, _CONSUMER = 2, 3, 4, 5
# Span attributes an entry takes, and the entry field each becomes.
_FIELDS = {
    "bus.service": "service",
    "bus.caller": "caller",
    "bus.args": "args",
    "bus.kwargs": "kwargs",
    "bus.result": "result",
    "bus.queued_ms": "queued_ms",
    "bus.listeners": "listeners",
    "bus.listener.pattern": "pattern",
    "thread.name": "thread",
    "bus.held_ms": "held_ms",
    "bus.edited": "edited",
    "bus.original_args": "original_args",
    "bus.original_kwargs": "original_kwargs",
    "bus.stubbed": "stubbed",
    "bus.replayed": "replayed",
}


def history_entries(
    ring: SpanRing, patterns: tuple[str, ...], kinds: Iterable[str], limit: int
) -> list[dict[str, Any]]:
    """The last ``limit`` entries of ``kinds`` whose name a pattern matches, newest last."""
    wanted = {_RECORD_KINDS[kind] for kind in kinds}
    chosen: list[Any] = []
    # Newest first, until there are enough: a record ends up in the ring when
    # its work ends, so a little more than ``limit`` covers those that started
    # earlier but ended later.
    for record in reversed(ring.records()):
        if record[0] in wanted and any(pattern_matches(p, span_key(record)) for p in patterns):
            chosen.append(record)
            if len(chosen) >= limit * 2 + 16:
                break
    chosen.reverse()
    entries = _entries(ring.otlp(chosen))
    entries.sort(key=lambda entry: entry["time"])
    return entries[-limit:]


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    spans = [
        span
        for resource in data.get("resourceSpans", ())
        for scope in resource.get("scopeSpans", ())
        for span in scope.get("spans", ())
    ]
    # A command that ran here has a CLIENT and a SERVER span: the SERVER one
    # (the handler's) is its entry; a CLIENT span alone is a call that never
    # ran, or whose handler ran in another process.
    served = {span.get("parentSpanId") for span in spans if span.get("kind") == _SERVER}
    sent = {
        span.get("spanId"): int(span.get("startTimeUnixNano", 0))
        for span in spans
        if span.get("kind") == _CLIENT
    }
    entries = []
    for span in spans:
        kind = span.get("kind")
        if kind == _CLIENT and span.get("spanId") in served:
            continue
        entry = _entry(span)
        if entry is not None:
            if kind == _SERVER and span.get("parentSpanId") in sent:
                entry["time"] = sent[span.get("parentSpanId")] / 1e9  # when it was sent
            entries.append(entry)
    return entries


def _entry(span: dict[str, Any]) -> dict[str, Any] | None:
    kind = {_SERVER: "call", _CLIENT: "call", _PRODUCER: "event", _CONSUMER: "delivery"}.get(
        span.get("kind", 0)
    )
    if kind is None:
        return None
    attrs = {a.get("key"): _value(a.get("value") or {}) for a in span.get("attributes", ())}
    start = int(span.get("startTimeUnixNano", 0))
    end = int(span.get("endTimeUnixNano", start))
    name = attrs.get("rpc.method") or attrs.get("messaging.destination.name") or span.get("name")
    entry: dict[str, Any] = {"kind": kind, "name": name, "time": start / 1e9}
    for key, field in _FIELDS.items():
        if key in attrs:
            entry[field] = attrs[key]
    if kind != "event":
        entry["duration_ms"] = round((end - start) / 1e6, 3)
    status = span.get("status") or {}
    if status.get("code") == 2:
        error_type = str(attrs.get("error.type") or "Error")
        message = str(status.get("message") or "")
        if message.startswith(error_type + ":"):
            message = message[len(error_type) + 1 :].strip()
        entry["error"] = {"type": error_type, "message": message}
    entry["trace_id"] = span.get("traceId")
    entry["span_id"] = span.get("spanId")
    return entry


def _value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return value["doubleValue"]
    return None
