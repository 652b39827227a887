"""``SpanBuilder``'s spans, made the fast way, are the SDK's spans through every public door.

``SpanBuilder`` makes each ``ReadableSpan`` without calling its ``__init__``,
each context without ``SpanContext``'s validation, shares an event's context
with its deliveries and a failure's ``Status`` between a call's two spans.
``ReferenceSpanBuilder`` makes the same spans with the SDK's own constructors,
each object its own. Every span of real traffic (and of records varied where
real traffic on one process cannot reach: NATS hops, transport attributes)
must read the same through every public property, ``to_json()`` and the
official OTLP protobuf encoder's bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import Bus
from bus._observe import _spans
from bus._observe._records import CALL, DELIVERY, FIRE, Flat
from bus._observe._spans import ReferenceSpanBuilder, SpanBuilder
from bus.testing import wait_idle
from tests.bus.observe.varied_traffic import Other, start, traffic

pytestmark = pytest.mark.timeout(60)

trace_encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")


def _varied(records: list[Flat]) -> list[Flat]:
    """Records as a bus on NATS makes them: hops, transport attributes."""
    wire = {"messaging.nats.subject": "bus.x", "bus.held": True}
    out: list[Flat] = []
    for record in records:
        out.append((*record[:-1], wire))
        if record[0] == CALL:
            for hop in ("client", "server"):
                out.append((*record[:-2], hop, wire))
    return out


@pytest.fixture
def records(make_bus: Callable[..., Bus]) -> Iterator[list[Flat]]:
    bus = make_bus(json_limit=512)
    traffic(bus, start(bus))
    assert bus.flush_traces(timeout=10)
    made = bus.spans.records()
    kinds = {r[0] for r in made}
    assert kinds == {CALL, FIRE, DELIVERY}
    return made + _varied(made)


def _build(maker: type[SpanBuilder], records: list[Flat]) -> list[ReadableSpan]:
    builder = maker(
        Resource({"service.name": "shop"}), json_limit=512, redact=lambda key, value: value
    )
    out: list[Any] = []
    assert builder.build_many(records, out, _never_fails) == records
    return out


def _never_fails(record: Flat, exc: Exception) -> None:
    raise AssertionError(f"{record!r} was not made: {exc!r}")


def _public(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter can read of a span, as plain values."""
    status = span.status
    return {
        "type": type(span),
        "name": span.name,
        "context": span.context,
        "get_span_context": span.get_span_context(),
        "parent": span.parent,
        "kind": span.kind,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": (type(status), status.status_code, status.description, status.is_ok),
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "resource": (span.resource.attributes, span.resource.schema_url),
        "scope": span.instrumentation_scope,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "json": span.to_json(),
        "json_compact": span.to_json(indent=None),
    }


def test_every_span_reads_as_the_sdk_constructors_make_it(records: list[Flat]) -> None:
    fast = _build(SpanBuilder, records)
    reference = _build(ReferenceSpanBuilder, records)
    assert len(fast) == len(reference) > 60
    for made, sdk in zip(fast, reference, strict=True):
        assert _public(made) == _public(sdk)
    # The comparison covers every shape of span.
    assert {s.kind for s in fast} == set(trace.SpanKind) - {trace.SpanKind.INTERNAL}
    assert any(s.status.description for s in fast)
    assert any(s.events for s in fast)
    assert any(s.links for s in fast)
    assert any(s.parent is None for s in fast)
    assert any(s.parent is not None for s in fast)
    assert any("messaging.nats.subject" in (s.attributes or {}) for s in fast)


def test_the_official_otlp_encoder_gives_the_same_bytes(records: list[Flat]) -> None:
    fast = _build(SpanBuilder, records)
    reference = _build(ReferenceSpanBuilder, records)
    made = trace_encoder.encode_spans(fast).SerializeToString()
    expected = trace_encoder.encode_spans(reference).SerializeToString()
    assert made == expected
    # and span by span, so that a reordering within a batch would show too
    for one, other in zip(fast, reference, strict=True):
        assert (
            trace_encoder.encode_spans([one]).SerializeToString()
            == trace_encoder.encode_spans([other]).SerializeToString()
        )


def test_records_in_any_order_make_the_same_spans(records: list[Flat]) -> None:
    # A delivery's record may reach the trace thread before its event's:
    # whichever comes first makes the context both share.
    backwards = list(reversed(records))
    for made, sdk in zip(
        _build(SpanBuilder, backwards), _build(ReferenceSpanBuilder, backwards), strict=True
    ):
        assert _public(made) == _public(sdk)


def test_an_events_deliveries_share_its_context(records: list[Flat]) -> None:
    spans = _build(SpanBuilder, records)
    producers = {s.context.span_id: s for s in spans if s.kind is trace.SpanKind.PRODUCER}
    consumers = [s for s in spans if s.kind is trace.SpanKind.CONSUMER]
    one = [s for s in consumers if s.name == "process thing.one"]
    assert len(one) >= 3  # three listeners of thing.one
    for consumer in consumers:
        assert consumer.parent is not None
        producer = producers.get(consumer.parent.span_id)
        if producer is not None and producer.context.trace_id == consumer.parent.trace_id:
            assert consumer.parent is producer.context


def test_a_server_spans_parent_is_its_client_spans_context(records: list[Flat]) -> None:
    spans = _build(SpanBuilder, records)
    pairs = [
        (client, server)
        for client, server in pairwise(spans)
        if client.kind is trace.SpanKind.CLIENT
        and server.kind is trace.SpanKind.SERVER
        and server.parent is not None
        and server.parent.span_id == client.context.span_id
    ]
    assert len(pairs) > 5
    for client, server in pairs:
        assert server.parent is client.context


def test_a_delivery_of_an_event_with_no_span_has_no_parent(records: list[Flat]) -> None:
    # An event from a process that sent no trace context: its deliveries
    # are roots, never children of a span id 0.
    orphans = [(*r[:2], 0, *r[3:]) for r in records if r[0] == DELIVERY]
    spans = _build(SpanBuilder, orphans)
    assert spans
    assert all(s.parent is None for s in spans)
    for made, sdk in zip(spans, _build(ReferenceSpanBuilder, orphans), strict=True):
        assert _public(made) == _public(sdk)


def test_a_kept_context_is_never_another_traces(records: list[Flat]) -> None:
    # Two events whose span ids collide in different traces: each delivery's
    # parent is its own trace's context.
    fire = next(r for r in records if r[0] == FIRE)
    other_trace = (fire[0], fire[1] ^ 1, *fire[2:])
    delivery = next(r for r in records if r[0] == DELIVERY and r[2] == fire[3])
    other_delivery = (delivery[0], delivery[1] ^ 1, *delivery[2:])
    spans = _build(SpanBuilder, [fire, other_trace, delivery, other_delivery])
    assert spans[2].parent == spans[0].context
    assert spans[3].parent == spans[1].context
    assert spans[3].parent is not None
    assert spans[3].parent.trace_id == fire[1] ^ 1


def test_spans_made_fast_are_exported_as_the_sdks(
    make_bus: Callable[..., Bus], records: list[Flat]
) -> None:
    # Through a real provider and BatchSpanProcessor, what an exporter gets.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    bus = make_bus(tracer_provider=provider)
    bus.add_service(Other())
    for n in range(5):
        bus.execute_command("other.ok").result(timeout=5)
        bus.fire_event("thing.one", n)
    wait_idle(bus)
    assert bus.flush_traces(timeout=10)
    assert provider.force_flush(10_000)
    exported = exporter.get_finished_spans()
    assert len(exported) == 20
    assert all(type(s) is ReadableSpan for s in exported)
    # The ring's records of the same work, built the reference way, read the same.
    reference = _build(ReferenceSpanBuilder, bus.spans.records())
    resource = provider.resource
    for made, sdk in zip(exported, reference, strict=True):
        assert made.resource is resource
        public, expected = _public(made), _public(sdk)
        del public["resource"], expected["resource"], public["json"], expected["json"]
        del public["json_compact"], expected["json_compact"]
        assert public == expected


def test_a_different_sdk_constructor_sends_the_builder_back_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _spans._same_spans()
    original = ReadableSpan.__init__

    def init_with_more(self: ReadableSpan, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._new_in_a_later_release = 1  # type: ignore[attr-defined]

    monkeypatch.setattr(ReadableSpan, "__init__", init_with_more)
    assert not _spans._same_spans()


@pytest.mark.parametrize(
    ("slot", "value"),
    [("_instrumentation_scope", None), ("_name", "other"), ("_resource", Resource({"a": 1}))],
)
def test_a_value_stored_differently_is_noticed(
    monkeypatch: pytest.MonkeyPatch, slot: str, value: Any
) -> None:
    # What __init__ stores differently (not only what it stores) is noticed.
    original = ReadableSpan.__init__

    def init_elsewhere(self: ReadableSpan, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        setattr(self, slot, value)

    monkeypatch.setattr(ReadableSpan, "__init__", init_elsewhere)
    assert not _spans._same_spans()


def test_the_installed_sdk_takes_the_fast_route() -> None:
    # Otherwise the comparisons above would compare the SDK's way with itself.
    assert _spans._same_spans()
    assert SpanBuilder._span is not ReferenceSpanBuilder._span
    spans: list[Any] = []
    SpanBuilder(Resource.get_empty(), json_limit=64, redact=None)._span(
        spans, "n", 1, 2, 0, trace.SpanKind.CLIENT, {}, None, (), "E: x", 3, 4
    )
    other: list[Any] = []
    ReferenceSpanBuilder(Resource.get_empty(), json_limit=64, redact=None)._span(
        other, "n", 1, 2, 0, trace.SpanKind.CLIENT, {}, None, (), "E: x", 3, 4
    )
    assert list(vars(spans[0])) == list(vars(other[0]))
