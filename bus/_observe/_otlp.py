"""OpenTelemetry spans to and from OTLP JSON, the file-exporter encoding.

    from bus.otlp import decode_spans, encode_spans

    line = json.dumps(encode_spans(bus.spans.spans()), separators=(",", ":"))
    spans = decode_spans(json.loads(line))       # ReadableSpan objects again

The encoding is the OTLP/HTTP JSON mapping of ``TracesData`` that the
OpenTelemetry file exporters write (and otel-tui, Jaeger and the collector's
``otlpjsonfile`` receiver read): field names in lowerCamelCase, trace and span
ids as lower-case hex (not protobuf's base64), 64-bit integers as decimal
strings, enums as integers, spans grouped by resource and then by
instrumentation scope; empty attribute lists and zero dropped counts left
out, as the official exporter leaves them out. A span read from a file
(``DecodedSpan``, in ``_decoded``, made by ``_otlp_decode``) is written back as it was read.

Hand-written, on purpose: the Python OTLP encoders (``opentelemetry-exporter-
otlp-proto-common``) build protobuf messages, and ``bus`` depends on the
OpenTelemetry API and SDK only. Building plain dicts is also what keeps it
fast enough for the control server's live ``spans`` topic: resources and
scopes are encoded once per batch, attributes with a type switch.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.status import StatusCode

from ._decoded import DecodedEvent, DecodedLink, DecodedResource, DecodedScope, DecodedSpan

__all__ = [
    "DecodedEvent",
    "DecodedLink",
    "DecodedResource",
    "DecodedScope",
    "DecodedSpan",
    "encode_attributes",
    "encode_event",
    "encode_link",
    "encode_resource",
    "encode_scope",
    "encode_spans",
    "encode_value",
]

# OTLP's SpanKind starts at UNSPECIFIED = 0; the API's at INTERNAL = 0.
_KIND_TO_OTLP = {kind: kind.value + 1 for kind in SpanKind}
_KIND_FROM_OTLP = {v: k for k, v in _KIND_TO_OTLP.items()}
_STATUS_TO_OTLP = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
_STATUS_FROM_OTLP = {v: k for k, v in _STATUS_TO_OTLP.items()}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


# -- encoding --------------------------------------------------------------------


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    # Proto3 JSON spells the non-finite doubles as strings.
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def encode_value(value: Any) -> dict[str, Any]:
    """One attribute value as an OTLP ``AnyValue`` JSON object.

    Atoms, bytes (``bytesValue``), mappings (``kvlistValue``) and sequences
    of any of them, mixed types included (``arrayValue``); ``None`` is the
    empty ``AnyValue``, as the official encoders write it.
    """
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    if kind is float:
        return {"doubleValue": _double(value)}
    if value is None:
        return {}
    if isinstance(value, bytes | bytearray):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": encode_attributes(value)}}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    # Subclasses of the atoms (enums, numpy scalars) and anything else.
    if isinstance(value, str):
        return {"stringValue": str(value)}
    if isinstance(value, bool):
        return {"boolValue": bool(value)}
    if isinstance(value, int):
        return {"intValue": str(int(value))}
    if isinstance(value, float):
        return {"doubleValue": _double(float(value))}
    return {"stringValue": str(value)}


def encode_attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Attributes as a list of OTLP ``KeyValue`` JSON objects."""
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


def encode_event(
    name: str, attributes: Mapping[str, Any] | None, time_ns: int, dropped: int = 0
) -> dict[str, Any]:
    """One span event as an OTLP ``Span.Event`` JSON object.

    Empty attributes and a zero dropped count are left out, as the official
    exporter leaves them out.
    """
    out: dict[str, Any] = {"timeUnixNano": str(time_ns), "name": name}
    if attributes:
        out["attributes"] = encode_attributes(attributes)
    if dropped:
        out["droppedAttributesCount"] = dropped
    return out


def encode_link(link: Link) -> dict[str, Any]:
    """One span link as an OTLP ``Span.Link`` JSON object.

    A link read from a file (``DecodedLink``) keeps its flags and trace state
    exactly as written.
    """
    ctx = link.context
    out: dict[str, Any] = {"traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}"}
    if type(link) is DecodedLink:
        trace_state = link.otlp_trace_state
        flags = link.otlp_flags
    else:
        trace_state = ctx.trace_state.to_header() if ctx.trace_state else None
        flags = _flags(ctx, ctx)
    if trace_state:
        out["traceState"] = trace_state
    if link.attributes:
        out["attributes"] = encode_attributes(link.attributes)
    dropped = link.dropped_attributes
    if dropped:
        out["droppedAttributesCount"] = dropped
    if flags:
        out["flags"] = flags
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
    decoded = type(span) is DecodedSpan
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
    }
    if decoded:
        assert isinstance(span, DecodedSpan)
        trace_state = span.otlp_trace_state
        flags = span.otlp_flags
        kind = span.kind.value + 1 if span.otlp_kind is None else span.otlp_kind
        message = span.status.description or span.otlp_status_message
    else:
        trace_state = ctx.trace_state.to_header() if ctx.trace_state else None
        flags = _flags(parent, ctx)
        kind = span.kind.value + 1  # OTLP counts from UNSPECIFIED = 0
        message = span.status.description
    if trace_state:
        out["traceState"] = trace_state
    if parent is not None:
        out["parentSpanId"] = f"{parent.span_id:016x}"
    if flags is not None:
        out["flags"] = flags
    out["name"] = span.name
    out["kind"] = kind
    out["startTimeUnixNano"] = str(span.start_time or 0)
    out["endTimeUnixNano"] = str(span.end_time or 0)
    if span.attributes:
        out["attributes"] = encode_attributes(span.attributes)
    dropped = span.dropped_attributes
    if dropped:
        out["droppedAttributesCount"] = dropped
    if span.events:
        out["events"] = [
            encode_event(e.name, e.attributes, e.timestamp, e.dropped_attributes)
            for e in span.events
        ]
    if span.dropped_events:
        out["droppedEventsCount"] = span.dropped_events
    if span.links:
        out["links"] = [encode_link(link) for link in span.links]
    if span.dropped_links:
        out["droppedLinksCount"] = span.dropped_links
    code = span.status.status_code
    if code is StatusCode.UNSET and not message:
        out["status"] = {}
    else:
        encoded: dict[str, Any] = {"code": _STATUS_TO_OTLP[code]}
        if message:
            encoded["message"] = message
        out["status"] = encoded
    return out


def _dropped_attributes(owner: Any) -> int:
    """A resource's or scope's dropped-attribute count: as read, or its SDK mapping's."""
    count = getattr(owner, "dropped_attributes", None)
    if count is None:
        count = getattr(owner.attributes, "dropped", 0)  # the SDK's BoundedAttributes
    return int(count or 0)


def encode_resource(resource: Resource | None) -> dict[str, Any]:
    """A resource as an OTLP ``Resource`` JSON object (empty parts left out)."""
    if resource is None:
        return {}
    out: dict[str, Any] = {}
    if resource.attributes:
        out["attributes"] = encode_attributes(resource.attributes)
    dropped = _dropped_attributes(resource)
    if dropped:
        out["droppedAttributesCount"] = dropped
    return out


def encode_scope(scope: InstrumentationScope | None) -> dict[str, Any]:
    """An instrumentation scope as an OTLP ``InstrumentationScope`` JSON object."""
    if scope is None:
        return {}
    out: dict[str, Any] = {"name": scope.name}
    if scope.version:
        out["version"] = scope.version
    if scope.attributes:
        out["attributes"] = encode_attributes(scope.attributes)
    dropped = _dropped_attributes(scope)
    if dropped:
        out["droppedAttributesCount"] = dropped
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
            entry: dict[str, Any] = {"scope": encode_scope(group_scope), "spans": encoded}
            if group_scope is not None and group_scope.schema_url:
                entry["schemaUrl"] = group_scope.schema_url
            scope_spans.append(entry)
        item: dict[str, Any] = {
            "resource": encode_resource(group_resource),
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
    return (
        a.schema_url == b.schema_url
        and dict(a.attributes) == dict(b.attributes)
        and _dropped_attributes(a) == _dropped_attributes(b)
    )


def _merge_equal_scopes(
    scopes: Iterable[tuple[Any, list[dict[str, Any]]]],
) -> list[tuple[Any, list[dict[str, Any]]]]:
    merged: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
    for scope, spans in scopes:
        key = (
            None
            if scope is None
            else (
                scope.name,
                scope.version,
                scope.schema_url,
                str(scope.attributes),
                _dropped_attributes(scope),
            )
        )
        if key in merged:
            merged[key][1].extend(spans)
        else:
            merged[key] = (scope, spans)
    return list(merged.values())
