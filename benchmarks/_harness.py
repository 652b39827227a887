"""The harness: every implementation side by side in one process, best of R.

The method (the design's section 12):

* **Pinned** by default: the process's threads all run on one CPU
  (``os.sched_setaffinity`` before any scenario starts a thread), since
  unpinned hand-offs on an idle machine mostly measure wake-ups. ``pin=False``
  (``--unpinned``) compares; the report says which it was, and each run
  reads back the CPUs of the threads it started.
* **Alike**: each repeat runs every implementation of a scenario once, with
  the same warm-up, in an order rotated from repeat to repeat, so drift in
  the machine's speed spreads over all of them instead of favouring whichever
  ran first; the best repeat of each is the figure reported.
* **Lossless**: a traced run is timed until every span it made is exported,
  then its spans are counted where they went; a figure that lost any does
  not count (its targets are ``INVALID``).
* **Apart**: every run closes what it started and its threads are joined
  before the next is timed, so no export of one runs inside another.

The memory scenario runs first, while the process's RSS has not yet been
raised by other work.

Example::

    from benchmarks import render, run

    print(render(run(["event_throughput"], n=10_000, repeat=3)))
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._bus_services import bus_class
from ._memory import queued_event_bytes, ring_span_bytes, rss_curve
from ._pinning import pinned
from ._results import Footprint, Measurement, Results, RssReport
from ._rigs import BUS_IMPLEMENTATIONS, STALL_SECONDS, environ
from ._scenarios import SCENARIOS, Timing

__all__ = ["ALL_SCENARIOS", "MEMORY", "run"]

MEMORY = "memory"
ALL_SCENARIOS: tuple[str, ...] = (*SCENARIOS, MEMORY)
"""Every scenario name, in report order."""

DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
QUEUED_EVENTS = 50_000
QUICK_QUEUED_EVENTS = 3_000
RING_SIZE = 10_000  # the bus's default
QUICK_RING_SIZE = 1_000


def _warmup(n: int) -> int:
    return max(10, min(2_000, n // 10))


def _bus_unavailable() -> str | None:
    try:
        bus_class()
    except Exception as exc:
        return f"bus is not importable ({type(exc).__name__}: {exc})"
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "opentelemetry_sdk": _version("opentelemetry-sdk"),
        "bus": _version("bus"),
        "speedups": _speedups(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _speedups() -> str | None:
    """Which code delivers untraced events: ``"c"`` or ``"python"`` (docs/benchmarks.md)."""
    try:
        from bus._core import _accel
    except ImportError:
        return None
    return _accel.mode()


def _left_running(before: set[threading.Thread]) -> list[str]:
    """Names of threads started since ``before`` still running after a grace period."""
    deadline = time.monotonic() + STALL_SECONDS
    for thread in threading.enumerate():
        if thread not in before:
            thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive())


def _run_once(
    name: str, key: str, n: int, cpu: int | None, errors: dict[str, str]
) -> Timing | None:
    """One timed run; ``None`` (and ``errors[key]`` set) if it failed."""
    before = set(threading.enumerate())
    try:
        timing = SCENARIOS[name].run_once(key, n, _warmup(n))
    except Exception as exc:
        errors[key] = f"{type(exc).__name__}: {exc}"
        return None
    finally:
        # Nothing of this run may run into the next one's timing.
        running = _left_running(before)
    if running:
        errors[key] = f"threads still running after the run closed: {', '.join(running)}"
        return None
    if cpu is not None and timing.cpus - {cpu}:
        errors[key] = f"its threads ran on CPUs {sorted(timing.cpus)}, not pinned to {cpu}"
        return None
    return timing


def _measure(
    name: str,
    n: int,
    repeat: int,
    cpu: int | None,
    bus_error: str | None,
    progress: Callable[[str], None],
) -> list[Measurement]:
    scenario = SCENARIOS[name]
    implementations = scenario.implementations
    timings: dict[str, list[Timing]] = {key: [] for key in implementations}
    errors: dict[str, str] = {}
    if bus_error is not None:
        errors.update((key, bus_error) for key in implementations if key in BUS_IMPLEMENTATIONS)
    for r in range(repeat):
        shift = r % len(implementations)
        for key in implementations[shift:] + implementations[:shift]:
            if key in errors:
                continue
            progress(f"{name}: {key} ({r + 1}/{repeat})")
            timing = _run_once(name, key, n, cpu, errors)
            if timing is not None:
                timings[key].append(timing)
    measurements = []
    for key in implementations:
        runs = timings[key]
        traced = [t for t in runs if t.spans_expected is not None]
        measurements.append(
            Measurement(
                scenario=name,
                implementation=key,
                unit=scenario.unit,
                ops=runs[0].ops if runs else n,
                repeats_us=tuple(t.seconds / t.ops * 1e6 for t in runs),
                repeats_cpu_us=tuple(t.cpu_seconds / t.ops * 1e6 for t in runs),
                cpus=frozenset().union(*(t.cpus for t in runs)),
                spans_expected=sum(t.spans_expected or 0 for t in traced) if traced else None,
                spans_exported=sum(t.spans_exported or 0 for t in traced) if traced else None,
                spans_dropped=sum(t.spans_dropped or 0 for t in traced) if traced else None,
                error=errors.get(key),
            )
        )
    return measurements


def _memory(
    quick: bool,
    memory_events: int | None,
    bus_error: str | None,
    progress: Callable[[str], None],
) -> tuple[tuple[Footprint, ...], RssReport | None]:
    if bus_error is not None:
        failed = (
            Footprint("queued event, traced", "event", 0, error=bus_error),
            Footprint("ring span, events", "span", 0, error=bus_error),
        )
        return failed, None if memory_events is None else RssReport(memory_events, error=bus_error)
    rss = None
    if memory_events is not None:
        progress(f"memory: RSS over {memory_events:,} traced events")
        rss = rss_curve(memory_events)
    queued = QUICK_QUEUED_EVENTS if quick else QUEUED_EVENTS
    ring = QUICK_RING_SIZE if quick else RING_SIZE
    progress(f"memory: {queued:,} queued events")
    footprint = [
        queued_event_bytes(queued, traced=True),
        queued_event_bytes(queued, traced=False),
    ]
    progress(f"memory: a ring of {ring:,}")
    footprint += [ring_span_bytes(ring, "events"), ring_span_bytes(ring, "commands")]
    return tuple(footprint), rss


def run(
    scenarios: Sequence[str] | None = None,
    n: int | None = None,
    repeat: int | None = None,
    quick: bool = False,
    *,
    memory_events: int | None = None,
    pin: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Results:
    """Run the benchmark scenarios and return what they measured.

    Blocks for the whole run (a full run takes a few minutes, ``quick`` some
    seconds). Failures of one implementation are recorded in the results,
    not raised, so the others still run. The calling thread's CPU affinity
    is put back at the end.

    Args:
        scenarios: names from :data:`ALL_SCENARIOS`; all of them if ``None``.
        n: operations per repeat for every timed scenario; by default each
            scenario's own, smaller with ``quick``.
        repeat: repeats per implementation, the best reported (default 5,
            2 with ``quick``).
        quick: small sizes, for a check that finishes in seconds.
        memory_events: with the memory scenario, also fire this many traced
            events and follow RSS (10,000,000 for the target; off if ``None``).
        pin: run every thread on one CPU (where the platform allows).
        progress: called with a short line before each run.

    Raises:
        ValueError: an unknown scenario name, or ``n``, ``repeat`` or
            ``memory_events`` below 1.
    """
    names = list(dict.fromkeys(scenarios)) if scenarios else list(ALL_SCENARIOS)
    unknown = [name for name in names if name not in ALL_SCENARIOS]
    if unknown:
        raise ValueError(
            f"unknown scenario {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(ALL_SCENARIOS)}"
        )
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if memory_events is not None and memory_events < 1:
        raise ValueError(f"memory_events must be at least 1, got {memory_events}")
    repeat = repeat if repeat is not None else QUICK_REPEAT if quick else DEFAULT_REPEAT
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    report = progress or (lambda line: None)
    bus_error = _bus_unavailable()

    ops: dict[str, int] = {}
    footprint: tuple[Footprint, ...] = ()
    rss: RssReport | None = None
    measurements: list[Measurement] = []
    # One process, whatever the shell says: a Bus() would join BUS_NATS_URL.
    with environ({"BUS_NATS_URL": None}), pinned(pin) as cpu:
        if MEMORY in names:
            footprint, rss = _memory(quick, memory_events, bus_error, report)
        for name in names:
            if name == MEMORY:
                continue
            scenario = SCENARIOS[name]
            ops[name] = n or (scenario.quick_n if quick else scenario.default_n)
            measurements += _measure(name, ops[name], repeat, cpu, bus_error, report)
    settings = {
        "quick": quick,
        "repeat": repeat,
        "ops": ops,
        "pin": pin,
        "pinned_cpu": cpu,
        "memory_events": memory_events,
    }
    return Results(tuple(measurements), footprint, rss, settings, _environment())
