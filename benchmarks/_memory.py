"""The memory scenario: a long run of traced events, sizes sampled as it goes.

``tracemalloc`` would slow the run several times over, so the process's peak
resident set size (``getrusage``) and the bus's own sizes (mailboxes, span
buffer and ring, from ``inspect()``) are sampled at the start, at 10%, 50% and
100% of the events fired, and once every event has been delivered. Memory is
flat when the peak at 100% is within :data:`~benchmarks._report.FLAT_TOLERANCE`
of the peak at 50%: bounded mailboxes and rings stop growing early.

The bus runs with tracing on and its own provider, so its span ring and
export buffer are part of what is measured.

Example::

    from benchmarks._memory import run_memory

    report = run_memory(100_000)
    print(report.growth, report.flat)
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time

from ._bus_services import bus_class, bus_sizes, tick_service
from ._results import MemoryReport, MemorySample
from ._scenarios import Countdown

__all__ = ["max_rss_kib", "rss_kib", "run_memory"]


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


def run_memory(events: int) -> MemoryReport:
    """Fire ``events`` traced events at one listener and sample memory on the way.

    Runs best early in a process: a peak set by earlier work would hide growth.
    Errors (the library missing, events lost) are reported, not raised.
    """
    sink = Countdown()
    samples: list[MemorySample] = []
    seconds = 0.0
    try:
        bus_type = bus_class()
    except ImportError as exc:
        return MemoryReport(events, error=f"bus is not importable ({exc})")
    try:
        with bus_type(name="bench-memory", tracing=True) as bus:
            bus.add_service(tick_service("tick", sink))

            def sample(label: str, fired: int) -> None:
                samples.append(
                    MemorySample(
                        label, fired, events - sink.left, max_rss_kib(), rss_kib(), bus_sizes(bus)
                    )
                )

            gc.collect()
            sink.arm(events)
            sample("start", 0)
            fire = bus.fire_event
            fired = 0
            start = time.perf_counter()
            for percent in (10, 50, 100):
                upto = max(fired, events * percent // 100)
                for i in range(fired, upto):
                    fire("tick", i)
                fired = upto
                sample(f"{percent}%", fired)
            sink.wait()
            seconds = time.perf_counter() - start
            bus.flush_traces()
            sample("drained", fired)
    except Exception as exc:
        return MemoryReport(events, seconds, tuple(samples), f"{type(exc).__name__}: {exc}")
    return MemoryReport(events, seconds, tuple(samples))
