"""The C maker of SDK spans makes exactly the spans ``SpanBuilder``'s Python code makes.

``SpanBuilder`` makes the common flat records' ``ReadableSpan``s in C
(``_speedups_otlp.SdkSpans``) and hands every other record, and every value
C does not write itself, to its Python code, in order. Each record here is
made both ways and by ``ReferenceSpanBuilder`` (the SDK's constructors),
and compared through every public property, ``to_json()`` and the official
OTLP protobuf encoder's bytes; for the common records the test also checks
that C made them, so that the comparison is not Python against Python; and
which spans share a context object is the same either way.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import Bus
from bus._observe import _spans
from bus._observe._jsonval import redact_secrets
from bus._observe._otlp_lines import c_available
from bus._observe._records import CALL, DELIVERY, FIRE, Flat
from bus._observe._spans import ReferenceSpanBuilder, SpanBuilder
from bus.testing import wait_idle
from tests.bus.observe.test_fast_spans import _public, _varied
from tests.bus.observe.test_otlp_lines_c import (
    COMMON,
    HANDED_BACK,
    _queued_ns,
    call,
    delivery,
    fire,
)
from tests.bus.observe.varied_traffic import Other, start, traffic

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not c_available(), reason="the C extension was not built"),
]

trace_encoder = pytest.importorskip("opentelemetry.exporter.otlp.proto.common.trace_encoder")

RESOURCE = Resource.create({"service.name": "svc", "n": 3})


def valid_ids(record: Flat) -> bool:
    """Whether the record's ids are valid ones (0 < id < 2**bits, a parent 0 or valid).

    For others (span id 0, past 64 bits) the SDK's constructor marks the
    context invalid and the bus's ``span_context`` (either maker) does not:
    those are compared with the Python code alone.
    """
    trace_id, *ids = {CALL: record[1:5], FIRE: record[1:4], DELIVERY: record[1:4]}[record[0]]
    parent, spans = ids[0], ids[1:]
    return (
        0 < trace_id < 2**128
        and 0 <= parent < 2**64
        and all(type(i) is int and 0 < i < 2**64 for i in spans)
    )


def builders(limit: int = 512) -> tuple[SpanBuilder, SpanBuilder, SpanBuilder]:
    """C, Python and the SDK's constructors, alike but for that."""
    options: dict[str, Any] = {"json_limit": limit, "redact": redact_secrets}
    c = SpanBuilder(RESOURCE, accelerated=True, **options)
    assert c.accelerated
    python = SpanBuilder(RESOURCE, accelerated=False, **options)
    assert not python.accelerated
    return c, python, ReferenceSpanBuilder(RESOURCE, **options)


def _no_failure(record: Flat, exc: Exception) -> None:
    raise AssertionError(f"{record!r} failed: {exc!r}")


def made_by(builder: SpanBuilder, records: list[Flat]) -> list[ReadableSpan]:
    out: list[Any] = []
    assert builder.build_many(records, out, _no_failure) == records
    return out


def shared(spans: list[ReadableSpan]) -> list[tuple[int, int, str, str]]:
    """Which spans' contexts and parents are one object."""
    found = []
    for i, a in enumerate(spans):
        for j, b in enumerate(spans):
            for x_name, x in (("context", a.context), ("parent", a.parent)):
                for y_name, y in (("context", b.context), ("parent", b.parent)):
                    if (i, x_name) < (j, y_name) and x is not None and x is y:
                        found.append((i, j, x_name, y_name))
    return found


def _readable(span: ReadableSpan) -> dict[str, Any] | type[BaseException]:
    """``_public``, or what it raises (odd values the SDK cannot write)."""
    try:
        return _public(span)
    except (ValueError, OverflowError, UnicodeError) as exc:
        return type(exc)


def _state(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes (its __dict__, in order), objects without equality as values."""
    found = dict(vars(span))
    status = found["_status"]
    found["_status"] = (type(status), status.status_code, status.description)
    found["_resource"] = (span.resource.attributes, span.resource.schema_url)
    found["_events"] = [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events]
    found["_links"] = [(link.context, dict(link.attributes or {})) for link in span.links]
    found["_attributes"] = list((span.attributes or {}).items())
    found["order"] = list(vars(span))
    return found


def _protobuf(span: ReadableSpan) -> bytes | type[BaseException]:
    """The official OTLP encoder's bytes of a span, or what it raises on odd values."""
    try:
        return bytes(trace_encoder.encode_spans([span]).SerializeToString())
    except (ValueError, OverflowError, UnicodeError) as exc:
        return type(exc)


def assert_same(made: list[ReadableSpan], expected: list[ReadableSpan]) -> None:
    assert len(made) == len(expected)
    for one, other in zip(made, expected, strict=True):
        found = _readable(one)
        assert found == _readable(other)
        assert _state(one) == _state(other)
        if not isinstance(found, dict):
            continue
        assert list(vars(one)) == list(vars(other))
        assert list((one.attributes or {}).items()) == list((other.attributes or {}).items())
        assert _protobuf(one) == _protobuf(other)


@pytest.mark.parametrize("name", list(COMMON))
def test_c_makes_the_common_records_as_python_does(name: str) -> None:
    record = COMMON[name]
    c, python, reference = builders()
    made: list[Any] = []
    assert c._c.build(record, made)  # made in C, not handed back
    assert_same(made, made_by(python, [record]))
    if valid_ids(record):
        assert_same(made, made_by(reference, [record]))
    assert shared(made) == shared(made_by(python, [record]))


# Records the file encoder leaves to Python that C makes all the same: an SDK
# span only carries ids, times and counts, whatever their size or type, and
# a value's JSON C cannot write is the Python hook's.
C_TAKES = {"call, big id", "call, time past int64", "fire, bool listeners", "call, surrogate"}


@pytest.mark.parametrize("name", list(HANDED_BACK))
def test_c_hands_other_records_to_python_whole(name: str) -> None:
    record = HANDED_BACK[name]
    c, python, reference = builders()
    out: list[Any] = []
    made = c._c.build(record, out)
    assert made == (name in C_TAKES)
    if not made:
        assert out == []  # nothing of it made in C
    assert_same(made_by(c, [record]), made_by(python, [record]))
    if valid_ids(record):
        assert_same(made_by(c, [record]), made_by(reference, [record]))


def test_c_computes_queued_times_as_python_divides() -> None:
    # bus.queued_ms: the int difference rounded to a double, then divided,
    # for deliveries and calls, at every size up to 64 bits.
    c, _, _ = builders()
    for queued in [*_queued_ns(), 10**15, 2**53 + 1, 2**62, -(2**62), 2**63 - 1]:
        base = 10**18 if queued < 2**62 else 0
        made: list[Any] = []
        records = [
            delivery(fire_sent_ns=base, start_ns=base + queued),
            call(sent_ns=base, handled_ns=base + queued),
        ]
        for record in records:
            assert c._c.build(record, made)
        queued_ms = [s.attributes["bus.queued_ms"] for s in made if "bus.queued_ms" in s.attributes]
        assert queued_ms == [queued / 1e6] * 2, queued


@pytest.mark.parametrize("limit", [8, 64, 512])
def test_a_mixed_batch_in_any_order_is_the_same_either_way(limit: int) -> None:
    records = [*COMMON.values(), *HANDED_BACK.values()] * 2
    random.Random(limit).shuffle(records)
    c, python, reference = builders(limit)
    made = made_by(c, records)
    expected = made_by(python, records)
    assert_same(made, expected)
    valid = [r for r in records if valid_ids(r)]
    assert_same(made_by(builders(limit)[0], valid), made_by(reference, valid))
    # The same spans share one context object: an event's with its
    # deliveries', a CLIENT span's with its SERVER span's parent.
    assert shared(made) == shared(expected)
    assert shared(made)


def test_an_events_context_is_shared_across_c_and_python() -> None:
    # The event's span made in C, a failed delivery in Python, a good one in
    # C again: all three share the event's context, as Python alone does.
    c, python, _ = builders()
    records = [fire(), delivery(error=KeyError("k")), delivery(span_id=0x6666)]
    made = made_by(c, records)
    assert made[1].parent is made[0].context
    assert made[2].parent is made[0].context
    assert shared(made) == shared(made_by(python, records))
    # and the other way round: deliveries first, the event last
    records = [delivery(), delivery(span_id=0x6666, extras=({"a": 1}, None, None)), fire()]
    made = made_by(c, records)
    assert made[0].parent is made[1].parent is made[2].context


def test_events_contexts_are_kept_for_the_last_1024_events_either_way() -> None:
    c, python, _ = builders()
    records = [fire(span_id=0x10000 + n) for n in range(1500)]
    for builder in (c, python):
        made_by(builder, records)
    assert len(c._producers) == len(python._producers) <= _spans._PRODUCERS_MAX
    assert list(c._producers) == list(python._producers)
    # A delivery of an event forgotten gets a context of its own, as in Python.
    late = [delivery(fire_span_id=0x10000), delivery(fire_span_id=0x10000 + 1499)]
    made, expected = made_by(c, late), made_by(python, late)
    assert_same(made, expected)
    assert made[1].parent is c._producers[0x10000 + 1499]


def test_a_server_hop_after_a_call_shares_its_client_context_as_python_does() -> None:
    # _last is kept in step between C and Python: a server-hop record whose
    # parent is the span made just before shares its context either way.
    c, python, _ = builders()
    first = fire(span_id=0x7777)
    hop = call(hop="server", parent_id=0x7777)
    for records in ([first, hop], [hop, call(parent_id=0x2222)], [call(), call(parent_id=0x2222)]):
        made = made_by(c, records)
        expected = made_by(python, records)
        assert_same(made, expected)
        assert shared(made) == shared(expected)


@pytest.fixture
def traffic_records(make_bus: Callable[..., Bus]) -> list[Flat]:
    bus = make_bus(json_limit=512)
    traffic(bus, start(bus))
    assert bus.flush_traces(timeout=10)
    made = bus.spans.records()
    assert {r[0] for r in made} == {CALL, FIRE, DELIVERY}
    return made + _varied(made)


def test_real_traffic_is_made_the_same_and_mostly_in_c(traffic_records: list[Flat]) -> None:
    c, python, reference = builders()
    handed: list[Flat] = []
    python_build = c._build_python

    def counted(record: Flat, out: list[Any], failed: Any) -> bool:
        handed.append(record)
        return python_build(record, out, failed)

    c._build_python = counted  # type: ignore[method-assign]
    c._c = _spans._sdk_spans(c)
    made = made_by(c, traffic_records)
    assert_same(made, made_by(python, traffic_records))
    assert_same(made, made_by(reference, traffic_records))
    assert shared(made) == shared(made_by(python, traffic_records))
    # The records of one process (no transport attributes): mostly C's.
    plain = [r for r in traffic_records if not r[-1]]
    assert 0 < len([r for r in handed if not r[-1]]) < len(plain) // 2


def test_a_failing_value_hook_hands_the_record_back_whole() -> None:
    c, python, _ = builders()

    def hostile(value: Any) -> tuple[str, bool, bool]:
        raise ValueError("no")

    c._value_json = hostile  # type: ignore[method-assign]
    c._c = _spans._sdk_spans(c)
    record = call(kwargs={"a": 1})  # a dict: the hook's
    out: list[Any] = []
    assert not c._c.build(record, out)
    assert out == []
    assert_same(made_by(c, [record, fire()]), made_by(python, [record, fire()]))


def test_an_interrupt_in_the_value_hook_is_not_swallowed() -> None:
    c, _, _ = builders()

    def interrupted(value: Any) -> tuple[str, bool, bool]:
        raise KeyboardInterrupt

    c._value_json = interrupted  # type: ignore[method-assign]
    c._c = _spans._sdk_spans(c)
    out: list[Any] = []
    with pytest.raises(KeyboardInterrupt):
        c.build_many([fire(), call(kwargs={"a": 1})], out, _no_failure)
    # The builder is usable again, its state whole.
    assert c.build_many([fire()], [], _no_failure) == [fire()]


def test_a_record_that_cannot_be_made_is_reported_and_the_rest_are_made() -> None:
    c, python, _ = builders()
    bad = (FIRE, 1, 2)  # not a record's layout: the Python code fails on it
    records = [call(), bad, fire(), delivery()]
    failures: list[Flat] = []
    out: list[Any] = []
    made = c.build_many(records, out, lambda record, exc: failures.append(record))
    assert made == [call(), fire(), delivery()]
    assert failures == [bad]
    assert_same(out, made_by(python, made))


def test_a_value_hook_that_builds_again_gets_the_python_code() -> None:
    # Re-entered while building (a hook running Python code that builds):
    # the inner call's records go to the Python code.
    c, python, _ = builders()
    inner: list[Any] = []
    original = c._value_json

    def reentering(value: Any) -> tuple[str, bool, bool]:
        c.build_many([fire()], inner, _no_failure)
        return original(value)

    c._value_json = reentering  # type: ignore[method-assign]
    c._c = _spans._sdk_spans(c)
    record = call(kwargs={"a": 1})
    assert_same(made_by(c, [record]), made_by(python, [record]))
    assert_same(inner, made_by(python, [fire()]))


def test_a_builder_not_initialised_refuses_clearly() -> None:
    from bus._observe import _speedups_otlp

    maker = _speedups_otlp.SdkSpans.__new__(_speedups_otlp.SdkSpans)
    with pytest.raises(TypeError, match="__init__ was not called"):
        maker.build_many([fire()], [], _no_failure)
    with pytest.raises(TypeError, match="build_many"):
        maker.build_many(fire(), [], _no_failure)


def test_bad_settings_are_refused_clearly() -> None:
    from bus._observe import _speedups_otlp

    c, _, _ = builders()
    good: dict[str, Any] = dict(
        owner=c, limit=64, value_json=c._value_json, fallback=c._build_python,
        encoded=_spans.Encoded, producers={}, span_type=ReadableSpan,
        context_type=_spans.SpanContext, sampled=_spans.SAMPLED,
        no_state=_spans.DEFAULT_TRACE_STATE, kinds=(1, 2, 3, 4), scope=_spans.SCOPE,
        resource=RESOURCE, status=_spans._OK, names=_spans._SPAN_ATTRIBUTES,
    )  # fmt: skip
    _speedups_otlp.SdkSpans(**good)
    bad: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"kinds": (1, 2)}, ValueError, "kinds must hold 4"),
        ({"names": ("_name",)}, ValueError, "13 names"),
        ({"names": (1,) * 13}, TypeError, "names must be str"),
        ({"fallback": None}, TypeError, "must be callable"),
        ({"span_type": dict}, TypeError, "plain class"),
        ({"context_type": int}, TypeError, "tuple types"),
        ({"producers": []}, TypeError, "dict"),
    ]
    for change, error, message in bad:
        with pytest.raises(error, match=message):
            _speedups_otlp.SdkSpans(**{**good, **change})


def test_a_changed_span_layout_refuses_c(monkeypatch: pytest.MonkeyPatch) -> None:
    # The import-time check compares C's spans with the SDK constructors';
    # attributes set in another order than __init__'s are noticed.
    assert _spans._c_same_spans()
    names = list(_spans._SPAN_ATTRIBUTES)
    names[0], names[1] = names[1], names[0]
    monkeypatch.setattr(_spans, "_SPAN_ATTRIBUTES", tuple(names))
    assert not _spans._c_same_spans()


def test_a_different_sdk_constructor_refuses_c(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ReadableSpan.__init__

    def init_with_more(self: ReadableSpan, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._new_in_a_later_release = 1  # type: ignore[attr-defined]

    monkeypatch.setattr(ReadableSpan, "__init__", init_with_more)
    assert not _spans._c_same_spans()


def test_building_leaks_nothing() -> None:
    c, _, _ = builders()
    records = [*COMMON.values(), *HANDED_BACK.values()]

    def round_() -> None:
        for _ in range(50):
            c.build_many(records, [], _no_failure)

    round_()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(3):
        round_()
    gc.collect()
    assert sys.getallocatedblocks() - before < 200


def test_a_builder_and_its_c_maker_are_collected_together() -> None:
    c, _, _ = builders()
    c.build_many([fire(), call()], [], _no_failure)
    gone = weakref.ref(c)
    del c
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("pure", ["1", ""])
def test_bus_pure_python_chooses_the_python_builder(pure: str) -> None:
    code = (
        "from opentelemetry.sdk.resources import Resource\n"
        "from bus._observe._spans import SpanBuilder\n"
        "print(SpanBuilder(Resource.get_empty(), json_limit=64, redact=None).accelerated)\n"
    )
    env = {**os.environ, "BUS_PURE_PYTHON": pure}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("False" if pure else "True")


def test_an_application_provider_gets_the_c_spans(make_bus: Callable[..., Bus]) -> None:
    # Through a real provider and BatchSpanProcessor: what the exporter gets
    # is what the reference makes of the ring's records.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    bus = make_bus(tracer_provider=provider, json_limit=512)
    bus.add_service(Other())
    for n in range(50):
        bus.execute_command("other.ok").result(timeout=5)
        bus.fire_event("thing.one", n, key="x")
    wait_idle(bus)
    assert bus.flush_traces(timeout=10)
    assert provider.force_flush(10_000)
    exported = exporter.get_finished_spans()
    assert len(exported) == 200
    reference = ReferenceSpanBuilder(RESOURCE, json_limit=512, redact=redact_secrets)
    expected: list[Any] = []
    reference.build_many(bus.spans.records(), expected, _no_failure)
    assert_same(list(exported), expected)
