"""The firing side of a traced event in C (``_speedups_fired.c``) and its Python reference.

With the accelerator, ``fire_event``'s C fan-out writes down a traced event
that no watcher or tap sees itself: what ``Hub.event_fired``,
``delivery_queued`` and ``event_posted`` do in Python (the ids, the frozen
arguments, the packed head, the FIRE record), and ``TraceSink.submit`` is C.
Every span must be the same on both paths, ids included (both draw from
``random`` in the same order), and anything unusual must reach the Python
methods.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from bus import Bus, Service, listener
from bus._core import _accel
from bus._observe import _ctx, _heads
from bus._observe._hub import Hub
from bus._observe._replay import replaying
from bus._observe._ring import SpanRing
from bus._observe._sink import TraceSink
from bus.testing import capture_events, wait_idle
from tests.bus.core.test_accel_hooks import _span_rows

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(_ctx.VAR is None, reason="the C hooks need the direct context route"),
    pytest.mark.usefixtures("ring_only"),
]


class Ears(Service):
    """Two listeners of ``tick``; ``nest`` fires ``tock`` from inside its delivery."""

    name = "ears"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @listener("tick")
    def tick(self, *args: Any, **kwargs: Any) -> None:
        self.heard.append((args, kwargs))
        if args[:1] == ("nest",):
            self.bus.fire_event("tock", "inner")

    @listener("tick")
    def tick_again(self, *args: Any, **kwargs: Any) -> None:
        if args[:1] == ("mutate",):
            args[1].append(-1)  # the span shows what was fired, not this

    @listener("tock")
    def tock(self, x: Any) -> None:
        self.heard.append(((x,), {}))


def _fired_scenario() -> dict[str, Any]:
    """Traced, unwatched events through every branch of the firing side; spans, ids and all."""
    with Bus(name="fired", trace_overflow="wait", redact=_redact) as b:
        ears = Ears()
        b.add_service(ears)
        steps: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((1,), {}),
            (("text", 2.5, None, True), {}),
            ((), {}),
            ((1,), {"key": "atom", "n": 3}),
            (("mutate", [1, 2]), {}),
            (((1, (2, 3)),), {"nested": {"a": [1]}}),
            ((), {"password": "hunter2", "hide": [1]}),
            (("nest",), {}),
            ((1 << 70, -5), {}),
        ]
        for seed, (args, kwargs) in enumerate(steps):
            random.seed(seed)  # one at a time: the draws are made in the same order
            b.fire_event("tick", *args, **kwargs)
            wait_idle(b)
        # Names the table takes on their first fire (or not, when it is full).
        for seed, name in enumerate(("tick", "tock", "tick"), start=50):
            random.seed(seed)
            b.fire_event(name, seed)
            wait_idle(b)
        # A parent span that is not the bus's, and a replay mark: Python's turn.
        random.seed(101)
        parent = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
        with trace.use_span(NonRecordingSpan(parent)):
            b.fire_event("tick", 2)
        wait_idle(b)
        random.seed(102)
        with replaying("0" * 31 + "9", "0" * 15 + "8"):
            b.fire_event("tick", 3)
        wait_idle(b)
        assert b.flush_traces(10)
        return {"heard": ears.heard, "spans": _span_rows(b.spans.spans())}


def _redact(key: str, value: Any) -> Any:
    return "<hidden>" if key == "hide" else value


@pytest.mark.parametrize("names_max", [None, 1], ids=["packed", "table-full"])
def test_unwatched_traced_events_make_the_same_spans_and_ids_on_both_paths(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
    names_max: int | None,
) -> None:
    if names_max is not None:  # a table of one name: "tock" gets tuple heads
        monkeypatch.setattr(_heads, "NAMES_MAX", names_max)
    accelerated, reference = on_both_paths(_fired_scenario)
    assert accelerated == reference
    spans = reference["spans"]
    producers = {r[6]: r for r in spans if r[1] == "SpanKind.PRODUCER"}
    consumers = [r for r in spans if r[1] == "SpanKind.CONSUMER"]
    assert len(producers) == 15  # 9 + 2 + 2 ticks, a tock and the nested one
    assert len(consumers) == 2 * 13 + 2  # two listeners of each tick, one of each tock
    for row in consumers:  # each under its event's span, in its trace
        assert producers[row[7]][5] == row[5]
    by_args = {r[4].get("bus.args"): r for r in producers.values()}
    assert by_args['["mutate",[1,2]]'][4]["bus.listeners"] == 2
    # the redaction hook ran on the keyword arguments that were not atoms (it
    # replaces the default one, which would have masked the password)
    assert '{"password":"hunter2","hide":"<hidden>"}' in {r[4].get("bus.kwargs") for r in spans}
    assert by_args[f"[{1 << 70},-5]"][4]["bus.listeners"] == 2
    # tock, fired inside tick's delivery: its event span under that CONSUMER span
    (inner,) = [r for r in producers.values() if r[4].get("bus.args") == '["inner"]']
    assert any(c[6] == inner[7] and c[0] == "process tick" for c in consumers)
    # the foreign parent and the replay mark were kept
    assert any(r[5] == 0xABC and r[7] == 0xDEF for r in producers.values())
    assert any(r[9] == [(9, 8, {"bus.replay": True})] for r in producers.values())
    # every id is a real one: 128 and 64 bits, never 0
    assert all(0 < r[5] < 1 << 128 and 0 < r[6] < 1 << 64 for r in spans)


def test_a_new_trace_is_one_draw_of_192_bits_and_the_same_draw_on_both_paths(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    def scenario() -> Any:
        with Bus(name="draw", trace_overflow="wait") as b:
            b.add_service(Ears())
            b.fire_event("tick", 0)  # routed: the next one may take the C path
            wait_idle(b)
            random.seed(7)
            b.fire_event("tick", 1)
            wait_idle(b)
            assert b.flush_traces(10)
            (producer,) = [
                s
                for s in b.spans.spans()
                if s.kind == trace.SpanKind.PRODUCER and s.attributes["bus.args"] == "[1]"
            ]
            assert producer.context is not None
            return producer.context.trace_id, producer.context.span_id

    accelerated, reference = on_both_paths(scenario)
    random.seed(7)
    drawn = random.getrandbits(192)
    assert accelerated == reference == (drawn >> 64, drawn & ((1 << 64) - 1))


def test_an_id_drawn_as_0_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python reference (the C code follows it: its draws cannot be replaced)."""
    draws = iter([5 << 64, 7, 0, 9, 1 << 64 | 3])
    monkeypatch.setattr(_heads, "_bits", lambda bits: next(draws))
    assert _heads.event_ids(None) == (1, 0, 3)  # a span id of 0, then a trace id of 0
    draws = iter([0, 0, 4])
    assert _heads.event_ids((11, 12)) == (11, 12, 4)


class _Spy:
    """Counts the calls of one of the hub's event hooks, and calls it."""

    def __init__(self, hook: Callable[..., Any]) -> None:
        self.hook = hook
        self.calls = 0

    def __call__(self, hub: Hub, *args: Any) -> Any:
        self.calls += 1
        return self.hook(hub, *args)


@pytest.mark.parametrize("name", ["event_fired", "delivery_queued", "event_posted"])
def test_a_replaced_event_hook_is_called_on_both_paths(
    mode: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    spy = _Spy(getattr(Hub, name))
    monkeypatch.setattr(Hub, name, lambda hub, *args: spy(hub, *args))
    with Bus(name="spied", trace_overflow="wait") as b:
        b.add_service(Ears())
        for n in range(3):
            b.fire_event("tick", n)
        wait_idle(b)
        assert b.flush_traces(10)
        assert spy.calls == (6 if name == "delivery_queued" else 3)
        assert len(b.spans.spans()) == 9


def test_a_tap_hears_traced_events_on_both_paths(mode: str) -> None:
    with Bus(name="tapped", trace_overflow="wait") as b:
        b.add_service(Ears())
        b.fire_event("tick", 0)  # routed (and cached) before the tap comes
        with capture_events(b, "tick") as captured:
            b.fire_event("tick", 1, key=[2])
        b.fire_event("tick", 3)
        wait_idle(b)
        assert [(e.args, e.kwargs) for e in captured.events] == [((1,), {"key": [2]})]
        assert b.flush_traces(10)
        assert len(b.spans.spans()) == 9


def test_the_event_hooks_stay_python_and_submit_is_c_with_the_accelerator(mode: str) -> None:
    for name in ("event_fired", "delivery_queued", "event_posted"):
        assert type(Hub.__dict__[name]).__name__ == "function"
    submit = TraceSink.__dict__["submit"]
    if mode == "c":
        assert type(submit).__name__ == "SinkSubmit"
        assert submit.__wrapped__.__qualname__ == "TraceSink.submit"
    else:
        assert type(submit).__name__ == "function"


# -- TraceSink.submit: the same room check, drops and wake on both paths ---------------------


@pytest.fixture
def held_sink(mode: str) -> Iterator[Callable[..., tuple[TraceSink, threading.Event]]]:
    """``held_sink(**options)``: a sink whose trace thread waits for its gate to start."""
    made: list[tuple[TraceSink, threading.Event]] = []

    def start(name: str, run: Callable[[], None]) -> threading.Thread:
        gate = made[-1][1] if made else threading.Event()
        thread = threading.Thread(target=lambda: (gate.wait(20), run()), name=name, daemon=True)
        thread.start()
        return thread

    def make(**options: Any) -> tuple[TraceSink, threading.Event]:
        gate = threading.Event()
        made.append((None, gate))  # type: ignore[arg-type]  # start() reads the gate
        sink = TraceSink(
            trace.NoOpTracerProvider(),
            SpanRing(100),
            json_limit=1000,
            redact=None,
            start_thread=start,
            thread_name="held",
            **options,
        )
        made[-1] = (sink, gate)
        return sink, gate

    yield make
    for sink, gate in made:
        gate.set()
        sink.stop(10)


def _record(n: int) -> tuple[Any, ...]:
    # (FIRE, trace_id, parent_id, span_id, name, caller, args, kwargs, sent_ns, end_ns,
    #  listeners, extras, wire)
    return (1, n + 1, 0, n + 1, "tick", "test", (n,), None, 1, 2, 0, None, None)


def test_a_full_buffer_drops_and_counts_each_record_it_refuses(
    held_sink: Callable[..., tuple[TraceSink, threading.Event]],
) -> None:
    sink, gate = held_sink(capacity=5, overflow="drop")
    for n in range(8):
        sink.submit(_record(n))
    assert list(sink._buffer) == [_record(n) for n in range(5)]
    assert sink.dropped == 3
    gate.set()
    assert sink.flush(10)
    assert sink.statistics()["dropped"] == 3
    assert sink.exported == 5


def test_the_trace_thread_is_woken_when_a_batch_waits(
    held_sink: Callable[..., tuple[TraceSink, threading.Event]],
) -> None:
    sink, _gate = held_sink(capacity=100)
    sink.BATCH_WAKE = 3  # on the instance: read as Python reads it
    for n in range(3):
        sink.submit(_record(n))
    assert not sink._wake.is_set()
    sink.submit(_record(3))  # the one that finds 3 held
    assert sink._wake.is_set()
    sink._wake.clear()
    sink.submit(_record(4))
    assert not sink._wake.is_set()
    assert len(sink._buffer) == 5


def test_a_full_buffer_makes_the_recording_thread_wait_when_lossless(
    held_sink: Callable[..., tuple[TraceSink, threading.Event]],
) -> None:
    sink, gate = held_sink(capacity=2, overflow="wait")
    sink.submit(_record(0))
    sink.submit(_record(1))
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (sink.submit(_record(2)), done.set()))
    waiter.start()
    assert not done.wait(0.2)  # no room: it waits for the trace thread
    gate.set()
    assert done.wait(10)
    waiter.join(10)
    assert sink.flush(10)
    assert (sink.dropped, sink.exported, sink.waited) == (0, 3, 1)


def test_a_hub_made_with_the_accelerator_submits_through_c(mode: str) -> None:
    with Bus(name="submits", trace_overflow="wait") as b:
        hub = b.observer
        assert isinstance(hub, Hub)
        kind = type(hub._submit.__func__).__name__  # type: ignore[attr-defined]
        assert kind == ("SinkSubmit" if mode == "c" else "function")
    assert _accel.mode() == mode


def test_a_delivery_is_queued_from_the_time_its_event_span_started(mode: str) -> None:
    """The head's send time is the event span's start: what ``bus.queued_ms`` counts from."""
    with Bus(name="queued", trace_overflow="wait") as b:
        b.add_service(Ears())
        for n in range(3):
            b.fire_event("tick", n)
        wait_idle(b)
        assert b.flush_traces(10)
        spans = b.spans.spans()
    producers = {s.context.span_id: s for s in spans if s.kind == trace.SpanKind.PRODUCER}
    consumers = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
    assert len(producers) == 3
    assert len(consumers) == 6
    for consumer in consumers:
        assert consumer.parent is not None
        assert consumer.attributes is not None
        producer = producers[consumer.parent.span_id]
        assert producer.start_time is not None
        assert consumer.start_time is not None
        waited = (consumer.start_time - producer.start_time) / 1e6
        assert consumer.attributes["bus.queued_ms"] == pytest.approx(waited, abs=1e-6)


def test_a_parent_trace_id_wider_than_a_head_goes_to_python_whole(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    """A head holds 128 bits of trace id: a parent with more is the Python code's."""
    from bus._observe._records import BusSpan

    def scenario() -> Any:
        with Bus(name="wide", trace_overflow="wait") as b:
            b.add_service(Ears())
            b.fire_event("tick", 0)  # routed: the next one may take the C path
            wait_idle(b)
            random.seed(3)
            token = _ctx.enter(BusSpan(1 << 130 | 5, 77))
            try:
                b.fire_event("tick", 1)
            finally:
                _ctx.leave(token)
            wait_idle(b)
            assert b.flush_traces(10)
            return sorted(
                (s.kind.name, s.context.trace_id, s.parent.span_id if s.parent else None)
                for s in b.spans.spans()
                if s.context is not None and s.context.trace_id >> 128
            )

    accelerated, reference = on_both_paths(scenario)
    assert accelerated == reference
    assert [row[0] for row in reference] == ["CONSUMER", "CONSUMER", "PRODUCER"]
    assert {row[1] for row in reference} == {1 << 130 | 5}
    assert reference[2][2] == 77
