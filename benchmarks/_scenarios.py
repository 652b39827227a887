"""The timed scenarios, each written once per kind of implementation.

Every scenario function builds its implementation, warms it up, times ``n``
operations with ``time.perf_counter`` and tears it down, returning a
:class:`Timing`. Set-up and tear-down are outside the timed region; for traced
runs the flush that proves every span was exported is inside it, so a traced
figure is what it costs to trace *and* export. The spans are then counted
where they ended up (the counting exporter, the trace file, the bus's own
count), outside the timed region.

The timed loops call each implementation's own API directly (no adapter in
between), so the figures compare the implementations and nothing else. The
listener is the same for all: a :class:`Countdown`.

Example::

    from benchmarks._scenarios import SCENARIOS

    timing = SCENARIOS["command_roundtrip"].run_once("obvious", 1000, 100)
    print(timing.seconds / timing.ops * 1e6, "µs per call")
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._baselines import CallFloor, EventFloor
from ._bus_services import (
    Reading,
    Unit,
    echo_service,
    nested_services,
    record,
    tick_service,
    typed_service,
)
from ._pinning import thread_cpus
from ._rigs import STALL_SECONDS, BenchmarkError, Rig, rig

__all__ = ["SCENARIOS", "Countdown", "Scenario", "Timing"]

FANOUT = 4


@dataclass(frozen=True)
class Timing:
    """One timed run.

    Attributes:
        seconds: wall time of the timed region.
        ops: operations in it (calls, or delivered events).
        calls: how many times the handlers or listeners ran in it, as they
            counted (equal to ``ops`` when the implementation did its work).
        cpus: the CPUs the threads the run started were allowed, as the
            kernel tells (empty where it cannot).
        spans_expected: spans it should export; ``None`` when untraced.
        spans_exported: spans counted where they were exported to.
        spans_dropped: spans the bus said it dropped.
        cpu_seconds: CPU time of the whole process (every thread) in the
            timed region; pinned, what the wall time lacks of it went to
            other processes, or to waiting.
    """

    seconds: float
    ops: int
    calls: int
    cpus: frozenset[int] = frozenset()
    spans_expected: int | None = None
    spans_exported: int | None = None
    spans_dropped: int | None = None
    cpu_seconds: float = 0.0


class _Stopwatch:
    """Wall and process CPU time of a ``with`` block."""

    seconds = 0.0
    cpu_seconds = 0.0

    def __enter__(self) -> _Stopwatch:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


class Countdown:
    """The listener of every scenario: counts its calls, signals a total reached.

    Thread-safe without a lock: ``next()`` on an ``itertools.count`` is one
    call into C, atomic under the GIL, so the obvious bus may call it from
    several pool threads at once. It costs every implementation the same
    few tens of nanoseconds.
    """

    def __init__(self) -> None:
        self._seen = itertools.count(1)
        self._target = 0
        self.done = threading.Event()

    @property
    def seen(self) -> int:
        """Calls so far."""
        # The count's repr is its next value, read without taking it.
        return int(repr(self._seen)[len("count(") : -1]) - 1

    def arm(self, total: int) -> None:
        """Signal :attr:`done` when calls reach ``total`` (call it between bursts)."""
        self._target = total
        self.done.clear()
        if self.seen >= total:
            self.done.set()

    def __call__(self, *args: Any) -> None:
        if next(self._seen) == self._target:
            self.done.set()

    def wait(self) -> None:
        """Block until done; raise :class:`BenchmarkError` after a stall."""
        last, since = self.seen, time.monotonic()
        while not self.done.wait(0.25):
            seen = self.seen
            if seen != last:
                last, since = seen, time.monotonic()
            elif time.monotonic() - since > STALL_SECONDS:
                raise BenchmarkError(
                    f"the listener has had {seen:,} of {self._target:,} calls and stalled"
                )


class _Started:
    """The threads started since this was made (a run's own)."""

    def __init__(self) -> None:
        self._before = set(threading.enumerate())

    def cpus(self) -> frozenset[int]:
        """The CPUs those of them still running may use."""
        return thread_cpus(t for t in threading.enumerate() if t not in self._before)


def _echo(x: Any) -> Any:
    return x


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def _timed(
    r: Rig,
    started: _Started,
    n: int,
    spans_per_op: int,
    warmup_spans: int,
    body: Callable[[], Any],
) -> tuple[Timing, Any]:
    """Time ``body()`` and the export of its spans; the timing and what it returned."""
    tally = r.tally
    if tally is not None:
        tally.mark(warmup_spans)
    gc.collect()
    with _Stopwatch() as watch:
        value = body()
        if tally is not None:
            tally.settle(n * spans_per_op)
    cpus = started.cpus()
    if tally is None:
        return Timing(watch.seconds, n, n, cpus, cpu_seconds=watch.cpu_seconds), value
    timing = Timing(
        watch.seconds,
        n,
        n,
        cpus,
        spans_expected=n * spans_per_op,
        spans_exported=tally.exported(),
        spans_dropped=tally.dropped(),
        cpu_seconds=watch.cpu_seconds,
    )
    return timing, value


def _calls(name: str, n: int, warmup: int, r: Rig, started: _Started) -> Timing:
    """``n`` sequential calls of command ``name`` with ``i`` through ``r``."""
    execute = r.bus.execute_command
    for i in range(warmup):
        execute(name, i).result()

    def body() -> int:
        total = 0
        for i in range(n):
            total += execute(name, i).result()
        return total

    spans = 4 if name == "outer" else 2  # CLIENT + SERVER, twice when nested
    timing, total = _timed(r, started, n, spans, spans * warmup, body)
    _check(total == n * (n - 1) // 2, f"{r.implementation} answered wrongly (sum {total})")
    return timing


def command_roundtrip(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` sequential ``execute_command("echo", i).result()`` calls from this thread."""
    started = _Started()
    if implementation == "floor":
        with CallFloor(_echo, name="floor-echo") as floor:
            call = floor.call
            for i in range(warmup):
                call(i)
            gc.collect()
            with _Stopwatch() as watch:
                total = 0
                for i in range(n):
                    total += call(i)
            cpus = started.cpus()
        _check(total == n * (n - 1) // 2, f"the floor answered wrongly (sum {total})")
        return Timing(watch.seconds, n, n, cpus, cpu_seconds=watch.cpu_seconds)
    with rig(implementation) as r:
        if r.real is not None:
            r.real.add_service(echo_service())
        elif r.obvious is not None:
            r.obvious.register_command("echo", _echo)
        return _calls("echo", n, warmup, r, started)


def _fire(implementation: str, n: int, warmup: int, listeners: int) -> Timing:
    """Fire ``n`` events at ``listeners`` listeners; time until every one had them all."""
    started = _Started()
    sinks = [Countdown() for _ in range(listeners)]

    def deliver(fire: Callable[..., None], total: int, count: int, named: bool) -> None:
        for sink in sinks:
            sink.arm(total)
        if named:
            for i in range(count):
                fire("tick", i)
        else:
            for i in range(count):
                fire(i)
        for sink in sinks:
            sink.wait()

    if implementation == "floor":
        _check(listeners == 1, "the floor has one listener")
        with EventFloor(sinks[0], name="floor-tick") as floor:
            deliver(floor.fire, warmup, warmup, named=False)
            gc.collect()
            with _Stopwatch() as watch:
                deliver(floor.fire, warmup + n, n, named=False)
            cpus = started.cpus()
        timing = Timing(watch.seconds, n, n, cpus, cpu_seconds=watch.cpu_seconds)
    else:
        with rig(implementation) as r:
            for k, sink in enumerate(sinks):
                if r.real is not None:
                    r.real.add_service(tick_service(f"tick-{k}", sink))
                elif r.obvious is not None:
                    r.obvious.register_listener("tick", sink)
            fire = r.bus.fire_event
            deliver(fire, warmup, warmup, named=True)
            per_event = 1 + listeners  # PRODUCER + a CONSUMER per listener
            timing, _ = _timed(
                r,
                started,
                n,
                per_event,
                per_event * warmup,
                lambda: deliver(fire, warmup + n, n, named=True),
            )
    # After the tear-down every queued delivery has run: none more than fired.
    seen = [sink.seen for sink in sinks]
    _check(
        seen == [warmup + n] * listeners,
        f"{implementation}: the listeners ran {seen} times, not {warmup + n} each",
    )
    # Per delivered event: n events reached each of the listeners.
    return Timing(
        timing.seconds,
        n * listeners,
        sum(seen) - warmup * listeners,
        timing.cpus,
        timing.spans_expected,
        timing.spans_exported,
        timing.spans_dropped,
        timing.cpu_seconds,
    )


def event_throughput(implementation: str, n: int, warmup: int) -> Timing:
    """Fire ``n`` events to one listener on another thread; time until all arrived."""
    return _fire(implementation, n, warmup, 1)


def event_fanout(implementation: str, n: int, warmup: int) -> Timing:
    """Fire ``n`` events to four listeners on four services; time until all arrived."""
    return _fire(implementation, n, warmup, FANOUT)


def nested_command(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` calls of a command whose handler calls another service's command."""
    started = _Started()
    with rig(implementation) as r:
        if r.real is not None:
            for service in nested_services():
                r.real.add_service(service)
        elif (obvious := r.obvious) is not None:
            obvious.register_command("inner", _echo)
            obvious.register_command(
                "outer", lambda x: obvious.execute_command("inner", x).result()
            )
        return _calls("outer", n, warmup, r, started)


def typed_command(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` calls of ``record(Reading(...), Unit.CELSIUS)``: typed arguments, in process.

    The same calls as ``command_roundtrip`` with a dataclass and an enum for
    arguments; ``bus-validate`` (``Bus(validate=True)``) has pydantic check
    them on every call, which is what the development option costs.
    """
    started = _Started()
    with rig(implementation) as r:
        if r.real is not None:
            r.real.add_service(typed_service())
        elif r.obvious is not None:
            r.obvious.register_command("record", record)
        execute = r.bus.execute_command
        readings = [Reading("hall", float(i)) for i in range(max(n, warmup))]
        unit = Unit.CELSIUS
        for i in range(warmup):
            execute("record", readings[i], unit).result()

        def body() -> float:
            total = 0.0
            for i in range(n):
                total += execute("record", readings[i], unit).result()
            return total

        timing, total = _timed(r, started, n, 2, 2 * warmup, body)
    _check(total == n * (n - 1) / 2, f"{implementation} answered wrongly (sum {total})")
    return timing


@dataclass(frozen=True)
class Scenario:
    """A timed scenario and how to run it.

    Attributes:
        name: its name on the command line and in the report.
        unit: what one operation is.
        default_n: operations per repeat in a full run.
        quick_n: operations per repeat with ``--quick``.
        implementations: the implementations it compares.
        run_once: ``(implementation, n, warmup) -> Timing``.
    """

    name: str
    unit: str
    default_n: int
    quick_n: int
    implementations: tuple[str, ...]
    run_once: Callable[[str, int, int], Timing]


_TRACED_BUSES = ("bus-ring", "bus-app", "bus-file")
_BUSES = ("obvious", "obvious-traced", "bus", *_TRACED_BUSES)
_ALL = ("floor", *_BUSES)
_TYPED = (*_BUSES, "bus-validate")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("command_roundtrip", "call", 10_000, 500, _ALL, command_roundtrip),
        Scenario("event_throughput", "delivery", 50_000, 2_000, _ALL, event_throughput),
        Scenario("event_fanout", "delivery", 10_000, 300, _BUSES, event_fanout),
        Scenario("nested_command", "outer call", 5_000, 200, _BUSES, nested_command),
        Scenario("typed_command", "call", 10_000, 300, _TYPED, typed_command),
    )
}
"""The timed scenarios by name, in report order."""
