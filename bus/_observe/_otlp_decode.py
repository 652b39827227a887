"""OTLP JSON ``TracesData`` back into OpenTelemetry ``ReadableSpan`` objects.

The reverse of ``_otlp``: what ``busctl trace`` and ``busctl replay`` read.
Every wrong field is named in the error (``resourceSpans[0].scopeSpans[1]
.spans[3].traceId: ...``), and a bad span can be reported and left out while
the rest of its line is read.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from ._decoded import DecodedEvent, DecodedLink, DecodedResource, DecodedScope, DecodedSpan
from ._otlp import _IS_REMOTE, _KIND_FROM_OTLP, _STATUS_FROM_OTLP

__all__ = ["OtlpDecodeError", "decode_spans", "decode_value"]

# Proto3 JSON spells enums as numbers or by name; the official decoders take both.
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
# A number as JSON writes it, which proto3 JSON also accepts inside a string.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SIGNED_INT = re.compile(r"[+-][0-9]+")
_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_URL_SAFE = str.maketrans("-_", "+/")


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
    if type(value) is dict:  # what json.loads makes: no ABC check for each of thousands
        return value
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


def _integer(value: Any, where: str) -> int:
    """A proto3 JSON integer: a number or a string, in decimal or exponent form.

    (``"3"``, ``3``, ``3.0`` and ``"3e0"`` are the same int64; ``3.5`` is none.)
    """
    kind = type(value)
    if kind is str:
        # The common spelling, "1700000000000000000", without a regex; int()
        # alone would also take "1_000", " 7" and non-ASCII digits.
        if value.isdigit() and value.isascii():
            return int(value)
        if _SIGNED_INT.fullmatch(value):
            return int(value)
    elif kind is int:
        return value  # type: ignore[no-any-return]
    elif kind is bool:
        raise _fail(where, f"expected an integer, got {value!r}")
    if isinstance(value, float) or (isinstance(value, str) and _JSON_NUMBER.fullmatch(value)):
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):  # pragma: no cover - the pattern passed
            number = Decimal("NaN")
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    raise _fail(where, f"expected an integer (as a decimal string), got {value!r:.60}")


def _double(value: Any, where: str) -> float:
    """A proto3 JSON double: a number, a number in a string, ``"NaN"`` or ``"±Infinity"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise _fail(where, f"a number out of a double's range: {value!r:.60}") from None
    if isinstance(value, str):
        special = _NON_FINITE.get(value)
        if special is not None:
            return special
        if _JSON_NUMBER.fullmatch(value):
            return float(value)
    raise _fail(where, f"expected a number, got {value!r:.60}")


def _enum(value: Any, names: Mapping[str, int], top: int, where: str) -> int:
    if isinstance(value, str):
        number = names.get(value)
        if number is not None:
            return number
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top:
        return value
    prefix = next(iter(names)).rsplit("_", 1)[0]
    raise _fail(where, f"expected 0-{top} or a {prefix}_* name, got {value!r:.60}")


def _bytes(value: Any, where: str) -> bytes:
    # Proto3 JSON: standard or URL-safe base64, with or without padding.
    if isinstance(value, str):
        text = value.translate(_URL_SAFE)
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _fail(where, f"expected base64 text, got {value!r:.60}")


def decode_value(value: Any, where: str = "value") -> Any:
    """An OTLP ``AnyValue`` JSON object as a Python value, losing nothing.

    ``stringValue``, ``boolValue``, ``intValue`` and ``doubleValue`` become
    the atoms; ``bytesValue`` becomes ``bytes``; ``arrayValue`` a list of its
    values (of mixed types, if so written); ``kvlistValue`` a dict; the empty
    ``AnyValue`` ``None``. ``encode_value`` turns each back into what was
    read, and the SDK's exporters take them all.
    """
    obj = _get_obj(value, where)
    if not obj:
        return None
    key, inner = next(iter(obj.items()))
    if key == "stringValue" and type(inner) is str:
        return inner
    if key == "boolValue" and isinstance(inner, bool):
        return inner
    if key == "intValue":
        return _integer(inner, f"{where}.intValue")
    if key == "doubleValue":
        return _double(inner, f"{where}.doubleValue")
    if key == "bytesValue":
        return _bytes(inner, f"{where}.bytesValue")
    if key == "arrayValue":
        values = _get_list(_get_obj(inner, f"{where}.arrayValue"), "values", where)
        return [decode_value(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(values)]
    if key == "kvlistValue":
        return _decode_attributes(_get_obj(inner, f"{where}.kvlistValue"), "values", where)
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


def _count(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    count = _integer(value, f"{where}.{key}")
    if count < 0:
        raise _fail(f"{where}.{key}", f"expected a count, got {count}")
    return count


def _flags_of(obj: Mapping[str, Any], where: str) -> int | None:
    value = obj.get("flags")
    return None if value is None else _integer(value, f"{where}.flags")


def _trace_state(text: Any, where: str) -> TraceState | None:
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise _fail(f"{where}.traceState", f"expected a string, got {text!r:.60}")
    return TraceState.from_header([text])


def _decode_link(raw: Any, where: str) -> Link:
    link = _get_obj(raw, where)
    flags = _flags_of(link, where)
    state = link.get("traceState") or None
    bits = 0 if flags is None else flags
    context = SpanContext(
        _hex_id(link.get("traceId"), 32, f"{where}.traceId"),
        _hex_id(link.get("spanId"), 16, f"{where}.spanId"),
        bool(bits & _IS_REMOTE),
        TraceFlags(bits & 0xFF),
        _trace_state(state, where),
    )
    return DecodedLink(
        context,
        _decode_attributes(link, "attributes", where),
        otlp_flags=flags,
        otlp_trace_state=state,
        dropped_attributes=_count(link, "droppedAttributesCount", where),
    )


def _decode_event(raw: Any, where: str) -> Event:
    event = _get_obj(raw, where)
    name = event.get("name", "")
    attributes = _decode_attributes(event, "attributes", where)
    time = _integer(event.get("timeUnixNano", "0"), f"{where}.timeUnixNano")
    dropped = _count(event, "droppedAttributesCount", where)
    if dropped:
        return DecodedEvent(str(name), attributes, time, dropped_attributes=dropped)
    return Event(str(name), attributes, time)


def _decode_span(
    obj: Mapping[str, Any],
    where: str,
    resource: Resource,
    scope: InstrumentationScope | None,
) -> ReadableSpan:
    trace_id = _hex_id(obj.get("traceId"), 32, f"{where}.traceId")
    span_id = _hex_id(obj.get("spanId"), 16, f"{where}.spanId")
    parent_id = _hex_id(obj.get("parentSpanId"), 16, f"{where}.parentSpanId", optional=True)
    flags = _flags_of(obj, where)
    bits = 1 if flags is None else flags  # no flags: sampled, as the bus's own files say
    state = obj.get("traceState") or None
    context = SpanContext(
        trace_id, span_id, False, TraceFlags(bits & 0xFF), _trace_state(state, where)
    )
    parent = (
        SpanContext(trace_id, parent_id, bool(bits & _IS_REMOTE), TraceFlags(bits & 0xFF))
        if parent_id
        else None
    )
    name = obj.get("name")
    if not isinstance(name, str):
        raise _fail(f"{where}.name", f"expected a string, got {name!r:.60}")
    kind_number = _enum(obj.get("kind", 0), _KIND_NAMES, 5, f"{where}.kind")  # proto3 default
    kind = _KIND_FROM_OTLP.get(kind_number, SpanKind.INTERNAL)
    start = _integer(obj.get("startTimeUnixNano", "0"), f"{where}.startTimeUnixNano")
    end = _integer(obj.get("endTimeUnixNano", "0"), f"{where}.endTimeUnixNano")
    attributes = _decode_attributes(obj, "attributes", where)
    events = [
        _decode_event(raw, f"{where}.events[{i}]")
        for i, raw in enumerate(_get_list(obj, "events", where))
    ]
    links = [
        _decode_link(raw, f"{where}.links[{i}]")
        for i, raw in enumerate(_get_list(obj, "links", where))
    ]
    status_obj = _get_obj(obj.get("status", {}), f"{where}.status")
    code = _STATUS_FROM_OTLP[
        _enum(status_obj.get("code", 0), _STATUS_NAMES, 2, f"{where}.status.code")
    ]
    message = status_obj.get("message") or None
    if message is not None and not isinstance(message, str):
        raise _fail(f"{where}.status.message", f"expected a string, got {message!r:.60}")
    failed = code is StatusCode.ERROR
    return DecodedSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=kind,
        status=Status(code, message if failed else None),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
        otlp_kind=kind_number if kind_number == 0 else None,
        otlp_flags=flags,
        otlp_trace_state=state,
        otlp_status_message=None if failed else message,
        dropped=(
            _count(obj, "droppedAttributesCount", where),
            _count(obj, "droppedEventsCount", where),
            _count(obj, "droppedLinksCount", where),
        ),
    )


def decode_spans(
    data: Any, *, on_bad_span: Callable[[str], None] | None = None
) -> list[ReadableSpan]:
    """The spans of one OTLP ``TracesData`` JSON object (as ``json.loads`` gives it).

    Accepts every spelling the OTLP/JSON decoders accept: int64 as a string
    or a number, a double as a number or a string (``"1.5"``, ``"NaN"``,
    ``"-Infinity"``), enums as numbers or names (``SPAN_KIND_SERVER``,
    ``STATUS_CODE_ERROR``), fields left out when they are defaults. What the
    SDK's objects cannot hold is kept on the ``Decoded*`` classes, so that
    ``encode_spans`` writes back what was read: bytes, key-value lists and
    mixed arrays as values, dropped counts, a kind of 0, flags and trace
    states as written.

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
        resource = DecodedResource(
            _decode_attributes(raw_resource, "attributes", f"{rwhere}.resource"),
            str(rs.get("schemaUrl") or "") or None,
            dropped_attributes=_count(raw_resource, "droppedAttributesCount", f"{rwhere}.resource"),
        )
        for s, raw_ss in enumerate(_get_list(rs, "scopeSpans", rwhere)):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            ss = _get_obj(raw_ss, swhere)
            raw_scope = _get_obj(ss.get("scope", {}), f"{swhere}.scope")
            scope = None
            if raw_scope:
                scope = DecodedScope(
                    str(raw_scope.get("name", "")),
                    raw_scope.get("version") or None,
                    ss.get("schemaUrl") or None,
                    _decode_attributes(raw_scope, "attributes", f"{swhere}.scope") or None,
                    dropped_attributes=_count(
                        raw_scope, "droppedAttributesCount", f"{swhere}.scope"
                    ),
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
