"""``Bus(trace_overflow="wait")``: every span reaches the exporter, however fast the work.

With ``"drop"`` (the default, the OpenTelemetry convention) a span that finds
the buffer full is dropped and counted. With ``"wait"`` the thread recording
it waits for room, and the trace thread waits for room in a
``BatchSpanProcessor``'s queue, which would otherwise drop its oldest span.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bus import Bus
from tests.bursts import Quiet

pytestmark = pytest.mark.timeout(120)

EVENTS = 3000


class SlowExporter(SpanExporter):
    """Counts what it exports, and takes its time over each batch."""

    def __init__(self, pause: float = 0.002) -> None:
        self.count = 0
        self.gate = threading.Event()
        self.pause = pause

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(self.pause)  # a slow collector
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


# (queue size, export batch, seconds per export). A queue far smaller than
# the burst, exported slowly in small batches: the trace thread's batches are
# larger than the room the queue keeps. The SDK's default queue, exported
# very slowly: each batch the trace thread hands over fits that room, and
# must still wait for it while the queue is full.
SMALL_QUEUE = (64, 32, 0.002)
DEFAULT_QUEUE = (2048, 512, 0.05)


def _burst(
    make_bus: Callable[..., Bus], overflow: str, queue: tuple[int, int, float] = SMALL_QUEUE
) -> tuple[Bus, SlowExporter]:
    size, batch, pause = queue
    exporter = SlowExporter(pause)
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=size, max_export_batch_size=batch)
    )
    bus = make_bus(tracer_provider=provider, span_buffer=100, trace_overflow=overflow)
    sink = Quiet(last=EVENTS - 1)
    bus.add_service(sink)
    for i in range(EVENTS):
        bus.fire_event("burst", i)
    assert sink.last.wait(60)
    assert bus.wait_idle(60)
    bus.flush_traces(60)
    provider.force_flush(60_000)
    return bus, exporter


@pytest.mark.parametrize("queue", [SMALL_QUEUE, DEFAULT_QUEUE], ids=["small-queue", "sdk-queue"])
def test_waiting_exports_every_span_of_a_burst(
    make_bus: Callable[..., Bus],
    caplog: pytest.LogCaptureFixture,
    queue: tuple[int, int, float],
) -> None:
    with caplog.at_level(logging.WARNING):
        bus, exporter = _burst(make_bus, "wait", queue)
    tracing = bus.inspect()["tracing"]
    assert exporter.count == 2 * EVENTS  # a PRODUCER and a CONSUMER span each
    assert tracing["dropped"] == 0
    assert tracing["overflow"] == "wait"
    assert tracing["waited"] > 0  # the burst did have to wait
    assert not [r for r in caplog.records if "dropping" in r.getMessage()]  # nor did the SDK drop


def test_dropping_counts_what_did_not_fit(make_bus: Callable[..., Bus]) -> None:
    bus, exporter = _burst(make_bus, "drop")
    tracing = bus.inspect()["tracing"]
    assert tracing["dropped"] > 0
    assert tracing["waited"] == 0
    assert exporter.count < 2 * EVENTS


def test_a_bad_overflow_policy_is_refused(make_bus: Callable[..., Bus]) -> None:
    with pytest.raises(ValueError, match="trace_overflow must be 'drop' or 'wait'"):
        make_bus(trace_overflow="block")


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition()`` came true within ``timeout`` (it reads counters only)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_lossless_hold_waits_while_held_and_drops_again_after(
    make_bus: Callable[..., Bus],
) -> None:
    # A console capturing a busy bus holds its tracing lossless; the bus goes
    # back to dropping (the OpenTelemetry convention) once the hold is let go.
    bus = make_bus(span_buffer=8)
    quiet = Quiet(last=49)
    heard = quiet.last
    bus.add_service(quiet)
    gate, stuck = threading.Event(), threading.Event()

    def stall(records: object) -> None:  # the trace thread stops here until the gate opens
        stuck.set()
        gate.wait(30)

    observing = bus.spans.observe(stall)

    def burst() -> threading.Event:
        done = threading.Event()

        def fire() -> None:
            for i in range(50):
                bus.fire_event("burst", i)
            done.set()

        threading.Thread(target=fire, daemon=True).start()
        return done

    hold = bus.lossless_tracing()
    assert bus.inspect()["tracing"]["lossless_holds"] == 1
    bus.fire_event("burst", -1)
    assert stuck.wait(10)
    fired = burst()
    # 100 spans cannot fit in a buffer of 8: the firing thread must wait.
    assert _until(lambda: bus.inspect()["tracing"]["waiting"] > 0)
    assert not fired.is_set()
    gate.set()
    assert fired.wait(30)
    assert heard.wait(30)
    assert bus.flush_traces(30)
    tracing = bus.inspect()["tracing"]
    assert tracing["dropped"] == 0
    assert bus.spans.span_count() == 2 * 51

    hold.dispose()
    hold.dispose()  # idempotent: the count is not taken twice
    assert bus.inspect()["tracing"]["lossless_holds"] == 0
    gate.clear()
    stuck.clear()
    heard.clear()
    bus.fire_event("burst", -1)
    assert stuck.wait(10)
    assert burst().wait(30)  # nothing waits now: the burst overflows and is counted
    gate.set()
    assert heard.wait(30)
    assert bus.flush_traces(30)
    assert bus.inspect()["tracing"]["dropped"] > 0
    observing.dispose()


def test_a_bus_that_does_not_trace_gives_a_hold_that_does_nothing(
    make_bus: Callable[..., Bus],
) -> None:
    bus = make_bus(tracing=False)
    hold = bus.lossless_tracing()
    hold.dispose()
    assert "lossless_holds" not in bus.inspect()["tracing"]
