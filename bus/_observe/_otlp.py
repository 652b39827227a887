"""OpenTelemetry spans to and from OTLP JSON, the file-exporter encoding.

    from bus.otlp import decode_spans, encode_spans

    line = json.dumps(encode_spans(bus.spans.spans()), separators=(",", ":"))
    spans = decode_spans(json.loads(line))       # ReadableSpan objects again

The encoding is the OTLP/HTTP JSON mapping of ``TracesData`` that the
OpenTelemetry file exporters write (and otel-tui, Jaeger and the collector's
``otlpjsonfile`` receiver read): field names in lowerCamelCase, trace and span
ids as lower-case hex (not protobuf's base64), 64-bit integers as decimal
strings, enums as integers, spans grouped by resource and then by
instrumentation scope.

Hand-written, on purpose: the Python OTLP encoders (``opentelemetry-exporter-
otlp-proto-common``) build protobuf messages, and ``bus`` depends on the
OpenTelemetry API and SDK only. Building plain dicts is also what keeps it
fast enough for the control server's live ``spans`` topic: resources and
scopes are encoded once per batch, attributes with a type switch.
"""

from __future__ import annotations

import base64
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

__all__ = [
    "TRACE_FILE_ENV",
    "OtlpDecodeError",
    "OtlpJsonFileExporter",
    "decode_spans",
    "decode_value",
    "encode_spans",
    "encode_value",
]

TRACE_FILE_ENV = "BUS_TRACE_FILE"
"""The variable naming the file ``OtlpJsonFileExporter()`` appends to by default."""

# OTLP's SpanKind starts at UNSPECIFIED = 0; the API's at INTERNAL = 0.
_KIND_TO_OTLP = {kind: kind.value + 1 for kind in SpanKind}
_KIND_FROM_OTLP = {v: k for k, v in _KIND_TO_OTLP.items()}
_STATUS_TO_OTLP = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
_STATUS_FROM_OTLP = {v: k for k, v in _STATUS_TO_OTLP.items()}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class OtlpDecodeError(ValueError):
    """Raised by ``decode_spans`` when an object is not OTLP ``TracesData`` JSON.

    The message names the field that is wrong (``resourceSpans[0].scopeSpans[1]
    .spans[3].traceId: ...``).
    """


# -- encoding ----------------------------------------------------------------------


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    # Proto3 JSON spells the non-finite doubles as strings.
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode_value(value: Any) -> dict[str, Any]:
    """One attribute value as an OTLP ``AnyValue`` JSON object."""
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        return {"doubleValue": _double(value)}
    if isinstance(value, bytes | bytearray):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    # Subclasses of the atoms (enums, numpy scalars) and anything else.
    if isinstance(value, bool):
        return {"boolValue": bool(value)}
    if isinstance(value, int):
        return {"intValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": _double(float(value))}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    out = []
    # The common atoms inline: this runs for every attribute of every span
    # the control server streams.
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            encoded: dict[str, Any] = {"stringValue": value}
        elif kind is int:
            encoded = {"intValue": str(value)}
        elif kind is bool:
            encoded = {"boolValue": value}
        elif kind is float and math.isfinite(value):
            encoded = {"doubleValue": value}
        else:
            encoded = encode_value(value)
        out.append({"key": key, "value": encoded})
    return out


def _flags(parent: SpanContext | None, own: SpanContext) -> int:
    flags = int(own.trace_flags) | _HAS_IS_REMOTE
    if parent is not None and parent.is_remote:
        flags |= _IS_REMOTE
    return flags


def _encode_span(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
    }
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    out["flags"] = _flags(parent, ctx)
    out["name"] = span.name
    out["kind"] = span.kind.value + 1  # OTLP counts from UNSPECIFIED = 0
    out["startTimeUnixNano"] = str(span.start_time or 0)
    out["endTimeUnixNano"] = str(span.end_time or 0)
    out["attributes"] = _attributes(span.attributes)
    dropped = span.dropped_attributes
    if dropped:
        out["droppedAttributesCount"] = dropped
    if span.events:
        out["events"] = [
            {
                "timeUnixNano": str(e.timestamp),
                "name": e.name,
                "attributes": _attributes(e.attributes),
            }
            for e in span.events
        ]
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
                "flags": _flags(link.context, link.context),
            }
            for link in span.links
        ]
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    status = span.status
    if status.status_code is StatusCode.UNSET and not status.description:
        out["status"] = {}
    else:
        encoded: dict[str, Any] = {"code": _STATUS_TO_OTLP[status.status_code]}
        if status.description:
            encoded["message"] = status.description
        out["status"] = encoded
    return out


def _encode_resource(resource: Resource | None) -> dict[str, Any]:
    if resource is None:
        return {"attributes": []}
    return {"attributes": _attributes(resource.attributes)}


def _encode_scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    if scope is None:
        return {}
    out: dict[str, Any] = {"name": scope.name}
    if scope.version:
        out["version"] = scope.version
    if scope.attributes:
        out["attributes"] = _attributes(scope.attributes)
    return out


def encode_spans(spans: Iterable[ReadableSpan]) -> dict[str, Any]:
    """Finished spans as one OTLP ``TracesData`` JSON object.

    Spans are grouped by resource, then by instrumentation scope, keeping the
    order in which each group first appears and the spans' own order within
    it. The result is plain ``dict``/``list``/``str``/``int`` data, ready for
    ``json.dumps``. Safe to call from any thread; it only reads the spans.
    """
    # Keyed by identity: a bus shares one Resource and one scope object across
    # all its spans, so this avoids hashing their attributes per span.
    groups: dict[int, tuple[Resource | None, dict[int, tuple[Any, list[dict[str, Any]]]]]] = {}
    for span in spans:
        resource = span.resource
        group = groups.get(id(resource))
        if group is None:
            group = groups[id(resource)] = (resource, {})
        scope = span.instrumentation_scope
        scoped = group[1].get(id(scope))
        if scoped is None:
            scoped = group[1][id(scope)] = (scope, [])
        scoped[1].append(_encode_span(span))
    resource_spans = []
    for group_resource, scopes in _merge_equal(groups.values()):
        scope_spans = []
        for group_scope, encoded in _merge_equal_scopes(scopes.values()):
            entry: dict[str, Any] = {"scope": _encode_scope(group_scope), "spans": encoded}
            if group_scope is not None and group_scope.schema_url:
                entry["schemaUrl"] = group_scope.schema_url
            scope_spans.append(entry)
        item: dict[str, Any] = {
            "resource": _encode_resource(group_resource),
            "scopeSpans": scope_spans,
        }
        if group_resource is not None and group_resource.schema_url:
            item["schemaUrl"] = group_resource.schema_url
        resource_spans.append(item)
    return {"resourceSpans": resource_spans}


def _merge_equal(
    groups: Iterable[tuple[Resource | None, dict[int, tuple[Any, list[dict[str, Any]]]]]],
) -> list[tuple[Resource | None, dict[int, tuple[Any, list[dict[str, Any]]]]]]:
    """Fold groups whose resources are distinct objects but equal in value."""
    merged: list[tuple[Resource | None, dict[int, tuple[Any, list[dict[str, Any]]]]]] = []
    for resource, scopes in groups:
        for other, other_scopes in merged:
            if _same_resource(other, resource):
                for key, (scope, spans) in scopes.items():
                    if key in other_scopes:
                        other_scopes[key][1].extend(spans)
                    else:
                        other_scopes[key] = (scope, spans)
                break
        else:
            merged.append((resource, scopes))
    return merged


def _same_resource(a: Resource | None, b: Resource | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.schema_url == b.schema_url and dict(a.attributes) == dict(b.attributes)


def _merge_equal_scopes(
    scopes: Iterable[tuple[Any, list[dict[str, Any]]]],
) -> list[tuple[Any, list[dict[str, Any]]]]:
    merged: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
    for scope, spans in scopes:
        key = (
            None
            if scope is None
            else (scope.name, scope.version, scope.schema_url, str(scope.attributes))
        )
        if key in merged:
            merged[key][1].extend(spans)
        else:
            merged[key] = (scope, spans)
    return list(merged.values())


# -- decoding ----------------------------------------------------------------------


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


# -- a span exporter writing trace files ----------------------------------------------------


class OtlpJsonFileExporter(SpanExporter):
    """A span exporter that appends each batch to a file as one OTLP JSON line.

        provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileExporter("traces/run.jsonl")))
        bus = Bus(tracer_provider=provider)

    With no path it appends to ``$BUS_TRACE_FILE`` (default ``traces.jsonl``
    in the working directory), which is how ``OTEL_TRACES_EXPORTER`` builds it.
    The file is what ``busctl trace`` and ``busctl replay`` read. Thread-safe:
    each line is written whole, under a lock, and flushed.

    Args:
        path: the file to append to (created with its directory).
        stream: write to this text stream instead (not closed by ``shutdown``).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, stream: IO[str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._own = stream is None
        if stream is None:
            target = Path(path or os.environ.get(TRACE_FILE_ENV) or "traces.jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            stream = target.open("a", encoding="utf-8")
        self._stream: IO[str] | None = stream

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans as one line; ``FAILURE`` once shut down or on an I/O error."""
        if not spans:
            return SpanExportResult.SUCCESS
        line = json.dumps(encode_spans(spans), separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            if self._stream is None:
                return SpanExportResult.FAILURE
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file (a stream given to the constructor stays open)."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None and self._own:
            stream.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every line is flushed as it is written: nothing to do."""
        return True
