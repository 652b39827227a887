"""The timed scenarios, each written once per kind of implementation.

Every scenario function builds its implementation, warms it up, times ``n``
operations with ``time.perf_counter`` and tears it down, returning a
:class:`Timing`. Set-up and tear-down are outside the timed region; for traced
runs the flush that proves every span was exported is inside it.

The timed loops call each implementation's own API directly (no adapter in
between), so the figures compare the implementations and nothing else.

Example::

    from benchmarks._scenarios import SCENARIOS

    timing = SCENARIOS["command_roundtrip"].run_once("obvious", 1000, 100)
    print(timing.seconds / timing.ops * 1e6, "µs per call")
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.sdk.trace import TracerProvider

from ._baselines import (
    BareHandoff,
    CountingExporter,
    ObviousBus,
    ObviousTracedBus,
    counting_provider,
)
from ._bus_services import (
    Reading,
    Unit,
    bus_class,
    echo_service,
    nested_services,
    record,
    tick_service,
    typed_service,
)

if TYPE_CHECKING:
    from bus import Bus

__all__ = ["SCENARIOS", "BenchmarkError", "Countdown", "Scenario", "Timing"]

# How long a run may go without progress before it is declared stuck.
STALL_SECONDS = 20.0
FANOUT = 4


class BenchmarkError(RuntimeError):
    """A run could not complete or produced a wrong answer."""


@dataclass(frozen=True)
class Timing:
    """One timed run.

    Attributes:
        seconds: wall time of the timed region.
        ops: operations in it (calls, or delivered events).
        spans_expected: spans it should export; ``None`` when untraced.
        spans_exported: spans the counting exporter saw.
    """

    seconds: float
    ops: int
    spans_expected: int | None = None
    spans_exported: int | None = None


class _BusLike(Protocol):
    def execute_command(self, name: str, /, *args: Any) -> Future[Any]: ...

    def fire_event(self, name: str, /, *args: Any) -> None: ...


class Countdown:
    """A listener that counts deliveries down and sets :attr:`done` at zero.

    Thread-safe: the obvious bus calls one listener on several pool threads at
    once. Every implementation pays for the same lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.left = 0
        self.done = threading.Event()

    def arm(self, count: int) -> None:
        """Expect ``count`` more deliveries."""
        with self._lock:
            self.left = count
            self.done.clear()

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()

    def wait(self) -> None:
        """Block until done; raise :class:`BenchmarkError` after a long stall."""
        last, stalled_since = self.left, time.monotonic()
        while not self.done.wait(0.25):
            if self.left != last:
                last, stalled_since = self.left, time.monotonic()
            elif time.monotonic() - stalled_since > STALL_SECONDS:
                raise BenchmarkError(f"listener still waits for {last:,} deliveries after a stall")


def _echo(x: Any) -> Any:
    return x


@dataclass
class _Rig:
    """A bus-like implementation with the tracing it reports to, if any."""

    bus: _BusLike
    real: Bus | None = None
    obvious: ObviousBus | None = None
    provider: TracerProvider | None = None
    exporter: CountingExporter | None = None

    def settle(self, expected: int) -> int | None:
        """Flush until ``expected`` spans were exported (or a stall); the count.

        Some spans end just after the caller has its answer (a CLIENT span ends
        in the future's done-callback), so one flush may come too early.
        """
        if self.provider is None or self.exporter is None:
            return None
        flush_traces = getattr(self.bus, "flush_traces", None)
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            if callable(flush_traces):
                flush_traces()
            self.provider.force_flush()
            count = self.exporter.count
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.0002)

    def reset(self, warmup_spans: int) -> None:
        """After the warm-up: export its spans, then count from zero."""
        if self.exporter is not None:
            self.settle(warmup_spans)
            self.exporter.reset()


@contextmanager
def _rig(implementation: str) -> Iterator[_Rig]:
    traced = implementation in ("obvious-traced", "bus-on")
    provider, exporter = counting_provider() if traced else (None, None)
    try:
        if implementation in ("obvious", "obvious-traced"):
            obvious = ObviousTracedBus(provider) if provider else ObviousBus()
            with obvious:
                yield _Rig(obvious, obvious=obvious, provider=provider, exporter=exporter)
        elif implementation in ("bus-off", "bus-on", "bus-validate"):
            options: dict[str, Any] = {"tracer_provider": provider} if provider else {}
            if implementation == "bus-validate":
                options["validate"] = True
            with bus_class()(name="bench", tracing=traced, **options) as bus:
                yield _Rig(bus, real=bus, provider=provider, exporter=exporter)
        else:
            raise ValueError(f"no bus-like implementation {implementation!r}")
    finally:
        if provider is not None:
            provider.shutdown()


def _timed(rig: _Rig, n: int, spans_per_op: int, body: Callable[[], Any]) -> tuple[Timing, Any]:
    """Time ``body()`` and the export of its spans; the timing and what it returned."""
    gc.collect()
    start = time.perf_counter()
    value = body()
    exported = rig.settle(n * spans_per_op)
    seconds = time.perf_counter() - start
    expected = None if exported is None else n * spans_per_op
    return Timing(seconds, n, expected, exported), value


def command_roundtrip(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` sequential ``execute_command("echo", i).result()`` calls from this thread."""
    if implementation == "bare":
        with BareHandoff(_echo, name="bench-echo") as handoff:
            call = handoff.call
            for i in range(warmup):
                call(i)
            gc.collect()
            start = time.perf_counter()
            for i in range(n):
                last = call(i)
            seconds = time.perf_counter() - start
        _check(last == n - 1, f"bare hand-off answered {last!r}")
        return Timing(seconds, n)

    with _rig(implementation) as rig:
        if rig.real is not None:
            rig.real.add_service(echo_service())
        elif rig.obvious is not None:
            rig.obvious.register_command("echo", _echo)
        execute = rig.bus.execute_command
        for i in range(warmup):
            execute("echo", i).result()
        rig.reset(2 * warmup)

        def body() -> Any:
            for i in range(n):
                last = execute("echo", i).result()
            return last

        timing, last = _timed(rig, n, 2, body)
    _check(last == n - 1, f"{implementation} answered {last!r}")
    return timing


def _fire(implementation: str, n: int, warmup: int, listeners: int) -> Timing:
    sinks = [Countdown() for _ in range(listeners)]

    def deliver(fire: Callable[..., None], name: str | None, count: int) -> None:
        for sink in sinks:
            sink.arm(count)
        if name is None:
            for i in range(count):
                fire(i)
        else:
            for i in range(count):
                fire(name, i)
        for sink in sinks:
            sink.wait()

    if implementation == "bare":
        with BareHandoff(_echo, sinks[0], name="bench-tick") as handoff:
            deliver(handoff.fire, None, warmup)
            gc.collect()
            start = time.perf_counter()
            deliver(handoff.fire, None, n)
            seconds = time.perf_counter() - start
        return Timing(seconds, n)

    with _rig(implementation) as rig:
        for k, sink in enumerate(sinks):
            if rig.real is not None:
                rig.real.add_service(tick_service(f"tick-{k}", sink))
            elif rig.obvious is not None:
                rig.obvious.register_listener("tick", sink)
        fire = rig.bus.fire_event
        deliver(fire, "tick", warmup)
        rig.reset((1 + listeners) * warmup)
        timing, _ = _timed(rig, n, 1 + listeners, lambda: deliver(fire, "tick", n))
    # Per delivered event: n events reached each of the listeners.
    return Timing(timing.seconds, n * listeners, timing.spans_expected, timing.spans_exported)


def event_throughput(implementation: str, n: int, warmup: int) -> Timing:
    """Fire ``n`` events to one listener on another thread; time until all arrived."""
    return _fire(implementation, n, warmup, 1)


def event_fanout(implementation: str, n: int, warmup: int) -> Timing:
    """Fire ``n`` events to four listeners on four services; time until all arrived."""
    return _fire(implementation, n, warmup, FANOUT)


def nested_command(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` calls of a command whose handler calls another service's command."""
    with _rig(implementation) as rig:
        if rig.real is not None:
            for service in nested_services():
                rig.real.add_service(service)
        elif (obvious := rig.obvious) is not None:
            obvious.register_command("inner", _echo)
            obvious.register_command(
                "outer", lambda x: obvious.execute_command("inner", x).result()
            )
        execute = rig.bus.execute_command
        for i in range(warmup):
            execute("outer", i).result()
        rig.reset(4 * warmup)

        def body() -> Any:
            for i in range(n):
                last = execute("outer", i).result()
            return last

        timing, last = _timed(rig, n, 4, body)
    _check(last == n - 1, f"{implementation} answered {last!r}")
    return timing


def typed_command(implementation: str, n: int, warmup: int) -> Timing:
    """``n`` calls of ``record(Reading(...), Unit.CELSIUS)``: typed arguments, in process.

    The same calls as ``command_roundtrip`` with a dataclass and an enum for
    arguments; ``bus-validate`` (``Bus(validate=True)``) has pydantic check
    them on every call, which is what the development option costs.
    """
    with _rig(implementation) as rig:
        if rig.real is not None:
            rig.real.add_service(typed_service())
        elif rig.obvious is not None:
            rig.obvious.register_command("record", record)
        execute = rig.bus.execute_command
        readings = [Reading("hall", float(i)) for i in range(max(n, warmup))]
        unit = Unit.CELSIUS
        for i in range(warmup):
            execute("record", readings[i], unit).result()
        rig.reset(2 * warmup)

        def body() -> Any:
            for i in range(n):
                last = execute("record", readings[i], unit).result()
            return last

        timing, last = _timed(rig, n, 2, body)
    _check(last == n - 1, f"{implementation} answered {last!r}")
    return timing


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


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


_ALL = ("bare", "obvious", "obvious-traced", "bus-off", "bus-on")
_BUSES = _ALL[1:]
_TYPED = (*_BUSES, "bus-validate")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("command_roundtrip", "call", 10_000, 1_000, _ALL, command_roundtrip),
        Scenario("event_throughput", "delivery", 50_000, 4_000, _ALL, event_throughput),
        Scenario("event_fanout", "delivery", 10_000, 1_000, _BUSES, event_fanout),
        Scenario("nested_command", "outer call", 5_000, 500, _BUSES, nested_command),
        Scenario("typed_command", "call", 10_000, 1_000, _TYPED, typed_command),
    )
}
"""The timed scenarios by name, in report order."""
