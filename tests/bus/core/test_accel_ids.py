"""Ids drawn as words, heads made of words, the caller's name and the sink's state in C.

The C hooks draw trace and span ids from ``random``'s own generator without
``random.getrandbits`` (``_speedups_ids.c``), make an event's packed head
from 64-bit words, read the caller's name from this thread's local dict and
keep what ``SinkSubmit`` read of a sink until its ``__dict__`` changes. Each
must give what the Python code gives: the same ids in the same order (across
the generator's refills of its state, and after it is reseeded or restored),
the same head for every trace id a parent can have, the name the thread has
now, and a sink's room and wake as they are when the record comes.
"""

from __future__ import annotations

import random
import sys
import sysconfig
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace

from bus import Bus, Service, command, listener
from bus._core import _accel
from bus._observe import _ctx
from bus._observe._hub import swap_caller
from bus._observe._records import BusSpan
from bus._observe._sink import TraceSink
from bus.testing import wait_idle
from tests.bus.core.test_accel_fired import _record, held_sink  # noqa: F401  (a fixture)
from tests.bus.core.test_accel_hooks import _span_rows

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(_ctx.VAR is None, reason="the C hooks need the direct context route"),
    pytest.mark.usefixtures("ring_only"),
]


class Ticks(Service):
    """A listener of ``tick`` and a command ``echo``, which fires ``tock`` under its span."""

    name = "ticks"

    @listener("tick")
    def tick(self, x: Any) -> None:
        pass

    @listener("tock")
    def tock(self, x: Any) -> None:
        pass

    @command("echo")
    def echo(self, x: Any) -> Any:
        self.bus.fire_event("tock", x)
        return x


def test_the_ids_are_drawn_from_randoms_own_generator_in_c() -> None:
    if not _accel.available():
        pytest.skip("the C accelerator was not built here")
    if sys.byteorder != "little" or sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("draws go through getrandbits on big-endian and free-threaded builds")
    from bus._core import _speedups

    # On the CPython this suite runs on, the layout probe must pass: a
    # regression to getrandbits would be slower, not wrong, and only this sees it.
    assert _speedups.ids_in_c() is True


def _many_ids() -> dict[str, Any]:
    """Enough traced events and calls to refill the generator's state several times."""
    with Bus(name="ids", trace_overflow="wait", ring_size=5000) as b:
        b.add_service(Ticks())
        random.seed(10)
        b.fire_event("tick", -1)  # routed: the next ones may take the C path
        wait_idle(b)
        random.seed(11)
        # One at a time: the deliveries draw their span ids on the service's thread.
        for n in range(300):  # 6 words a new trace, 2 its delivery: about 4 refills of 624
            b.fire_event("tick", n)
            wait_idle(b)
        for n in range(60):  # calls: 4 + 2 + 2 words, and an event under a parent (2 + 2)
            assert b.execute_command("echo", n).result(10) == n
            wait_idle(b)
        state = random.getstate()
        random.seed(12)  # reseeded, then restored: both read where they are now
        b.fire_event("tick", "seeded")
        wait_idle(b)
        random.setstate(state)
        b.fire_event("tick", "restored")
        wait_idle(b)
        after = random.getrandbits(64)  # both paths left the generator where Python does
        assert b.flush_traces(10)
        return {"spans": _span_rows(b.spans.spans()), "after": after}


def test_ids_drawn_in_c_are_the_ones_getrandbits_draws_across_refills(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_many_ids)
    assert accelerated == reference
    spans = reference["spans"]
    assert len(spans) == 2 * (1 + 300 + 2) + 4 * 60  # and the first, the seeded, the restored
    # every id is a real one: 128 and 64 bits, never 0, and none drawn twice
    assert all(0 < r[5] < 1 << 128 and 0 < r[6] < 1 << 64 for r in spans)
    assert len({r[6] for r in spans}) == len(spans)
    random.seed(11)  # the first event's ids: the first 192 bits drawn after the seed
    drawn = random.getrandbits(192)
    first = [r for r in spans if r[0] == "send tick" and r[4].get("bus.args") == "[0]"]
    assert [(r[5], r[6]) for r in first] == [(drawn >> 64, drawn & ((1 << 64) - 1))]


TRACE_IDS = [1, (1 << 32) - 1, 1 << 32, (1 << 64) - 1, 1 << 64, 1 << 96 | 1, (1 << 128) - 1]


def _under_parents() -> list[tuple[Any, ...]]:
    """Events under parents whose trace ids fill each word of a head, or only a bit of it."""
    with Bus(name="heads", trace_overflow="wait") as b:
        b.add_service(Ticks())
        random.seed(4)
        b.fire_event("tick", -1)
        wait_idle(b)
        random.seed(5)
        for n, trace_id in enumerate(TRACE_IDS):
            token = _ctx.enter(BusSpan(trace_id, 1 << 63 | n))
            try:
                b.fire_event("tick", n)
            finally:
                _ctx.leave(token)
            wait_idle(b)  # its delivery draws its span id on the service's thread
        assert b.flush_traces(10)
        return _span_rows(b.spans.spans())


def test_a_head_made_of_words_carries_every_trace_id_a_parent_can_have(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_under_parents)
    assert accelerated == reference
    # the delivery reads its trace id and its parent (the event) back from the head
    producers = {r[6]: r for r in reference if r[1] == "SpanKind.PRODUCER"}
    consumers = [r for r in reference if r[1] == "SpanKind.CONSUMER"]
    assert sorted(r[5] for r in consumers if r[5] in TRACE_IDS) == sorted(TRACE_IDS)
    for row in (r for r in consumers if r[5] in TRACE_IDS):
        assert producers[row[7]][5] == row[5]
        assert producers[row[7]][7] == 1 << 63 | TRACE_IDS.index(row[5])


def _callers() -> list[Any]:
    """What a thread records as its name as it changes: set, swapped, swapped back, deleted."""
    with Bus(name="callers", trace_overflow="wait") as b:
        b.add_service(Ticks())
        b.fire_event("tick", -1)
        wait_idle(b)

        def fire() -> None:
            b.fire_event("tick", "own")
            previous = swap_caller("remote-a")
            b.fire_event("tick", "a")
            swap_caller("remote-b")
            b.fire_event("tick", "b")
            swap_caller(previous)
            b.fire_event("tick", "back")
            swap_caller(None)  # forgotten: worked out again on the next fire
            b.fire_event("tick", "again")

        for name in ("first", "second"):  # a new thread each: its own local dict
            thread = threading.Thread(target=fire, name=name)
            thread.start()
            thread.join(10)
        wait_idle(b)
        assert b.flush_traces(10)
        spans = b.spans.spans()
    return sorted(
        (s.attributes["bus.args"], s.attributes["bus.caller"])  # type: ignore[index]
        for s in spans
        if s.kind == trace.SpanKind.PRODUCER and s.attributes
    )


def test_the_caller_is_the_name_the_thread_has_now_on_both_paths(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_callers)
    assert accelerated == reference
    assert reference == sorted(
        [('["own"]', t) for t in ("first", "second")]
        + [('["a"]', "remote-a")] * 2
        + [('["b"]', "remote-b")] * 2
        + [('["back"]', t) for t in ("first", "second")]
        + [('["again"]', t) for t in ("first", "second")]
        + [("[-1]", "MainThread")]
    )


def test_the_sink_is_read_again_when_its_dict_or_class_changes(
    held_sink: Callable[..., tuple[TraceSink, threading.Event]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, gate = held_sink(capacity=100, overflow="drop")
    sink.submit(_record(0))
    sink.submit(_record(1))
    monkeypatch.setattr(TraceSink, "BATCH_WAKE", 2)  # on the class, after a read
    assert not sink._wake.is_set()
    sink.submit(_record(2))  # the one that finds 2 held
    assert sink._wake.is_set()
    sink._room = 3  # as the trace thread sets it: read on the next record
    sink.submit(_record(3))
    assert (sink.dropped, len(sink._buffer)) == (1, 3)
    sink._room = 100
    sink.submit(_record(4))
    assert (sink.dropped, len(sink._buffer)) == (1, 4)
    gate.set()
    assert sink.flush(10)
    assert sink.exported == 4


def test_a_queued_traced_delivery_is_left_out_of_the_collector(mode: str) -> None:
    """Its ticket is the packed head, an int: the queued item is in no cycle of its own."""
    import gc

    release = threading.Event()
    started = threading.Event()

    class Held(Service):
        name = "held"

        @listener("hold")
        def hold(self) -> None:
            started.set()
            release.wait(20)

        @listener("tick")
        def tick(self, x: Any) -> None:
            pass

    with Bus(name="untracked", trace_overflow="wait") as b:
        b.add_service(Held())
        b.fire_event("tick", -1)  # routed: the next ones may take the C path
        wait_idle(b)
        b.fire_event("hold")
        assert started.wait(10)
        try:
            for n in range(50):
                b.fire_event("tick", n)
            queued = [
                o
                for o in gc.get_objects()
                if type(o) is tuple and len(o) == 5 and o[3] == "tick" and type(o[4]) is int
            ]
        finally:
            release.set()
        wait_idle(b)
    # the Python path's items are the collector's, as any tuple of objects
    assert len(queued) == (0 if mode == "c" else 50)
