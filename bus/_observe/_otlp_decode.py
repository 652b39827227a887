"""OTLP JSON ``TracesData`` back into OpenTelemetry ``ReadableSpan`` objects.

The reverse of ``_otlp``: what ``busctl trace`` and ``busctl replay`` read.
Every wrong field is named in the error (``resourceSpans[0].scopeSpans[1]
.spans[3].traceId: ...``), and a bad span can be reported and left out while
the rest of its line is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._otlp import _IS_REMOTE, _KIND_FROM_OTLP, _STATUS_FROM_OTLP

__all__ = ["OtlpDecodeError", "decode_spans", "decode_value"]


class OtlpDecodeError(ValueError):
    """Raised by ``decode_spans`` when an object is not OTLP ``TracesData`` JSON.

    The message names the field that is wrong (``resourceSpans[0].scopeSpans[1]
    .spans[3].traceId: ...``).
    """


def _fail(where: str, problem: str) -> OtlpDecodeError:
    return OtlpDecodeError(f"{where}: {problem}")


def _get_list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"{where}.{key}", f"expected a list, got {type(value).__name__}")
    return value


def _get_obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _hex_id(value: Any, digits: int, where: str, *, optional: bool = False) -> int:
    if value in (None, "") and optional:
        return 0
    if not isinstance(value, str) or len(value) != digits:
        raise _fail(where, f"expected {digits} hex digits, got {value!r:.60}")
    try:
        number = int(value, 16)
    except ValueError:
        raise _fail(where, f"expected {digits} hex digits, got {value!r:.60}") from None
    if number == 0 and not optional:
        raise _fail(where, "an all-zero id is not valid")
    return number


def _uint64(value: Any, where: str) -> int:
    # Proto3 JSON accepts int64 both as a string and as a number.
    if isinstance(value, bool):
        raise _fail(where, f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _fail(where, f"expected an integer (as a decimal string), got {value!r:.60}")


def decode_value(value: Any, where: str = "value") -> types.AttributeValue:
    """An OTLP ``AnyValue`` JSON object as an attribute value.

    Nested arrays and key-value lists, which attributes cannot hold, come back
    as their JSON text.
    """
    obj = _get_obj(value, where)
    if not obj:
        return ""
    (key, inner), *_ = obj.items()
    if key == "stringValue" and isinstance(inner, str):
        return inner
    if key == "boolValue" and isinstance(inner, bool):
        return inner
    if key == "intValue":
        return _uint64(inner, f"{where}.intValue")
    if key == "doubleValue":
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return float(inner)
        if inner in ("NaN", "Infinity", "-Infinity"):
            return float(inner.replace("Infinity", "inf"))
        raise _fail(f"{where}.doubleValue", f"expected a number, got {inner!r:.60}")
    if key == "bytesValue" and isinstance(inner, str):
        return inner  # kept as its base64 text: attributes have no bytes type
    if key == "arrayValue":
        values = _get_list(_get_obj(inner, f"{where}.arrayValue"), "values", where)
        items = [decode_value(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(values)]
        if all(isinstance(v, str) for v in items):
            return [str(v) for v in items]
        if all(type(v) is bool for v in items):
            return [bool(v) for v in items]
        if all(type(v) is int for v in items):
            return [int(v) for v in items]  # type: ignore[arg-type]
        if all(type(v) in (int, float) for v in items):
            return [float(v) for v in items]  # type: ignore[arg-type]
        return [str(v) for v in items]
    if key == "kvlistValue":
        pairs = _decode_attributes(_get_obj(inner, f"{where}.kvlistValue"), "values", where)
        return json.dumps(pairs)
    raise _fail(where, f"not an AnyValue: {key!r}")


def _decode_attributes(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, item in enumerate(_get_list(obj, key, where)):
        here = f"{where}.{key}[{i}]"
        kv = _get_obj(item, here)
        name = kv.get("key")
        if not isinstance(name, str):
            raise _fail(f"{here}.key", "expected a string")
        out[name] = decode_value(kv.get("value", {}), f"{here}.value")
    return out


def _decode_span(
    obj: Mapping[str, Any],
    where: str,
    resource: Resource,
    scope: InstrumentationScope | None,
) -> ReadableSpan:
    trace_id = _hex_id(obj.get("traceId"), 32, f"{where}.traceId")
    span_id = _hex_id(obj.get("spanId"), 16, f"{where}.spanId")
    parent_id = _hex_id(obj.get("parentSpanId"), 16, f"{where}.parentSpanId", optional=True)
    flags = _uint64(obj.get("flags", 1), f"{where}.flags")
    state = obj.get("traceState") or ""
    trace_state = TraceState.from_header([state]) if isinstance(state, str) and state else None
    context = SpanContext(trace_id, span_id, False, TraceFlags(flags & 0xFF), trace_state)
    parent = (
        SpanContext(trace_id, parent_id, bool(flags & _IS_REMOTE), TraceFlags(flags & 0xFF))
        if parent_id
        else None
    )
    name = obj.get("name")
    if not isinstance(name, str):
        raise _fail(f"{where}.name", f"expected a string, got {name!r:.60}")
    kind_number = obj.get("kind", 1)
    kind = _KIND_FROM_OTLP.get(kind_number if isinstance(kind_number, int) else -1)
    if kind is None:
        kind = SpanKind.INTERNAL
        if kind_number != 0:
            raise _fail(f"{where}.kind", f"expected 0-5, got {kind_number!r:.60}")
    start = _uint64(obj.get("startTimeUnixNano", "0"), f"{where}.startTimeUnixNano")
    end = _uint64(obj.get("endTimeUnixNano", "0"), f"{where}.endTimeUnixNano")
    attributes = _decode_attributes(obj, "attributes", where)
    events = []
    for i, raw in enumerate(_get_list(obj, "events", where)):
        here = f"{where}.events[{i}]"
        event = _get_obj(raw, here)
        events.append(
            Event(
                str(event.get("name", "")),
                _decode_attributes(event, "attributes", here),
                _uint64(event.get("timeUnixNano", "0"), f"{here}.timeUnixNano"),
            )
        )
    links = []
    for i, raw in enumerate(_get_list(obj, "links", where)):
        here = f"{where}.links[{i}]"
        link = _get_obj(raw, here)
        link_ctx = SpanContext(
            _hex_id(link.get("traceId"), 32, f"{here}.traceId"),
            _hex_id(link.get("spanId"), 16, f"{here}.spanId"),
            False,
        )
        links.append(Link(link_ctx, _decode_attributes(link, "attributes", here)))
    status_obj = _get_obj(obj.get("status", {}), f"{where}.status")
    code = _STATUS_FROM_OTLP.get(status_obj.get("code", 0))
    if code is None:
        raise _fail(f"{where}.status.code", f"expected 0-2, got {status_obj.get('code')!r:.60}")
    message = status_obj.get("message")
    status = Status(code, message if code is StatusCode.ERROR and message else None)
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=kind,
        status=status,
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def decode_spans(
    data: Any, *, on_bad_span: Callable[[str], None] | None = None
) -> list[ReadableSpan]:
    """The spans of one OTLP ``TracesData`` JSON object (as ``json.loads`` gives it).

    Accepts what ``encode_spans`` writes and what other OTel tools write in
    the same encoding (int64 as strings or numbers, fields left out when they
    are defaults).

    Args:
        on_bad_span: called with the reason (naming the field) for each span
            that cannot be decoded, which is then left out; without it such
            a span fails the whole object.

    Raises:
        OtlpDecodeError: the object is not ``TracesData``; the message names
            the offending field.
    """
    root = _get_obj(data, "TracesData")
    if "resourceSpans" not in root:
        raise _fail("TracesData", "no 'resourceSpans' field")
    spans: list[ReadableSpan] = []
    for r, raw_rs in enumerate(_get_list(root, "resourceSpans", "TracesData")):
        rwhere = f"resourceSpans[{r}]"
        rs = _get_obj(raw_rs, rwhere)
        raw_resource = _get_obj(rs.get("resource", {}), f"{rwhere}.resource")
        resource = Resource(
            _decode_attributes(raw_resource, "attributes", f"{rwhere}.resource"),
            str(rs.get("schemaUrl") or "") or None,
        )
        for s, raw_ss in enumerate(_get_list(rs, "scopeSpans", rwhere)):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            ss = _get_obj(raw_ss, swhere)
            raw_scope = _get_obj(ss.get("scope", {}), f"{swhere}.scope")
            scope = None
            if raw_scope:
                scope = InstrumentationScope(
                    str(raw_scope.get("name", "")),
                    raw_scope.get("version") or None,
                    ss.get("schemaUrl") or None,
                    _decode_attributes(raw_scope, "attributes", f"{swhere}.scope") or None,
                )
            for i, raw_span in enumerate(_get_list(ss, "spans", swhere)):
                here = f"{swhere}.spans[{i}]"
                try:
                    spans.append(_decode_span(_get_obj(raw_span, here), here, resource, scope))
                except (ValueError, TypeError, RecursionError) as exc:
                    if on_bad_span is None:
                        raise
                    on_bad_span(str(exc) if isinstance(exc, OtlpDecodeError) else f"{here}: {exc}")
    return spans
