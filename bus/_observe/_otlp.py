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
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import StatusCode

__all__ = ["encode_spans", "encode_value"]

# OTLP's SpanKind starts at UNSPECIFIED = 0; the API's at INTERNAL = 0.
_KIND_TO_OTLP = {kind: kind.value + 1 for kind in SpanKind}
_KIND_FROM_OTLP = {v: k for k, v in _KIND_TO_OTLP.items()}
_STATUS_TO_OTLP = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}
_STATUS_FROM_OTLP = {v: k for k, v in _STATUS_TO_OTLP.items()}
_HAS_IS_REMOTE = 0x100  # SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


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
