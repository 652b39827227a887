"""OTLP JSON written by others, read here; and read here, written again, unchanged.

The yardstick is protobuf: two OTLP JSON texts say the same when
``json_format.Parse`` makes equal ``TracesData`` of them (after the hex ids
are turned into base64: the parser reads hex as base64 without complaint).
The official encoder (``opentelemetry-exporter-otlp-proto-common``) makes
the protobufs the bus's own spans must match, and protobuf's JSON printer
writes the other spellings (enum names, base64) a file may hold.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as official_encode,
)
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from bus.otlp import DecodedSpan, OtlpDecodeError, decode_spans, decode_value, encode_spans

pytestmark = pytest.mark.timeout(60)

_ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def hex_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode()
            if key in _ID_KEYS and isinstance(value, str)
            else hex_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [hex_to_base64(v) for v in node]
    return node


def base64_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_KEYS and isinstance(value, str)
            else base64_to_hex(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [base64_to_hex(v) for v in node]
    return node


def as_protobuf(data: dict[str, Any]) -> TracesData:
    """OTLP JSON (hex ids) as the protobuf message it says, strictly parsed.

    An empty ``resource``, ``scope`` or ``status`` is cleared: written as
    ``{}`` or left out, it says the same (protobuf alone tells them apart).
    """
    return normalized(json_format.Parse(json.dumps(hex_to_base64(data)), TracesData()))


def normalized(message: TracesData) -> TracesData:
    for rs in message.resource_spans:
        if not rs.resource.ListFields():
            rs.ClearField("resource")
        for ss in rs.scope_spans:
            if not ss.scope.ListFields():
                ss.ClearField("scope")
            for span in ss.spans:
                if not span.status.ListFields():
                    span.ClearField("status")
    return message


def round_trip(data: dict[str, Any]) -> dict[str, Any]:
    """Read with ``decode_spans``, write with ``encode_spans``, through JSON text both ways."""
    spans = decode_spans(json.loads(json.dumps(data)))
    return json.loads(json.dumps(encode_spans(spans), allow_nan=False))


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


TRACE = "5b8efff798038103d269b633813fc60c"

# A line from another application, with everything the OTLP data model holds
# that the SDK's span objects have no place for.
FOREIGN: dict[str, Any] = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    kv("service.name", {"stringValue": "shop"}),
                    kv("host.tags", {"arrayValue": {"values": [{"stringValue": "a"}]}}),
                ],
                "droppedAttributesCount": 2,
            },
            "scopeSpans": [
                {
                    "scope": {
                        "name": "shop.payments",
                        "version": "1.2",
                        "attributes": [kv("lib", {"stringValue": "x"})],
                        "droppedAttributesCount": 1,
                    },
                    "spans": [
                        {
                            "traceId": TRACE,
                            "spanId": "eee19b7ec3c1b174",
                            "traceState": "vendor=a,other=b",
                            "flags": 768,  # has-is-remote and is-remote, not sampled
                            "name": "handle Pay",
                            "kind": 0,  # SPAN_KIND_UNSPECIFIED
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                kv("raw", {"bytesValue": "AAH/"}),
                                kv(
                                    "map",
                                    {
                                        "kvlistValue": {
                                            "values": [
                                                kv("n", {"intValue": "7"}),
                                                kv(
                                                    "inner",
                                                    {"kvlistValue": {"values": []}},
                                                ),
                                                kv("none", {}),
                                            ]
                                        }
                                    },
                                ),
                                kv(
                                    "mixed",
                                    {
                                        "arrayValue": {
                                            "values": [
                                                {"intValue": "1"},
                                                {"doubleValue": 2.5},
                                                {"stringValue": "three"},
                                                {"boolValue": True},
                                                {"arrayValue": {"values": [{"intValue": "4"}]}},
                                                {"bytesValue": "BQ=="},
                                                {},
                                            ]
                                        }
                                    },
                                ),
                                kv("ints", {"arrayValue": {"values": [{"intValue": "1"}]}}),
                                kv("whole", {"doubleValue": 1.0}),
                                kv("nan", {"doubleValue": "NaN"}),
                                kv("empty", {}),
                            ],
                            "droppedAttributesCount": 3,
                            "events": [
                                {"timeUnixNano": "1544712660300000000", "name": "bare"},
                                {
                                    "timeUnixNano": "1544712660400000000",
                                    "name": "retry",
                                    "attributes": [kv("attempt", {"intValue": "2"})],
                                    "droppedAttributesCount": 4,
                                },
                            ],
                            "droppedEventsCount": 5,
                            "links": [
                                {
                                    "traceId": TRACE,
                                    "spanId": "aaaaaaaaaaaaaaaa",
                                    "traceState": "k=v",
                                    "attributes": [kv("why", {"stringValue": "batch"})],
                                    "droppedAttributesCount": 6,
                                    "flags": 769,
                                },
                                {"traceId": TRACE, "spanId": "bbbbbbbbbbbbbbbb"},  # no flags
                                {"traceId": TRACE, "spanId": "cccccccccccccccc", "flags": 256},
                            ],
                            "droppedLinksCount": 7,
                            "status": {"code": 1, "message": "fine, with a word"},
                        },
                        {
                            "traceId": TRACE,
                            "spanId": "1111111111111111",
                            "parentSpanId": "eee19b7ec3c1b174",
                            "name": "charge",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660100000000",
                            "endTimeUnixNano": "1544712660200000000",
                            "status": {"code": 2},
                        },
                    ],
                    "schemaUrl": "https://opentelemetry.io/schemas/1.9.0",
                }
            ],
            "schemaUrl": "https://opentelemetry.io/schemas/1.8.0",
        }
    ]
}


def test_a_foreign_line_read_and_written_again_says_the_same_to_protobuf():
    again = round_trip(FOREIGN)
    assert as_protobuf(again) == as_protobuf(FOREIGN)


def test_what_the_sdk_has_no_place_for_is_kept_on_the_decoded_objects():
    handle, _charge = decode_spans(copy.deepcopy(FOREIGN))
    assert isinstance(handle, DecodedSpan)
    attributes = handle.attributes
    assert attributes["raw"] == b"\x00\x01\xff"
    assert attributes["map"] == {"n": 7, "inner": {}, "none": None}
    assert attributes["mixed"] == [1, 2.5, "three", True, [4], b"\x05", None]
    assert attributes["whole"] == 1.0
    assert type(attributes["whole"]) is float
    assert math.isnan(attributes["nan"])
    assert attributes["empty"] is None
    assert (handle.dropped_attributes, handle.dropped_events, handle.dropped_links) == (3, 5, 7)
    assert [e.dropped_attributes for e in handle.events] == [0, 4]
    assert [link.dropped_attributes for link in handle.links] == [6, 0, 0]
    assert handle.otlp_kind == 0
    assert handle.kind is SpanKind.INTERNAL  # the SDK's nearest
    link = handle.links[0]
    assert link.context.trace_state == TraceState([("k", "v")])
    assert link.context.is_remote
    assert link.context.trace_flags == TraceFlags(1)
    assert handle.resource.dropped_attributes == 2  # type: ignore[attr-defined]
    assert handle.instrumentation_scope is not None
    assert handle.instrumentation_scope.dropped_attributes == 1  # type: ignore[attr-defined]


def test_the_written_line_leaves_out_empty_parts_as_the_official_exporter_does():
    again = round_trip(FOREIGN)
    text = json.dumps(again)
    assert '"attributes": []' not in text
    bare = again["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["events"][0]
    assert bare == {"timeUnixNano": "1544712660300000000", "name": "bare"}


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ({"doubleValue": "1.5"}, 1.5),
        ({"doubleValue": "-2e3"}, -2000.0),
        ({"doubleValue": 3}, 3.0),
        ({"doubleValue": "Infinity"}, math.inf),
        ({"doubleValue": "-Infinity"}, -math.inf),
        ({"intValue": 3}, 3),
        ({"intValue": "-3"}, -3),
        ({"intValue": "+3"}, 3),
        ({"intValue": 3.0}, 3),
        ({"intValue": "1e2"}, 100),
        ({"bytesValue": "_-8"}, b"\xff\xef"),  # URL-safe, unpadded
        ({"bytesValue": "//8="}, b"\xff\xff"),
    ],
)
def test_every_spelling_the_official_decoders_accept_is_read(written, read):
    assert decode_value(written) == read


def test_nan_as_text_is_read():
    assert math.isnan(decode_value({"doubleValue": "NaN"}))


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ({"doubleValue": "nan"}, "doubleValue: expected a number"),
        ({"doubleValue": "1.5x"}, "doubleValue: expected a number"),
        ({"doubleValue": True}, "doubleValue: expected a number"),
        ({"intValue": 3.5}, "intValue: expected an integer"),
        ({"intValue": "3.5"}, "intValue: expected an integer"),
        ({"intValue": "three"}, "intValue: expected an integer"),
        ({"intValue": "1_000"}, "intValue: expected an integer"),
        ({"intValue": " 7"}, "intValue: expected an integer"),
        ({"intValue": "\u0663"}, "intValue: expected an integer"),  # an Arabic-Indic 3
        ({"bytesValue": "not base64!"}, "bytesValue: expected base64 text"),
    ],
)
def test_what_no_decoder_accepts_is_named(written, problem):
    with pytest.raises(OtlpDecodeError, match=problem):
        decode_value(written)


def one_span(**fields: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE,
        "spanId": "eee19b7ec3c1b174",
        "name": "x",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    span.update(fields)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


def test_enum_names_and_int64_numbers_are_read_not_rejected():
    # Each of these failed the whole line before.
    (span,) = decode_spans(
        one_span(
            kind="SPAN_KIND_SERVER",
            status={"code": "STATUS_CODE_ERROR", "message": "no"},
            startTimeUnixNano=1544712660000000000,
            endTimeUnixNano=1544712661000000000.0,
            attributes=[kv("ratio", {"doubleValue": "0.25"})],
        )
    )
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "no"
    assert span.start_time == 1544712660000000000
    assert span.end_time == 1544712661000000000
    assert span.attributes == {"ratio": 0.25}
    (unspecified,) = decode_spans(one_span(kind="SPAN_KIND_UNSPECIFIED"))
    assert encode_spans([unspecified])["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] == 0


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"kind": "SERVER"}, "spans[0].kind: expected 0-5 or a SPAN_KIND_* name"),
        ({"status": {"code": "ERROR"}}, "status.code: expected 0-2 or a STATUS_CODE_* name"),
        ({"droppedEventsCount": -1}, "droppedEventsCount: expected a count"),
        ({"traceState": 5}, "traceState: expected a string"),
    ],
)
def test_wrong_fields_are_named(fields, where):
    with pytest.raises(OtlpDecodeError, match=re.escape(where)):
        decode_spans(one_span(**fields))


def sdk_spans() -> list[Any]:
    """Spans a real SDK made, with limits that make it drop attributes, events and links."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "home", "tags": ("a", "b")}),
        span_limits=SpanLimits(
            max_span_attributes=3,
            max_event_attributes=1,
            max_link_attributes=1,
            max_events=2,
            max_links=2,
        ),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app", "2.0", schema_url="https://example.com/s")
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("vendor", "x")]))
    with tracer.start_as_current_span(
        "outer", kind=SpanKind.SERVER, attributes={"a": 1, "b": b"\x00", "c": [1.5, 2.5], "d": 4}
    ) as outer:
        # The oldest event and link go when a third comes (so the counts show).
        outer.add_event("e0", {"z": "z"})
        outer.add_event("e1", {"x": 1, "y": 2})
        outer.add_event("e2")
        outer.add_link(remote)
        outer.add_link(remote, {"why": "x", "more": "y"})
        outer.add_link(outer.get_span_context())
        with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT) as inner:
            inner.set_status(Status(StatusCode.ERROR, "broke"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def without_low_flags(message: TracesData) -> TracesData:
    """Our flags carry the W3C trace flags in the low byte (sampled: 257), the official not."""
    for rs in message.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.flags &= ~0xFF
                for link in span.links:
                    link.flags &= ~0xFF
    return message


@pytest.mark.filterwarnings("ignore")
def test_the_bus_encodes_sdk_spans_as_the_official_encoder_does():
    spans = sdk_spans()
    ours = without_low_flags(as_protobuf(encode_spans(spans)))
    official = normalized(TracesData(resource_spans=official_encode(spans).resource_spans))
    # The official encoder writes no link trace state; ours keeps it (OTLP has the field).
    for rs in ours.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for link in span.links:
                    assert link.trace_state in ("", "vendor=x")
                    link.trace_state = ""
    assert ours == official
    outer = encode_spans(spans)["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert outer["droppedAttributesCount"] == 1
    assert [e.get("droppedAttributesCount", 0) for e in outer["events"]] == [1, 0]
    assert outer["droppedEventsCount"] == 1
    assert [k.get("droppedAttributesCount", 0) for k in outer["links"]] == [1, 0]


@pytest.mark.filterwarnings("ignore")
def test_a_file_in_protobufs_own_json_spelling_reads_and_writes_back_the_same():
    # Protobuf's JSON printer writes enum names (SPAN_KIND_SERVER) and base64
    # ids; OTLP files have hex ids, so those are turned back into hex.
    message = TracesData(resource_spans=official_encode(sdk_spans()).resource_spans)
    printed = base64_to_hex(json_format.MessageToDict(message))
    assert '"SPAN_KIND_SERVER"' in json.dumps(printed)
    assert without_low_flags(as_protobuf(round_trip(printed))) == without_low_flags(
        normalized(message)
    )


# Any AnyValue tree: what comes back is what went in, to protobuf.
_leaves = (
    st.builds(lambda s: {"stringValue": s}, st.text(max_size=8))
    | st.builds(lambda b: {"boolValue": b}, st.booleans())
    | st.builds(lambda i: {"intValue": str(i)}, st.integers(-(2**63), 2**63 - 1))
    | st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False, allow_infinity=False))
    | st.sampled_from([{"doubleValue": "NaN"}, {"doubleValue": "-Infinity"}, {}])
    | st.builds(lambda b: {"bytesValue": base64.b64encode(b).decode()}, st.binary(max_size=6))
)
_any_values = st.recursive(
    _leaves,
    lambda inner: (
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=4))
        | st.builds(
            lambda kvs: {"kvlistValue": {"values": [kv(k, v) for k, v in kvs.items()]}},
            st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=4),
        )
    ),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), _any_values, max_size=5))
def test_any_attribute_values_survive_the_round_trip(values):
    data = one_span(attributes=[kv(k, v) for k, v in values.items()])
    assert as_protobuf(round_trip(data)) == as_protobuf(data)
