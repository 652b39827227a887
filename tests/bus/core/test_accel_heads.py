"""A delivery's hooks in C read an event's packed head as the Python code does.

``Hub.delivery_started`` and ``delivery_ended`` in C (``_speedups_deliver.c``)
read the trace id, the event's span id, its send time and its name's index
from the digits of the packed int (``_speedups_long.h``), where the Python
methods shift and mask. Each head here goes through the C hooks and through
their Python reference, on a real traced bus, and the span and the flat
DELIVERY record must be the same: at the edges of each field, and for ints
that are not of the packed layout (which C hands to the Python methods).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bus import Bus, Service, listener
from bus._observe._heads import pack_head
from bus._observe._hub import Hub
from bus.testing import wait_idle

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(
        type(Hub.__dict__["delivery_started"]).__module__ != "bus._core._speedups",
        reason="the C hooks are not installed (not built, or BUS_PURE_PYTHON)",
    ),
]

M64 = (1 << 64) - 1


class Ear(Service):
    name = "ear"

    @listener("tick")
    def on_tick(self, n: int) -> None:
        pass


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Any, list[Any]]]:
    """A traced bus's hub, its listener's handler and worker, and what the hub submits."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with Bus(name="heads", trace_overflow="wait") as b:
        b.add_service(Ear())
        b.fire_event("tick", 1)  # the name "tick" gets index 0
        wait_idle(b)
        hub = b.observer
        assert type(hub) is Hub
        for extra in ("b", "c", "d"):
            hub.add_name(extra)
        records: list[Any] = []
        original = hub._submit
        hub._submit = records.append
        try:
            yield hub, b.router._routes["tick"][0], b._runtimes["ear"].workers[0], records
        finally:
            hub._submit = original


def _through(
    hooks: dict[str, Callable[..., Any]], parts: tuple[Any, Any, Any, list[Any]], ticket: Any
) -> tuple[Any, ...]:
    """A delivery of ``ticket`` through ``hooks``: the span's ids and the record, times left out."""
    hub, handler, worker, records = parts
    del records[:]
    random.seed(5)  # the span id is drawn: the same draw on both paths
    scope = hooks["delivery_started"](hub, ticket, worker)
    span = scope[0]
    hooks["handler_returned"](hub, scope)
    hooks["delivery_ended"](hub, ticket, scope, handler, worker, "tick", None, 0.001)
    (record,) = records
    assert record[8] == scope[2]  # start_ns: the scope's clock read
    return (span.trace_id, span.span_id, record[:8] + record[10:], gc.is_tracked(record))


def _hooks(accelerated: bool) -> dict[str, Callable[..., Any]]:
    names = ("delivery_started", "handler_returned", "delivery_ended")
    found = {name: Hub.__dict__[name] for name in names}
    if not accelerated:
        found = {name: hook.__wrapped__ for name, hook in found.items()}
    return found


TRACES = [1, 2**63, M64, 2**64, 2**64 + 1, 2**127 + 5, 2**128 - 1]
TRACES.append(0x0AF7651916CD43DD8448EB211C80319C)
SPANS = [0, 1, 2**63, M64]
SENT = [0, 1, 1_700_000_000_123_456_789, M64]


def _heads() -> list[int]:
    draw = random.Random(3)
    found = [pack_head(t, s, n, i) for t in TRACES for s in SPANS for n in SENT for i in (0, 3)]
    found += [
        pack_head(draw.getrandbits(128), draw.getrandbits(64), draw.getrandbits(64), 1)
        for _ in range(200)
    ]
    return found


def test_packed_heads_make_the_same_span_and_record_in_c_as_in_python(parts: Any) -> None:
    in_c, in_python = _hooks(True), _hooks(False)
    assert type(in_c["delivery_started"]).__module__ == "bus._core._speedups"
    names = parts[0]._names
    for ticket in _heads():
        made = _through(in_c, parts, ticket)
        assert made[:3] == _through(in_python, parts, ticket)[:3], hex(ticket)
        trace_id, _, record, tracked = made
        assert trace_id == ticket >> 160
        assert record[2] == (ticket >> 96) & M64  # the event's span id: the parent
        assert record[4] == names[ticket & 0xFFFFFFFF]
        assert record[7] == (ticket >> 32) & M64
        assert not tracked, "the Python method made the record: C was not tested"


@pytest.mark.parametrize(
    "ticket",
    [-pack_head(5, 6, 7, 0), pack_head(2**128, 6, 7, 0), pack_head(2**200 + 9, 1, 2, 1)],
    ids=["negative", "trace id of 129 bits", "trace id of 201 bits"],
)
def test_ints_not_of_the_packed_layout_are_the_python_methods(parts: Any, ticket: int) -> None:
    made = _through(_hooks(True), parts, ticket)
    assert made == _through(_hooks(False), parts, ticket)
    assert made[0] == ticket >> 160
    assert made[3], "C wrote a record it should have handed to Python"


def test_an_index_past_the_names_raises_as_python_does(parts: Any) -> None:
    ticket = pack_head(9, 8, 7, 1000)
    hub, handler, worker, _ = parts
    for hooks in (_hooks(True), _hooks(False)):
        scope = hooks["delivery_started"](hub, ticket, worker)
        hooks["handler_returned"](hub, scope)
        with pytest.raises(IndexError):
            hooks["delivery_ended"](hub, ticket, scope, handler, worker, "tick", None, 0.001)
