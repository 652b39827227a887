"""The C encoder of trace-file lines writes exactly what the Python code writes.

``OtlpLines`` writes the common flat records in C (``_speedups_otlp``) and
hands every other record, and every value it does not write itself, to its
Python code. Each record here is written both ways and compared, byte for
byte, with each other and with ``json.dumps`` of ``OtlpSpans``' objects;
for the common records the test also checks that C wrote them, so that the
comparison is not Python against Python.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link

from bus import Bus, Service, command, listener
from bus._observe._jsonval import Encoded, redact_secrets
from bus._observe._otlp_lines import OtlpLines, c_available
from bus._observe._records import CALL, DELIVERY, FIRE, Flat, span_context
from bus._observe._spans import OtlpSpans
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)

needs_c = pytest.mark.skipif(not c_available(), reason="the C encoder was not built")

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
RESOURCE = Resource.create({"service.name": "svc", "n": 3})


def _failure() -> tuple[BaseException, Any]:
    try:
        raise ValueError("nope \u2603\n")
    except ValueError as exc:
        return exc, exc.__traceback__


def call(**change: Any) -> Flat:
    """A command that ran here, returned 42, with nothing unusual; ``change`` sets fields."""
    fields: dict[str, Any] = {
        "trace_id": TRACE, "parent_id": 0, "client_id": 0x1111, "server_id": 0x2222,
        "name": "pay", "caller": "shop", "service": "bank", "args": (1, "x"), "kwargs": None,
        "sent_ns": 1_700_000_000_000_000_000, "handled_ns": 1_700_000_000_000_123_456,
        "end_ns": 1_700_000_000_000_200_000, "thread": "bank", "result": 42, "error": None,
        "traceback": None, "status_message": None, "extras": None, "hop": None, "wire": None,
    }  # fmt: skip
    fields.update(change)
    return (CALL, *fields.values())


def fire(**change: Any) -> Flat:
    """An event fired with two arguments to one listener."""
    fields: dict[str, Any] = {
        "trace_id": TRACE, "parent_id": 0x3333, "span_id": 0x4444, "name": "tick",
        "caller": "clock", "args": (1, 2.5), "kwargs": None,
        "sent_ns": 1_700_000_000_000_000_000, "end_ns": 1_700_000_000_000_000_900,
        "listeners": 1, "extras": None, "wire": None,
    }  # fmt: skip
    fields.update(change)
    return (FIRE, *fields.values())


def delivery(**change: Any) -> Flat:
    """A delivery of an event to a listener that returned."""
    fields: dict[str, Any] = {
        "trace_id": TRACE, "fire_span_id": 0x4444, "span_id": 0x5555, "name": "tick",
        "pattern": "t*", "service": "watcher", "fire_sent_ns": 1_700_000_000_000_000_000,
        "start_ns": 1_700_000_000_000_003_333, "end_ns": 1_700_000_000_000_009_000,
        "thread": "watcher", "error": None, "traceback": None, "extras": None, "wire": None,
    }  # fmt: skip
    fields.update(change)
    return (DELIVERY, *fields.values())


ODD = 'naïve ☃ \x00\x01\x1f\x7f\b\f\n\r\t"\\ / 𝄞'
HUGE = 10**40

# Records C writes itself: their fields take every value it handles.
COMMON: dict[str, Flat] = {
    "call": call(),
    "call, nested": call(parent_id=0xFFFF_FFFF_FFFF_FFFF),
    "call, kwargs": call(kwargs={"a": 1, "password": "secret"}),  # a dict: Python's text
    "call, encoded args": call(args=Encoded('[{"a":1}]', False, False)),
    "call, encoded and cut": call(args=Encoded('[{"a":', True, True)),
    "call, odd text": call(name=ODD, caller=ODD, service=ODD, thread=ODD, args=(ODD,)),
    "call, atoms": call(args=(None, True, False, -0.0, 1e300, 5e-324, -(2**63), 2**63 - 1)),
    "call, atom result": call(result="done"),
    "call, float result": call(result=0.1),
    "call, None result": call(result=None),
    "call, tuple result": call(result=(1, ("nested",))),  # not atoms: Python's text
    "call, huge int args": call(args=(HUGE,), result=HUGE),
    "call, not finite": call(args=(float("nan"), float("inf")), result=float("-inf")),
    "call, long args": call(args=("y" * 600,)),  # past json_limit: cut, as Python cuts
    "call, long non-ascii": call(args=("é" * 300,), result="☃" * 400),
    "call, empty thread": call(thread=""),
    "call, zero ids": call(client_id=0),
    "call, negative times": call(sent_ns=-5, handled_ns=3, end_ns=4),
    "call, small trace id": call(trace_id=1),
    "fire": fire(),
    "fire, root": fire(parent_id=0),
    "fire, kwargs": fire(kwargs={"token": "t", "x": [1, 2]}),
    "fire, empty wire": fire(wire={}),
    "fire, no listeners": fire(listeners=0, args=()),
    "fire, odd name": fire(name=ODD, caller="c\x00"),
    "delivery": delivery(),
    "delivery, refused": delivery(thread=None),
    "delivery, no thread name": delivery(thread=""),
    "delivery, odd": delivery(name=ODD, pattern=ODD, service=ODD, thread=ODD),
    "delivery, queued long": delivery(fire_sent_ns=0, start_ns=2**62),
}


def _links() -> list[Link]:
    context = span_context(TRACE, 0x9999)
    return [Link(context, {"why": "cause"}), Link(context)]


_error, _tb = _failure()
_extras = ({"user.note": ODD, "user.n": 3, "rpc.method": "renamed"}, [("cp", {"s": 1}, 7)], None)
_links_extras = (None, None, _links())

# Records the Python code writes: C hands each back whole.
HANDED_BACK: dict[str, Flat] = {
    "call, failed": call(error=_error, traceback=_tb, result=None),
    "call, refused": call(status_message="BusClosedError: closed"),
    "call, client hop": call(hop="client"),
    "call, server hop": call(hop="server"),
    "call, server hop refused": call(hop="server", status_message="X: y"),
    "call, annotated": call(extras=_extras),
    "call, linked": call(extras=_links_extras),
    "call, wire": call(wire={"messaging.system": "nats", "bus.held_ms": 1.5}),
    "call, surrogate": call(name="a\ud800b", args=("\udfff",)),
    "call, big id": call(client_id=2**64 + 1, trace_id=2**130),
    "call, str subclass": call(service=type("S", (str,), {})("bank")),
    "call, bool id": call(server_id=True),
    "call, time past int64": call(end_ns=2**70),
    "fire, annotated": fire(extras=(_extras[0], None, _links())),
    "fire, wire": fire(wire={"bus.stubbed": True, "tags": ["a", "b"]}),
    "fire, bool listeners": fire(listeners=True),
    "delivery, failed": delivery(error=KeyError("k"), traceback=None),
    "delivery, failed with frames": delivery(error=_error, traceback=_tb),
    "delivery, annotated": delivery(extras=_extras),
    "delivery, wire": delivery(wire={"messaging.system": "nats", "x": float("nan")}),
    "delivery, queued past int64": delivery(fire_sent_ns=-(2**63), start_ns=2**63 - 1),
}


def dumped(otlp: OtlpSpans, records: list[Flat]) -> str:
    return json.dumps(otlp.traces_data(records), separators=(",", ":"), ensure_ascii=False)


def makers(limit: int = 512) -> tuple[OtlpLines, OtlpLines, OtlpSpans]:
    options: dict[str, Any] = {"json_limit": limit, "redact": redact_secrets}
    return (
        OtlpLines(RESOURCE, accelerated=True, **options),
        OtlpLines(RESOURCE, accelerated=False, **options),
        OtlpSpans(RESOURCE, **options),
    )


def line_of(lines: OtlpLines, records: list[Flat]) -> str:
    spans: list[str] = []
    made = lines.build_many(records, spans, _no_failure)
    assert made == records
    return lines.line(spans)


def _no_failure(record: Flat, exc: Exception) -> None:
    raise AssertionError(f"{record!r} failed: {exc!r}")


@needs_c
@pytest.mark.parametrize("name", list(COMMON))
def test_c_writes_the_common_records_as_python_does(name: str) -> None:
    record = COMMON[name]
    in_c, in_python, otlp = makers()
    assert in_c.accelerated
    assert not in_python.accelerated
    out: list[str] = []
    assert in_c._c.build(record, out), "C handed a common record back"
    assert in_c.line(out) == line_of(in_python, [record]) == dumped(otlp, [record])


def _queued_ns() -> list[int]:
    """Times queued (ns) at every digit count and decimal point position, and at random."""
    found = [0, 1, -1, 9, 10, 99, 100, 101, 999, 1000, 10**15 - 1, -(10**15) + 1]
    found += [d * 10**k for d in (1, 7, 12, 105, 123456789) for k in range(16)]
    draw = random.Random(12)
    found += [draw.randrange(-(10**15), 10**15) for _ in range(2000)]
    found += [draw.randrange(10 ** draw.randrange(1, 16)) for _ in range(3000)]
    return [queued for queued in found if abs(queued) < 10**15]


@needs_c
def test_c_writes_queued_times_as_float_repr_does() -> None:
    # C writes bus.queued_ms without float.__repr__'s digit search: its
    # digits must be repr's for every time below 10**15 ns.
    in_c, _, _ = makers()
    for queued in _queued_ns():
        out: list[str] = []
        assert in_c._c.build(delivery(fire_sent_ns=10**18, start_ns=10**18 + queued), out)
        value = json.loads(out[0])["attributes"][6]["value"]["doubleValue"]
        text = out[0].split('"doubleValue":', 1)[1].split("}", 1)[0]
        assert text == repr(queued / 1e6), queued
        assert value == queued / 1e6


@needs_c
@pytest.mark.parametrize("queued", [10**15, -(10**15), 10**15 + 1, 2**53 + 1, 2**62])
def test_c_writes_long_queued_times_as_float_repr_does(queued: int) -> None:
    in_c, _, otlp = makers()
    record = delivery(fire_sent_ns=0, start_ns=queued)
    out: list[str] = []
    assert in_c._c.build(record, out)
    assert in_c.line(out) == dumped(otlp, [record])


@needs_c
@pytest.mark.parametrize("name", list(HANDED_BACK))
def test_c_hands_other_records_to_python_and_the_text_is_the_same(name: str) -> None:
    record = HANDED_BACK[name]
    in_c, in_python, otlp = makers()
    out: list[str] = []
    assert not in_c._c.build(record, out)
    assert out == []
    assert line_of(in_c, [record]) == line_of(in_python, [record]) == dumped(otlp, [record])


@pytest.mark.parametrize("limit", [1, 3, 10, 4096])
def test_a_batch_of_every_kind_is_one_line_either_way(limit: int) -> None:
    records = [*COMMON.values(), *HANDED_BACK.values()] * 2
    random.Random(limit).shuffle(records)  # C's runs of spans and Python's, interleaved
    in_c, in_python, otlp = makers(limit)
    expected = dumped(otlp, records)
    assert line_of(in_python, records) == expected
    assert line_of(in_c, records) == expected
    for record in records:  # build(), one at a time, too
        spans: list[str] = []
        in_c.build(record, spans)
        assert in_c.line(spans) == dumped(otlp, [record])


def test_a_record_that_cannot_be_made_is_reported_and_the_rest_are_written() -> None:
    short_encoded = tuple.__new__(Encoded, ("[1]",))  # no markers: Python fails on it too
    broken: list[Any] = [
        (DELIVERY, TRACE, 1),
        (7, *delivery()[1:]),
        "not a record",
        call(args=short_encoded),
    ]
    odd = [  # not C's: the Python code writes what it makes of them
        call(args=Encoded(b"bytes", False, False)),  # type: ignore[arg-type]
        fire(caller=None),
    ]
    good = [call(), fire(), delivery()]
    records = [broken[0], good[0], *broken[1:], good[1], *odd, good[2]]
    results = []
    for lines in makers()[:2]:
        failures: list[Flat] = []
        spans: list[str] = []
        made = lines.build_many(
            records, spans, lambda record, exc, seen=failures: seen.append(record)
        )
        assert made == [good[0], good[1], *odd, good[2]]
        assert failures == broken
        results.append(lines.line(spans))
    assert results[0] == results[1] == dumped(makers()[2], [good[0], good[1], *odd, good[2]])


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_a_long_batch_is_written_as_lines_of_at_most_64_kb(accelerated: bool) -> None:
    lines = makers(100_000)[0 if accelerated else 1]
    if accelerated and not lines.accelerated:
        pytest.skip("the C encoder was not built")
    records = [delivery(span_id=n + 1) for n in range(600)]
    records[300:300] = [fire(args=("z" * 90_000,))]  # one span longer than a line
    spans: list[str] = []
    assert lines.build_many(records, spans, _no_failure) == records
    written = lines.lines(spans)
    assert len(written) > 3
    assert all(len(line) < 66_000 for line in written if "z" * 90_000 not in line)
    assert sum("z" * 90_000 in line for line in written) == 1
    whole = json.loads(lines.line(spans))
    parsed = [json.loads(line) for line in written]
    assert [s for p in parsed for s in p["resourceSpans"][0]["scopeSpans"][0]["spans"]] == (
        whole["resourceSpans"][0]["scopeSpans"][0]["spans"]
    )
    assert all(p["resourceSpans"][0]["resource"] == whole["resourceSpans"][0]["resource"]
               for p in parsed)  # fmt: skip
    assert lines.lines([]) == []


@needs_c
def test_a_failing_value_hook_hands_the_record_back_whole() -> None:
    in_c, _, otlp = makers()
    calls: list[Any] = []

    def hostile(value: Any) -> tuple[str, bool, bool]:
        calls.append(value)
        raise RuntimeError("hook broke")

    in_c._c = type(in_c._c)(512, 0x101, (3, 2, 4, 5), hostile, in_c._build_python, Encoded)
    record = call(kwargs={"a": 1})
    spans: list[str] = []
    assert in_c.build_many([record], spans, _no_failure) == [record]
    assert calls == [{"a": 1}]
    assert in_c.line(spans) == dumped(otlp, [record])


@needs_c
def test_an_interrupt_in_the_value_hook_is_not_swallowed() -> None:
    in_c, _, _ = makers()

    def interrupted(value: Any) -> tuple[str, bool, bool]:
        raise KeyboardInterrupt

    in_c._c = type(in_c._c)(512, 0x101, (3, 2, 4, 5), interrupted, in_c._build_python, Encoded)
    with pytest.raises(KeyboardInterrupt):
        in_c.build_many([call(result={"a": 1})], [], _no_failure)


@needs_c
def test_a_value_hook_that_encodes_again_gets_the_python_code() -> None:
    # The C encoder's buffers are in use while a value hook runs Python
    # code; a call into the same encoder from there is the Python code's.
    in_c, in_python, otlp = makers()
    inner: list[str] = []

    def reentering(value: Any) -> tuple[str, bool, bool]:
        assert in_c._c.build_many([fire(), delivery()], inner, _no_failure) == [fire(), delivery()]
        assert not in_c._c.build(call(), inner)
        return in_c._value_json(value)

    in_c._c = type(in_c._c)(512, 0x101, (3, 2, 4, 5), reentering, in_c._build_python, Encoded)
    record = call(kwargs={"a": 1})
    spans: list[str] = []
    assert in_c.build_many([delivery(), record], spans, _no_failure) == [delivery(), record]
    assert in_c.line(spans) == dumped(otlp, [delivery(), record])
    assert in_c.line(inner) == line_of(in_python, [fire(), delivery()])


@needs_c
def test_an_encoder_not_initialised_refuses_to_build() -> None:
    encoder = type(makers()[0]._c)
    bare = encoder.__new__(encoder)
    with pytest.raises(TypeError, match="__init__"):
        bare.build_many([call()], [], _no_failure)
    with pytest.raises(TypeError, match="__init__"):
        bare.build(call(), [])


@needs_c
def test_bad_settings_are_refused_clearly() -> None:
    encoder = type(makers()[0]._c)
    with pytest.raises(TypeError, match="callable"):
        encoder(512, 0x101, (3, 2, 4, 5), None, print, Encoded)
    with pytest.raises(TypeError, match="tuple type"):
        encoder(512, 0x101, (3, 2, 4, 5), print, print, dict)
    with pytest.raises(TypeError, match="kinds"):
        encoder(512, 0x101, (3, 2), print, print, Encoded)


@needs_c
@pytest.mark.timeout(120)
def test_encoding_leaks_nothing() -> None:
    in_c, _, _ = makers(16)
    records = [*COMMON.values(), *HANDED_BACK.values()]

    def round_() -> None:
        for _ in range(50):
            spans: list[str] = []
            in_c.build_many(records, spans, lambda record, exc: None)

    round_()
    before = sys.getallocatedblocks()
    for _ in range(20):
        round_()
    assert sys.getallocatedblocks() - before < 200


@needs_c
def test_an_encoder_and_its_lines_are_collected_together() -> None:
    # The encoder holds bound methods of its OtlpLines: a cycle the
    # collector must be able to see through (Py_TPFLAGS_HAVE_GC).
    lines = makers()[0]
    gone = weakref.ref(lines)
    del lines
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("pure", ["1", "0", ""])
def test_bus_pure_python_chooses_the_python_encoder(pure: str) -> None:
    code = (
        "from opentelemetry.sdk.resources import Resource\n"
        "from bus._observe._otlp_lines import OtlpLines, c_available\n"
        "lines = OtlpLines(Resource.get_empty(), json_limit=9, redact=None)\n"
        "print(lines.accelerated, c_available())\n"
    )
    env = {**os.environ, "BUS_PURE_PYTHON": pure}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    accelerated, available = out.stdout.split()
    assert accelerated == ("False" if pure == "1" else available)


class Chatty(Service):
    name = "chatty"

    @command("greet")
    def greet(self, who: str, *, loud: bool = False) -> str:
        return f"hello {who}" + "!" * loud

    @listener("tick")
    def on_tick(self, n: int) -> None:
        if n == 3:
            raise ValueError("three")


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_a_traced_bus_writes_its_trace_file_either_way(
    make_bus: Callable[..., Bus],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    accelerated: bool,
) -> None:
    if accelerated and not c_available():
        pytest.skip("the C encoder was not built")
    path = tmp_path / "trace.jsonl"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "bus_otlp_json_file")
    monkeypatch.setenv("BUS_TRACE_FILE", str(path))
    monkeypatch.setenv("BUS_PURE_PYTHON", "" if accelerated else "1")
    bus = make_bus(trace_overflow="wait")
    assert bus._sink is not None
    assert bus._sink._lines.accelerated == accelerated
    bus.add_service(Chatty())
    for n in range(5):
        bus.fire_event("tick", n)
    assert bus.execute_command("greet", "ünï", loud=True).result(timeout=5) == "hello ünï!"
    wait_idle(bus)
    assert bus.flush_traces(timeout=10)
    written = [
        span
        for line in path.read_text(encoding="utf-8").splitlines()
        for span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    ]
    assert written == bus.spans.otlp()["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(written) == 5 + 5 + 2
    assert bus.inspect()["tracing"]["exported"] == len(written)
    assert sum(s["status"].get("code") == 2 for s in written) == 1
