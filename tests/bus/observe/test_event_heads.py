"""What a traced event carries while it waits in a mailbox: its packed head.

An event's deliveries share one *head*: the trace id, the event's span id,
when it was sent, and its name. It is packed into one int (the name as an
index into the hub's table of names) so that a queued traced event costs at
most 300 bytes; the spans made from it must say exactly what they said when
the head was a tuple, for every path a delivery can take: run, refused by a
full mailbox, held by a console, or of a name past the table's end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks._memory import queued_event_bytes
from bus import Bus, Service, listener
from bus._observe import _heads
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)


class Gate(Service):
    """A listener that blocks on its first event until released."""

    name = "gate"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    @listener("tick.*")
    def on_tick(self, n: int) -> None:
        if n == 0:
            self.entered.set()
            self.release.wait(10)


def _spans(bus: Bus) -> list[dict[str, Any]]:
    assert bus.flush_traces(timeout=10)
    data = bus.spans.otlp()
    return [s for r in data["resourceSpans"] for ss in r["scopeSpans"] for s in ss["spans"]]


def _attrs(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", ())}


def _check_pairs(spans: list[dict[str, Any]], names: set[str]) -> None:
    """Each event's CONSUMER spans hang under its PRODUCER span, in its trace, named after it."""
    producers = {s["spanId"]: s for s in spans if s["kind"] == 4}
    consumers = [s for s in spans if s["kind"] == 5]
    assert {s["name"] for s in consumers} == {f"process {n}" for n in names}
    for consumer in consumers:
        producer = producers[consumer["parentSpanId"]]
        assert consumer["traceId"] == producer["traceId"]
        assert consumer["name"] == "process " + producer["name"].removeprefix("send ")
        attrs = _attrs(consumer)
        assert attrs["messaging.destination.name"] == consumer["name"].removeprefix("process ")
        queued = attrs["bus.queued_ms"]
        sent, started = int(producer["startTimeUnixNano"]), int(consumer["startTimeUnixNano"])
        assert queued == pytest.approx((started - sent) / 1e6)
        assert queued >= 0


def test_a_queued_traced_event_costs_at_most_300_bytes() -> None:
    # Python's allocations per event waiting in a blocked service's mailbox
    # (the benchmark's own measure, on a real lossless bus): 425 bytes when
    # the head was a tuple of three ints, a name and the transport's wire.
    footprint = queued_event_bytes(50_000, traced=True)
    assert footprint.error is None
    assert footprint.per_item is not None
    assert footprint.per_item <= 300


@pytest.mark.parametrize("names_max", [_heads.NAMES_MAX, 1], ids=["packed", "table-full"])
def test_deliveries_are_traced_alike_packed_or_not(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch, names_max: int
) -> None:
    # With a table of one name, the second name's events carry tuple heads.
    monkeypatch.setattr(_heads, "NAMES_MAX", names_max)
    bus = make_bus()
    gate = Gate()
    bus.add_service(gate)
    for n in range(1, 4):
        bus.fire_event("tick.a", n)
        bus.fire_event("tick.b", n)
    wait_idle(bus)
    spans = _spans(bus)
    assert len(spans) == 12
    _check_pairs(spans, {"tick.a", "tick.b"})


def test_a_refused_delivery_says_which_event_it_was(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus(mailbox_size=1)
    gate = Gate()
    bus.add_service(gate)
    bus.fire_event("tick.first", 0)
    assert gate.entered.wait(10)
    bus.fire_event("tick.queued", 1)  # fills the mailbox
    bus.fire_event("tick.refused", 2)  # finds it full
    gate.release.set()
    wait_idle(bus)
    spans = _spans(bus)
    _check_pairs(spans, {"tick.first", "tick.queued", "tick.refused"})
    [refused] = [s for s in spans if s["name"] == "process tick.refused"]
    assert refused["status"]["code"] == 2
    assert _attrs(refused)["error.type"] == "MailboxFullError"
