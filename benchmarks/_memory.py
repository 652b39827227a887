"""The memory scenarios: what a queued event and a ring span cost, and RSS over time.

Three measurements of the real bus, tracing on, lossless
(``trace_overflow="wait"``), on its own provider with no exporter:

* **bytes per queued event**: a service's listener blocks; a burst of events
  is fired at it and waits in its mailbox. The growth of Python's
  allocations (``tracemalloc``, on from before the bus is made, so what is
  freed counts too) divided by the events queued. The span ring is full
  before the burst (and small), so the send spans it takes in replace
  others and cost nothing net; the figure is what an event costs while it
  waits. Measured untraced too, for comparison.
* **bytes per ring span**: the ring of a bus is filled with traced work;
  the growth divided by the spans it then holds more than before
  (``bus.spans.span_count()``), once for events and once for commands.
* **RSS over a long run** (off unless asked, ``--memory-events N``): traced
  events fired in chunks (never more than a chunk queued, so none is
  dropped), the process's resident set size sampled as it goes. Flat when
  RSS at the end is within :data:`FLAT_TOLERANCE` of RSS half-way; the
  slope over the second half says how many bytes each event left behind.

Example::

    from benchmarks._memory import queued_event_bytes, ring_span_bytes

    print(queued_event_bytes(5_000, traced=True).per_item)
    print(ring_span_bytes(2_000, "events").per_item)
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from ._bus_services import bus_class, bus_sizes, echo_service, tick_service
from ._results import Footprint, MemorySample, RssReport
from ._rigs import STALL_SECONDS, BenchmarkError, environ, require_own_provider
from ._scenarios import Countdown

if TYPE_CHECKING:
    from bus import Bus

__all__ = [
    "QUEUE_RING",
    "max_rss_kib",
    "queued_event_bytes",
    "ring_span_bytes",
    "rss_curve",
    "rss_kib",
]

QUEUE_RING = 1_000
"""The span ring of the queued-event bus: full before the burst, small beside it."""

BLOCK = -1
"""The event argument that makes the blocking listener block."""


def max_rss_kib() -> int:
    """The process's peak resident set size so far, in KiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak // 1024 if sys.platform == "darwin" else peak


def rss_kib() -> int | None:
    """The current resident set size in KiB, where ``/proc`` tells it."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


@contextmanager
def _tracing_allocations() -> Iterator[Callable[[], int]]:
    """``tracemalloc`` on inside the block; yields a reading of the bytes held now."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()

    def now() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    try:
        yield now
    finally:
        if started:
            tracemalloc.stop()


def _own_bus(name: str, *, tracing: bool = True, **options: Any) -> Bus:
    """A lossless bus on its own provider with no exporter: spans go to its ring."""
    if tracing:
        require_own_provider()
    with environ({"OTEL_TRACES_EXPORTER": "none"}):
        bus = bus_class()(name=name, tracing=tracing, trace_overflow="wait", **options)
    if tracing and not bus.tracing:
        bus.close()
        raise BenchmarkError("the bus records no span here (is OTEL_SDK_DISABLED=true set?)")
    return bus


def _flush(bus: Bus) -> None:
    if not bus.flush_traces(STALL_SECONDS):
        raise BenchmarkError(f"the trace thread did not flush within {STALL_SECONDS:g} s")


def _lossless(bus: Bus) -> None:
    sizes = bus_sizes(bus)
    if sizes["events dropped"] or sizes["spans dropped"]:
        raise BenchmarkError(
            f"the bus dropped {sizes['events dropped']:,} events and"
            f" {sizes['spans dropped']:,} spans"
        )


class _Blocking:
    """A listener that blocks on :data:`BLOCK` until released, counting every call."""

    def __init__(self) -> None:
        self.count = Countdown()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, i: Any) -> None:
        if i == BLOCK:
            self.entered.set()
            self.release.wait()
        self.count(i)


def queued_event_bytes(events: int, *, traced: bool = True) -> Footprint:
    """Bytes of Python allocations per event waiting in a blocked service's mailbox.

    Errors (events or spans lost, a stall) are reported in the figure, not raised.
    """
    label = "queued event, traced" if traced else "queued event, untraced"
    warm = QUEUE_RING
    try:
        with (
            _tracing_allocations() as held,
            _own_bus("bench-queue", tracing=traced, ring_size=QUEUE_RING) as bus,
        ):
            listener = _Blocking()
            bus.add_service(tick_service("queue", listener))
            # Warm up, and fill the ring: two records (send, delivery) per event.
            listener.count.arm(warm)
            for i in range(warm):
                bus.fire_event("tick", i)
            listener.count.wait()
            bus.fire_event("tick", BLOCK)
            try:
                if not listener.entered.wait(STALL_SECONDS):
                    raise BenchmarkError("the listener never received the blocking event")
                _flush(bus)
                before = held()
                for i in range(events):
                    bus.fire_event("tick", i)
                _flush(bus)
                after = held()
                queued = bus_sizes(bus)["mailboxes"]
            finally:
                listener.release.set()
            listener.count.arm(warm + 1 + events)
            listener.count.wait()
            _flush(bus)
            _lossless(bus)
        if queued != events:
            raise BenchmarkError(f"{queued:,} of {events:,} events were queued")
    except Exception as exc:
        return Footprint(label, "event", events, error=f"{type(exc).__name__}: {exc}")
    return Footprint(label, "event", events, after - before)


def ring_span_bytes(ring_size: int, work: Literal["events", "commands"]) -> Footprint:
    """Bytes of Python allocations per span the ring of a bus holds.

    The ring of ``ring_size`` records is filled with ``work`` (events to one
    listener: a send and a delivery record, a span each; or commands: one
    record, CLIENT and SERVER spans). Errors are reported in the figure.
    """
    label = f"ring span, {work}"
    warm = 100
    try:
        with _tracing_allocations() as held, _own_bus("bench-ring", ring_size=ring_size) as bus:
            sink = Countdown()
            bus.add_service(tick_service("tick", sink))
            bus.add_service(echo_service())
            execute, fire = bus.execute_command, bus.fire_event

            def do(first: int, count: int) -> None:
                if work == "commands":
                    for i in range(first, first + count):
                        execute("echo", i).result()
                else:
                    sink.arm(first + count)
                    for i in range(first, first + count):
                        fire("tick", i)
                    sink.wait()

            do(0, warm)
            _flush(bus)
            before, spans_before = held(), bus.spans.span_count()
            # Enough that the warm-up's records all leave the ring.
            do(warm, ring_size + warm)
            _flush(bus)
            after, spans_after = held(), bus.spans.span_count()
            held_records = len(bus.spans.records())
            _lossless(bus)
        if held_records != ring_size:
            raise BenchmarkError(f"the ring holds {held_records:,} records, not {ring_size:,}")
    except Exception as exc:
        return Footprint(label, "span", 0, error=f"{type(exc).__name__}: {exc}")
    return Footprint(label, "span", spans_after - spans_before, after - before)


def rss_curve(events: int, points: int = 20) -> RssReport:
    """Fire ``events`` traced events at one listener and sample RSS on the way.

    Runs best early in a process: a peak set by earlier work would hide
    growth. Errors (events or spans lost, a stall) are reported, not raised.
    """
    sink = Countdown()
    samples: list[MemorySample] = []
    seconds = 0.0
    chunk = max(1, min(10_000, events // (points * 10)))
    try:
        with _own_bus("bench-memory") as bus:
            bus.add_service(tick_service("tick", sink))

            def sample(label: str, fired: int) -> None:
                samples.append(
                    MemorySample(label, fired, sink.seen, max_rss_kib(), rss_kib(), bus_sizes(bus))
                )

            gc.collect()
            sample("start", 0)
            fire = bus.fire_event
            marks = iter(range(1, points + 1))
            mark: int | None = next(marks)
            fired = 0
            start = time.perf_counter()
            while fired < events:
                upto = min(events, fired + chunk)
                for i in range(fired, upto):
                    fire("tick", i)
                fired = upto
                # Paced: the listener catches up before the next chunk, so the
                # mailbox never fills and nothing is dropped.
                sink.arm(fired)
                sink.wait()
                while mark is not None and fired >= events * mark // points:
                    sample(f"{100 * mark // points}%", fired)
                    mark = next(marks, None)
            seconds = time.perf_counter() - start
            _flush(bus)
            sample("drained", fired)
            _lossless(bus)
    except Exception as exc:
        return RssReport(events, seconds, tuple(samples), f"{type(exc).__name__}: {exc}")
    return RssReport(events, seconds, tuple(samples))
