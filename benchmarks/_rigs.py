"""Each bus-like implementation set up, with the tracing it is measured with.

A :class:`Rig` is one implementation ready for traffic and, when traced, the
:class:`SpanTally` that proves its spans were all exported:

* ``obvious-traced``: the obvious bus with SDK spans, a ``BatchSpanProcessor``
  (deep queue, see ``DEEP_QUEUE``) exporting to a counter;
* ``bus-app``: the bus on the application's provider, an SDK
  ``TracerProvider`` with a ``BatchSpanProcessor`` of the SDK's default queue
  exporting to a counter, lossless (``trace_overflow="wait"``);
* ``bus-file``: the bus on its own provider with
  ``OTEL_TRACES_EXPORTER=bus_otlp_json_file`` writing a trace file in a
  temporary directory, lossless; the spans are counted in the file;
* ``bus-ring``: the bus on its own provider with no exporter (it keeps its
  spans in the ring for the console), lossless; the bus's own count of the
  spans it made, with none dropped.

Example::

    from benchmarks._rigs import rig

    with rig("bus-file") as r:
        ...  # r.bus.fire_event(...); r.tally.settle(expected)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._baselines import DEEP_QUEUE, CountingExporter, ObviousBus, ObviousTracedBus
from ._baselines import counting_provider as _counting_provider
from ._bus_services import bus_class

if TYPE_CHECKING:
    from bus import Bus

__all__ = [
    "BUS_IMPLEMENTATIONS",
    "STALL_SECONDS",
    "TRACED",
    "BenchmarkError",
    "BusLike",
    "Rig",
    "SpanTally",
    "count_file_spans",
    "environ",
    "require_own_provider",
    "rig",
]

STALL_SECONDS = 5.0
"""How long a wait may go without progress before the run is declared stuck."""

TRACED = frozenset({"obvious-traced", "bus-ring", "bus-app", "bus-file"})
"""The implementations that trace, and must export every span."""

BUS_IMPLEMENTATIONS = frozenset({"bus", "bus-ring", "bus-app", "bus-file", "bus-validate"})
"""The implementations that are the real bus."""

TRACE_FILE = "trace.jsonl"


class BenchmarkError(RuntimeError):
    """A run could not complete or produced a wrong answer."""


class BusLike(Protocol):
    """The two verbs the timed loops call."""

    def execute_command(self, name: str, /, *args: Any) -> Future[Any]: ...

    def fire_event(self, name: str, /, *args: Any) -> None: ...


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for ``None``, remove) environment variables inside the block."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def count_file_spans(path: Path, offset: int = 0) -> int:
    """Spans in an OTLP JSON lines trace file, from byte ``offset`` on.

    Raises:
        BenchmarkError: a line is not a ``TracesData`` JSON object.
    """
    total = 0
    with path.open("rb") as file:
        file.seek(offset)
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                total += sum(
                    len(scope["spans"])
                    for resource in data["resourceSpans"]
                    for scope in resource["scopeSpans"]
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise BenchmarkError(
                    f"{path}: line {number} after byte {offset} is not OTLP JSON ({exc})"
                ) from None
    return total


class SpanTally:
    """Counts a traced run's spans and waits, in the timed region, until all are out.

    Subclasses say how spans are flushed and counted. The timed region ends
    with :meth:`settle`, so a traced figure includes exporting its spans;
    :meth:`exported` may take longer (reading a file) and runs after it.
    """

    def __init__(self, bus: Bus | None) -> None:
        self._bus = bus
        self._dropped_at_mark = 0

    def _flush(self) -> None:
        if self._bus is not None:
            self._bus.flush_traces(STALL_SECONDS)

    def _progress(self) -> int:
        """Spans out so far, counted cheaply (called in the timed region)."""
        raise NotImplementedError

    def _bus_tracing(self) -> dict[str, Any]:
        assert self._bus is not None
        tracing: dict[str, Any] = self._bus.inspect()["tracing"]
        return tracing

    def settle(self, expected: int) -> int:
        """Flush until ``expected`` spans are out, or nothing moves for a while.

        Some records are handed on just after the caller saw its work done
        (a delivery's record once its listener has returned), so one flush
        may come too early.
        """
        last, since = -1, time.monotonic()
        while True:
            self._flush()
            count = self._progress()
            if count >= expected:
                return count
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since > STALL_SECONDS:
                return count
            time.sleep(0.0002)

    def mark(self, warmup_spans: int) -> None:
        """After the warm-up: export its spans, then count from zero."""
        self.settle(warmup_spans)
        self._mark()
        if self._bus is not None:
            self._dropped_at_mark = int(self._bus_tracing().get("dropped") or 0)

    def _mark(self) -> None:
        raise NotImplementedError

    def exported(self) -> int:
        """Spans exported since :meth:`mark`, counted where they ended up."""
        return self._progress()

    def dropped(self) -> int:
        """Spans the bus dropped since :meth:`mark` (0 for the obvious bus)."""
        if self._bus is None:
            return 0
        return int(self._bus_tracing().get("dropped") or 0) - self._dropped_at_mark


class ExporterTally(SpanTally):
    """Spans a ``BatchSpanProcessor`` handed to a :class:`CountingExporter`."""

    def __init__(self, bus: Bus | None, provider: TracerProvider, exporter: CountingExporter):
        super().__init__(bus)
        self._provider = provider
        self._exporter = exporter

    def _flush(self) -> None:
        super()._flush()
        self._provider.force_flush()

    def _progress(self) -> int:
        return self._exporter.count

    def _mark(self) -> None:
        self._exporter.reset()


class BusTally(SpanTally):
    """Spans the bus's trace thread made (ring, trace file), by its own count."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(bus)
        self._base = 0

    def _made(self) -> int:
        return int(self._bus_tracing().get("exported") or 0)

    def _progress(self) -> int:
        return self._made() - self._base

    def _mark(self) -> None:
        self._base = self._made()


class FileTally(BusTally):
    """Spans the bus wrote to its trace file, counted in the file."""

    def __init__(self, bus: Bus, path: Path) -> None:
        super().__init__(bus)
        self._path = path
        self._offset = 0

    def _mark(self) -> None:
        super()._mark()
        self._offset = self._path.stat().st_size if self._path.exists() else 0

    def exported(self) -> int:
        """Spans in the file's lines written since :meth:`mark`."""
        if not self._path.exists():
            return 0
        return count_file_spans(self._path, self._offset)


@dataclass
class Rig:
    """A bus-like implementation, ready for traffic.

    Attributes:
        implementation: its key (``obvious``, ``bus-file``...).
        bus: what the timed loops call.
        real: the bus, when it is the real one.
        obvious: the obvious bus, when it is that.
        tally: how its spans are counted; ``None`` untraced.
    """

    implementation: str
    bus: BusLike
    real: Bus | None = None
    obvious: ObviousBus | None = None
    tally: SpanTally | None = None


def require_own_provider() -> None:
    """Raise unless a bus here would make its own provider (no global one set)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        raise BenchmarkError(
            f"a global TracerProvider is set ({type(current).__name__}): a bus uses it, "
            "so its own provider cannot be measured in this process"
        )


def _check_tracing(bus: Bus) -> None:
    if not bus.tracing:
        raise BenchmarkError("the bus records no span here (is OTEL_SDK_DISABLED=true set?)")


@contextmanager
def rig(implementation: str) -> Iterator[Rig]:
    """Build ``implementation``, yield it ready for traffic, then close it.

    Closing joins every thread it started and shuts its provider down, so
    nothing of one run (an export still going, say) runs into the next.

    Raises:
        ValueError: ``implementation`` is not a bus-like one.
        BenchmarkError: the traced set-up cannot be made here.
    """
    if implementation == "obvious":
        with ObviousBus() as obvious:
            yield Rig(implementation, obvious, obvious=obvious)
    elif implementation == "obvious-traced":
        provider, exporter = _counting_provider(DEEP_QUEUE)
        try:
            with ObviousTracedBus(provider) as traced:
                if not traced.tracing:
                    raise BenchmarkError(
                        "the SDK records no span here (is OTEL_SDK_DISABLED=true set?)"
                    )
                tally = ExporterTally(None, provider, exporter)
                yield Rig(implementation, traced, obvious=traced, tally=tally)
        finally:
            provider.shutdown()
    elif implementation in ("bus", "bus-validate"):
        with bus_class()(
            name="bench", tracing=False, validate=implementation == "bus-validate"
        ) as bus:
            yield Rig(implementation, bus, real=bus)
    elif implementation == "bus-app":
        provider, exporter = _counting_provider()
        try:
            with bus_class()(name="bench", tracer_provider=provider, trace_overflow="wait") as bus:
                _check_tracing(bus)
                yield Rig(
                    implementation, bus, real=bus, tally=ExporterTally(bus, provider, exporter)
                )
        finally:
            provider.shutdown()
    elif implementation == "bus-ring":
        require_own_provider()
        with environ({"OTEL_TRACES_EXPORTER": "none"}):
            made = bus_class()(name="bench", trace_overflow="wait")
        with made as bus:
            _check_tracing(bus)
            yield Rig(implementation, bus, real=bus, tally=BusTally(bus))
    elif implementation == "bus-file":
        require_own_provider()
        with tempfile.TemporaryDirectory(prefix="bus-bench-") as folder:
            path = Path(folder) / TRACE_FILE
            with environ(
                {"OTEL_TRACES_EXPORTER": "bus_otlp_json_file", "BUS_TRACE_FILE": str(path)}
            ):
                made = bus_class()(name="bench", trace_overflow="wait")
            with made as bus:
                _check_tracing(bus)
                if not path.exists():
                    raise BenchmarkError(
                        "OTEL_TRACES_EXPORTER=bus_otlp_json_file opened no trace file: "
                        "is bus installed (pip install -e .) with its entry points?"
                    )
                yield Rig(implementation, bus, real=bus, tally=FileTally(bus, path))
    else:
        raise ValueError(f"no bus-like implementation {implementation!r}")
