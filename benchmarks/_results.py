"""What a benchmark run measured, and the performance targets it is held to.

Frozen dataclasses: :class:`Results` holds one :class:`Measurement` per
scenario and implementation, the memory :class:`Footprint` figures and the
:class:`RssReport` of a long run; :meth:`Results.targets` turns them into the
targets of the design (DESIGN.md section 12) as ratios of this run's figures.

A traced figure counts only if every span it should have exported was
exported: a target with a side that lost spans, or failed, is ``INVALID``,
never ``PASS``.

Example::

    from benchmarks import run

    results = run(["command_roundtrip"], quick=True)
    print(results.ratio("command_roundtrip", "bus", "floor"))
    for target in results.targets():
        print(target.scenario, target.verdict)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FLAT_TOLERANCE",
    "IMPLEMENTATIONS",
    "LONG_RUN_EVENTS",
    "SHORT_NAMES",
    "Footprint",
    "Measurement",
    "MemorySample",
    "Results",
    "RssReport",
    "Target",
]

IMPLEMENTATIONS: dict[str, str] = {
    "floor": "SimpleQueue floor",
    "obvious": "obvious pool",
    "obvious-traced": "obvious pool + SDK spans",
    "bus": "bus",
    "bus-ring": "bus traced: own provider, ring",
    "bus-app": "bus traced: app provider + BSP",
    "bus-file": "bus traced: own provider, file",
    "bus-validate": "bus, validate=True",
}
"""Implementation keys, in table order, with their titles."""

SHORT_NAMES: dict[str, str] = {
    "floor": "floor",
    "obvious": "obvious",
    "obvious-traced": "obvious + SDK spans",
    "bus": "bus",
    "bus-ring": "bus ring",
    "bus-app": "bus app+BSP",
    "bus-file": "bus file",
    "bus-validate": "bus validate",
}
"""The implementations' names where a ratio names two of them."""

FLAT_TOLERANCE = 0.10
"""RSS at the end of the long run may exceed the half-way figure by this much."""

LONG_RUN_EVENTS = 10_000_000
"""The events the flat-RSS target is stated over."""

Op = Literal["<=", ">=", ">"]


@dataclass(frozen=True)
class Measurement:
    """One implementation in one timed scenario, over all repeats.

    Attributes:
        scenario: the scenario's name.
        implementation: a key of :data:`IMPLEMENTATIONS`.
        unit: what one operation is ("call", "delivery").
        ops: operations timed in each repeat.
        repeats_us: microseconds per operation of each completed repeat.
        repeats_cpu_us: the process's CPU microseconds (every thread) per
            operation of the same repeats.
        cpus: the CPUs the threads its runs started were allowed.
        spans_expected: spans the timed regions should have exported, summed
            over the repeats; ``None`` for untraced runs.
        spans_exported: spans counted where they were exported to.
        spans_dropped: spans the bus said it dropped in those regions.
        error: why the implementation stopped, if it did.
    """

    scenario: str
    implementation: str
    unit: str
    ops: int
    repeats_us: tuple[float, ...] = ()
    repeats_cpu_us: tuple[float, ...] = ()
    cpus: frozenset[int] = frozenset()
    spans_expected: int | None = None
    spans_exported: int | None = None
    spans_dropped: int | None = None
    error: str | None = None

    @property
    def best_us(self) -> float | None:
        """The best (lowest) microseconds per operation, or ``None`` if none completed."""
        return min(self.repeats_us) if self.repeats_us else None

    @property
    def spans_ok(self) -> bool | None:
        """Whether exactly the expected spans were exported; ``None`` if untraced."""
        if self.spans_expected is None:
            return None
        return self.spans_exported == self.spans_expected and not self.spans_dropped

    @property
    def valid(self) -> bool:
        """Whether the figure counts: it ran, without error, and lost no span."""
        return self.error is None and bool(self.repeats_us) and self.spans_ok is not False

    @property
    def problem(self) -> str | None:
        """Why the figure does not count, in a few words; ``None`` if it does."""
        if self.error is not None:
            return self.error
        if self.spans_ok is False:
            dropped = f", {self.spans_dropped:,} dropped" if self.spans_dropped else ""
            return (
                f"exported {self.spans_exported or 0:,} spans of"
                f" {self.spans_expected or 0:,}{dropped}: not lossless"
            )
        if not self.repeats_us:
            return "no run completed"
        return None


@dataclass(frozen=True)
class Footprint:
    """Bytes of Python allocations per item, from ``tracemalloc``.

    Attributes:
        label: what was measured ("queued event, traced", "ring span, events").
        item: what one item is ("event", "span").
        items: how many the growth is divided by.
        growth: bytes held more after than before.
        error: why the measurement failed, if it did.
    """

    label: str
    item: str
    items: int
    growth: int = 0
    error: str | None = None

    @property
    def per_item(self) -> float | None:
        """Bytes per item, or ``None`` if the measurement failed."""
        if self.error is not None or self.items <= 0:
            return None
        return self.growth / self.items


@dataclass(frozen=True)
class MemorySample:
    """Process and bus sizes at one point of the long memory run.

    Attributes:
        label: where in the run ("start", "5%" ... "100%", "drained").
        fired: events fired so far.
        delivered: events the listener had received.
        max_rss_kib: peak resident set size of the process so far, in KiB.
        rss_kib: current resident set size in KiB, where the platform tells.
        bus_sizes: the bus's own queue and buffer sizes from ``inspect()``.
    """

    label: str
    fired: int
    delivered: int
    max_rss_kib: int
    rss_kib: int | None
    bus_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def kib(self) -> int:
        """The current RSS where known, else the peak."""
        return self.rss_kib if self.rss_kib is not None else self.max_rss_kib


@dataclass(frozen=True)
class RssReport:
    """The long memory run: traced events through the real bus, RSS sampled.

    Attributes:
        events: events fired.
        seconds: wall time from the first fire until all were delivered.
        samples: sizes at the start, every 5% of the firing, and drained.
        error: why the run failed, if it did.
    """

    events: int
    seconds: float = 0.0
    samples: tuple[MemorySample, ...] = ()
    error: str | None = None

    def sample(self, label: str) -> MemorySample | None:
        """The sample called ``label``, if taken."""
        return next((s for s in self.samples if s.label == label), None)

    @property
    def growth(self) -> float | None:
        """Relative growth of RSS from 50% to 100% of the run."""
        half, end = self.sample("50%"), self.sample("100%")
        if half is None or end is None or half.kib <= 0:
            return None
        return (end.kib - half.kib) / half.kib

    @property
    def slope(self) -> float | None:
        """RSS bytes per event over the second half: a least-squares fit."""
        points = [
            (s.fired, s.kib * 1024)
            for s in self.samples
            if s.label.endswith("%") and 2 * s.fired >= self.events
        ]
        if len(points) < 2:
            return None
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        if spread == 0:
            return None
        return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread

    @property
    def flat(self) -> bool | None:
        """Whether memory stayed flat (growth within :data:`FLAT_TOLERANCE`)."""
        growth = self.growth
        return None if growth is None else growth <= FLAT_TOLERANCE


@dataclass(frozen=True)
class Target:
    """One performance target, checked in this run.

    Attributes:
        scenario: what is measured, in the design's words.
        measure: what the value is (``obvious pool / bus``, ``bytes per event``).
        value: the value measured, ``None`` if a side is missing.
        op: how it must compare with ``limit``: ``<=``, ``>=`` or ``>``.
        limit: the bound.
        unit: ``x`` for a ratio, ``B`` for bytes.
        invalid: why the value does not count (a side failed or lost spans).
        detail: a note shown after the verdict.
    """

    scenario: str
    measure: str
    value: float | None
    op: Op
    limit: float
    unit: str = "x"
    invalid: str | None = None
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        """PASS (``True``), MISS (``False``), or ``None`` (not measured, or invalid)."""
        if self.value is None or self.invalid is not None:
            return None
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == ">=":
            return self.value >= self.limit
        return self.value > self.limit

    @property
    def verdict(self) -> str:
        """``PASS``, ``MISS``, ``INVALID`` (a side failed or lost spans) or ``n/a``."""
        if self.invalid is not None:
            return "INVALID"
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


EVENTS = "event_throughput"
COMMANDS = "command_roundtrip"


@dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured.

    Attributes:
        measurements: the timed scenarios, one per scenario and implementation.
        footprint: the memory figures (queued event, ring span), if measured.
        rss: the long memory run, if it ran.
        settings: operations per scenario, repeats, quick mode, the CPU pinned to.
        environment: Python, platform, CPUs, library versions.
    """

    measurements: tuple[Measurement, ...]
    footprint: tuple[Footprint, ...]
    rss: RssReport | None
    settings: Mapping[str, Any]
    environment: Mapping[str, Any]

    def get(self, scenario: str, implementation: str) -> Measurement | None:
        """The measurement of ``implementation`` in ``scenario``, if it ran."""
        for m in self.measurements:
            if m.scenario == scenario and m.implementation == implementation:
                return m
        return None

    def ratio(self, scenario: str, numerator: str, denominator: str) -> float | None:
        """Best µs/op of ``numerator`` over that of ``denominator`` in ``scenario``."""
        top, bottom = self.get(scenario, numerator), self.get(scenario, denominator)
        if top is None or bottom is None or top.best_us is None or not bottom.best_us:
            return None
        return top.best_us / bottom.best_us

    @property
    def cpu_share(self) -> float | None:
        """The process's CPU time over the wall time of every timed repeat.

        Pinned to one CPU, what falls short of 1 went to other processes on
        that CPU, or to waiting (a trace file's writes): on a busy machine
        it shows how much of the figures is the machine.
        """
        wall = sum(sum(m.repeats_us) for m in self.measurements)
        cpu = sum(sum(m.repeats_cpu_us) for m in self.measurements)
        return cpu / wall if wall > 0 and cpu > 0 else None

    def footprint_of(self, label: str) -> Footprint | None:
        """The memory figure called ``label``, if measured."""
        return next((f for f in self.footprint if f.label == label), None)

    @property
    def errors(self) -> list[str]:
        """One line per failed run, per traced run that lost spans, per failed memory figure."""
        lines = [
            f"{m.scenario} / {m.implementation}: {m.problem}"
            for m in self.measurements
            if m.problem is not None
        ]
        lines += [f"memory, {f.label}: {f.error}" for f in self.footprint if f.error]
        if self.rss is not None and self.rss.error:
            lines.append(f"memory, RSS over {self.rss.events:,} events: {self.rss.error}")
        return lines

    def _ratio_target(
        self, scenario: str, label: str, top: str, bottom: str, op: Op, limit: float
    ) -> Target:
        names = SHORT_NAMES
        invalid = [
            f"{names[m.implementation]}: {m.problem}"
            for m in (self.get(scenario, top), self.get(scenario, bottom))
            if m is not None and m.problem is not None
        ]
        return Target(
            label,
            f"{names[top]} / {names[bottom]}",
            self.ratio(scenario, top, bottom),
            op,
            limit,
            invalid="; ".join(invalid) or None,
        )

    def targets(self) -> tuple[Target, ...]:
        """The targets as ratios and sizes of this run's figures, in the design's order."""
        untraced_events = "event delivery to another service thread, untraced"
        untraced_calls = "command round trip, untraced"
        return (
            self._ratio_target(EVENTS, untraced_events, "obvious", "bus", ">=", 10.0),
            self._ratio_target(EVENTS, untraced_events, "bus", "floor", "<=", 1.5),
            self._ratio_target(
                EVENTS,
                "event delivery, traced lossless, app provider + BatchSpanProcessor",
                "obvious",
                "bus-app",
                ">=",
                1.5,
            ),
            self._ratio_target(
                EVENTS,
                "event delivery, traced lossless, own provider writing a trace file",
                "obvious",
                "bus-file",
                ">=",
                2.0,
            ),
            self._ratio_target(COMMANDS, untraced_calls, "obvious", "bus", ">", 1.0),
            self._ratio_target(COMMANDS, untraced_calls, "bus", "floor", "<=", 1.3),
            self._ratio_target(
                COMMANDS,
                "command round trip, traced lossless, own provider (ring)",
                "bus-ring",
                "bus",
                "<=",
                1.3,
            ),
            self._ratio_target(
                COMMANDS,
                "command round trip, traced lossless, app provider + BatchSpanProcessor",
                "bus-app",
                "bus",
                "<=",
                1.3,
            ),
            self._queued_target(),
            self._ring_target(),
            self._rss_target(),
        )

    def _queued_target(self) -> Target:
        figure = self.footprint_of("queued event, traced")
        untraced = self.footprint_of("queued event, untraced")
        detail = ""
        if untraced is not None and untraced.per_item is not None:
            detail = f"untraced: {untraced.per_item:.0f} B"
        return Target(
            "memory: a queued traced event",
            "bytes per event",
            None if figure is None else figure.per_item,
            "<=",
            300,
            unit="B",
            invalid=None if figure is None else figure.error,
            detail=detail,
        )

    def _ring_target(self) -> Target:
        figures = [f for f in self.footprint if f.label.startswith("ring span")]
        errors = [f"{f.label}: {f.error}" for f in figures if f.error]
        values = [(f.per_item, f.label) for f in figures if f.per_item is not None]
        worst = max(values, default=None)
        return Target(
            "memory: a ring span",
            "bytes per span (worse of events, commands)",
            None if worst is None else worst[0],
            "<=",
            400,
            unit="B",
            invalid="; ".join(errors) or None,
            detail="" if worst is None else f"worse: {worst[1].removeprefix('ring span, ')}",
        )

    def _rss_target(self) -> Target:
        rss = self.rss
        detail = f"run with --memory-events {LONG_RUN_EVENTS}" if rss is None else ""
        if rss is not None:
            slope = rss.slope
            if slope is not None:
                detail = f"slope {slope:+.2f} B/event over the second half"
            if rss.events < LONG_RUN_EVENTS:
                detail += f"; {rss.events:,} events, short of {LONG_RUN_EVENTS:,}"
        growth = None if rss is None else rss.growth
        events = LONG_RUN_EVENTS if rss is None else rss.events
        return Target(
            f"memory: RSS flat over {events:,} traced events",
            "RSS at the end / half-way",
            None if growth is None else 1.0 + growth,
            "<=",
            1.0 + FLAT_TOLERANCE,
            invalid=None if rss is None else rss.error,
            detail=detail.removeprefix("; "),
        )
