"""bus._observe._otlp: the OTLP JSON encoding, checked against the OTLP protobufs."""

from __future__ import annotations

import base64
import copy
import json
import math
import re

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from bus.otlp import OtlpDecodeError, decode_spans, encode_spans

pytestmark = pytest.mark.timeout(30)

_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def hex_ids_to_base64(node):
    """Protobuf's JSON parser reads ids as base64 (and reads hex as base64 silently)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                raw = bytes.fromhex(value)
                assert len(raw) == _ID_KEYS[key], f"{key}={value!r} is not {_ID_KEYS[key]} bytes"
                assert value == value.lower()
                out[key] = base64.b64encode(raw).decode()
            else:
                out[key] = hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [hex_ids_to_base64(v) for v in node]
    return node


def validate_line(line: str) -> TracesData:
    """Parse one OTLP JSON line strictly against the TracesData protobuf."""
    data = json.loads(line)
    message = json_format.Parse(json.dumps(hex_ids_to_base64(data)), TracesData())
    # The ids survive the trip: protobuf re-encodes what we gave it.
    for rs_json, rs in zip(data["resourceSpans"], message.resource_spans, strict=True):
        for ss_json, ss in zip(rs_json["scopeSpans"], rs.scope_spans, strict=True):
            for span_json, span in zip(ss_json["spans"], ss.spans, strict=True):
                assert span.trace_id.hex() == span_json["traceId"]
                assert span.span_id.hex() == span_json["spanId"]
                assert span.parent_span_id.hex() == span_json.get("parentSpanId", "")
                assert span.start_time_unix_nano == int(span_json["startTimeUnixNano"])
                assert span.kind == span_json["kind"]
    return message


def make_span(**overrides) -> ReadableSpan:
    values = {
        "name": "lights.turn_on",
        "context": SpanContext(0xABC, 0xDEF, False, TraceFlags(1)),
        "parent": SpanContext(0xABC, 0x123, False, TraceFlags(1)),
        "resource": Resource({"service.name": "home"}),
        "attributes": {
            "s": "text",
            "b": True,
            "i": 2**62,
            "f": 1.5,
            "strs": ("a", "b"),
            "ints": (1, 2),
            "nan": math.nan,
            "inf": -math.inf,
        },
        "events": (Event("exception", {"exception.type": "ValueError"}, 1700000000000000123),),
        "links": (Link(SpanContext(0xFFF, 0xEEE, False), {"bus.replay": True}),),
        "kind": SpanKind.SERVER,
        "status": Status(StatusCode.ERROR, "ValueError: no"),
        "start_time": 1700000000000000000,
        "end_time": 1700000000000500000,
        "instrumentation_scope": InstrumentationScope("bus", "0.1.0"),
    }
    values.update(overrides)
    return ReadableSpan(**values)


def test_encoding_follows_the_file_exporter_conventions():
    data = encode_spans([make_span()])
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == f"{0xABC:032x}"
    assert span["spanId"] == f"{0xDEF:016x}"
    assert span["parentSpanId"] == f"{0x123:016x}"
    assert span["kind"] == 2  # SPAN_KIND_SERVER, an integer
    assert span["startTimeUnixNano"] == "1700000000000000000"  # int64 as a string
    assert span["status"] == {"code": 2, "message": "ValueError: no"}
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["i"] == {"intValue": str(2**62)}
    assert attrs["nan"] == {"doubleValue": "NaN"}
    assert attrs["inf"] == {"doubleValue": "-Infinity"}
    assert attrs["strs"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
    assert data["resourceSpans"][0]["scopeSpans"][0]["scope"] == {"name": "bus", "version": "0.1.0"}
    validate_line(json.dumps(data))


def test_spans_are_grouped_by_resource_and_scope():
    home, office = Resource({"service.name": "home"}), Resource({"service.name": "office"})
    spans = [
        make_span(resource=home),
        make_span(resource=office),
        make_span(resource=Resource({"service.name": "home"})),  # equal, another object
        make_span(resource=home, instrumentation_scope=InstrumentationScope("user")),
    ]
    data = encode_spans(spans)
    assert len(data["resourceSpans"]) == 2
    first = data["resourceSpans"][0]
    assert [len(s["spans"]) for s in first["scopeSpans"]] == [2, 1]
    validate_line(json.dumps(data))


def test_decode_is_the_inverse_of_encode():
    data = encode_spans([make_span(), make_span(parent=None, kind=SpanKind.PRODUCER)])
    text = json.dumps(data)
    again = decode_spans(json.loads(text))
    assert json.dumps(encode_spans(again)) == text


def test_decode_accepts_numbers_for_int64_and_missing_defaults():
    data = encode_spans([make_span()])
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
    del span["status"], span["flags"]
    (decoded,) = decode_spans(data)
    assert decoded.start_time == 1700000000000000000
    assert decoded.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda s: s.update(traceId="zz"), "spans[0].traceId"),
        (lambda s: s.update(spanId="00" * 8), "spans[0].spanId"),
        (lambda s: s.update(kind=9), "spans[0].kind"),
        (lambda s: s.update(startTimeUnixNano="soon"), "spans[0].startTimeUnixNano"),
        (lambda s: s.update(attributes={"a": 1}), "spans[0].attributes"),
        (lambda s: s.update(name=None), "spans[0].name"),
    ],
)
def test_decode_names_the_wrong_field(mutate, where):
    data = copy.deepcopy(encode_spans([make_span()]))
    mutate(data["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    with pytest.raises(OtlpDecodeError, match=re.escape("resourceSpans[0].scopeSpans[0]." + where)):
        decode_spans(data)


def test_decode_refuses_what_is_not_trace_data():
    with pytest.raises(OtlpDecodeError, match="resourceSpans"):
        decode_spans({"traceEvents": []})
    with pytest.raises(OtlpDecodeError, match="expected an object"):
        decode_spans([1, 2])


_atoms = (
    st.text(max_size=20)
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)
_values = _atoms | st.lists(st.text(max_size=5), max_size=4).map(tuple)
_values = _values | st.lists(st.integers(-5, 5), max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), _values, max_size=6))
def test_any_attributes_survive_the_round_trip_and_validate(attributes):
    data = encode_spans([make_span(attributes=attributes)])
    line = json.dumps(data, allow_nan=False)
    validate_line(line)
    (back,) = decode_spans(json.loads(line))
    assert dict(back.attributes) == {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in attributes.items()
    }
