"""What a benchmark run measured, and the DESIGN.md section 10 targets.

Frozen dataclasses: :class:`Results` holds one :class:`Measurement` per
scenario and implementation and the :class:`MemoryReport`; its
:meth:`Results.targets` turns them into the section 10 ratios.

Example::

    from benchmarks import run

    results = run(["command_roundtrip"], quick=True)
    print(results.ratio("command_roundtrip", "bus-off", "bare"))
    for target in results.targets():
        print(target.label, target.verdict)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FLAT_TOLERANCE",
    "IMPLEMENTATIONS",
    "Measurement",
    "MemoryReport",
    "MemorySample",
    "Results",
    "Target",
]

IMPLEMENTATIONS: dict[str, str] = {
    "bare": "bare hand-off",
    "obvious": "obvious pool",
    "obvious-traced": "obvious + SDK spans",
    "bus-off": "bus",
    "bus-on": "bus + tracing",
    "bus-validate": "bus, validate=True",
}
"""Implementation keys, in table order, with their column titles."""

FLAT_TOLERANCE = 0.10
"""Peak RSS at the end of the memory run may exceed the half-way figure by this much."""


@dataclass(frozen=True)
class Measurement:
    """One implementation in one timed scenario, over all repeats.

    Attributes:
        scenario: the scenario's name.
        implementation: a key of :data:`IMPLEMENTATIONS`.
        unit: what one operation is ("call", "delivered event").
        ops: operations timed in each repeat.
        repeats_us: microseconds per operation of each completed repeat.
        spans_expected: spans the timed regions should have exported, summed
            over the repeats; ``None`` for untraced runs.
        spans_exported: spans the counting exporter saw in those regions.
        error: why the implementation stopped, if it did.
    """

    scenario: str
    implementation: str
    unit: str
    ops: int
    repeats_us: tuple[float, ...] = ()
    spans_expected: int | None = None
    spans_exported: int | None = None
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
        return self.spans_exported == self.spans_expected


@dataclass(frozen=True)
class MemorySample:
    """Process and bus sizes at one point of the memory run.

    Attributes:
        label: where in the run ("start", "10%", "50%", "100%", "drained").
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


@dataclass(frozen=True)
class MemoryReport:
    """The memory scenario: a long run of traced events through the real bus.

    Attributes:
        events: events fired.
        seconds: wall time from the first fire until all were delivered.
        samples: sizes at the start, 10%, 50% and 100% of the firing, and drained.
        error: why the run failed, if it did.
    """

    events: int
    seconds: float = 0.0
    samples: tuple[MemorySample, ...] = ()
    error: str | None = None

    def _sample(self, label: str) -> MemorySample | None:
        return next((s for s in self.samples if s.label == label), None)

    @property
    def growth(self) -> float | None:
        """Relative growth of peak RSS from 50% to 100% of the run."""
        half, end = self._sample("50%"), self._sample("100%")
        if half is None or end is None or half.max_rss_kib <= 0:
            return None
        return (end.max_rss_kib - half.max_rss_kib) / half.max_rss_kib

    @property
    def bytes_per_event(self) -> float | None:
        """Peak RSS growth from 50% to 100%, per event fired in between."""
        half, end = self._sample("50%"), self._sample("100%")
        if half is None or end is None or end.fired <= half.fired:
            return None
        return (end.max_rss_kib - half.max_rss_kib) * 1024 / (end.fired - half.fired)

    @property
    def flat(self) -> bool | None:
        """Whether memory stayed flat (growth within :data:`FLAT_TOLERANCE`)."""
        growth = self.growth
        return None if growth is None else growth <= FLAT_TOLERANCE


@dataclass(frozen=True)
class Target:
    """One performance target of DESIGN.md section 10, checked in this run.

    Attributes:
        label: what is compared, as ``numerator / denominator``.
        ratio: the ratio measured, ``None`` if a side is missing.
        limit: the bound the ratio must meet.
        at_most: ``True`` if the ratio must be at most ``limit``, else at least.
        detail: a note shown after the verdict.
    """

    label: str
    ratio: float | None
    limit: float
    at_most: bool
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        """PASS (``True``), MISS (``False``) or not measured (``None``)."""
        if self.ratio is None:
            return None
        return self.ratio <= self.limit if self.at_most else self.ratio >= self.limit

    @property
    def verdict(self) -> str:
        """``PASS``, ``MISS`` or ``n/a``."""
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


@dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured.

    Attributes:
        measurements: the timed scenarios, one per scenario and implementation.
        memory: the memory scenario, if it ran.
        settings: operations per scenario, repeats, quick mode.
        environment: Python, platform, CPUs, library versions.
    """

    measurements: tuple[Measurement, ...]
    memory: MemoryReport | None
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
    def errors(self) -> list[str]:
        """One line per failed run and per span count that did not add up."""
        lines = [
            f"{m.scenario} / {m.implementation}: {m.error}" for m in self.measurements if m.error
        ]
        lines += [
            f"{m.scenario} / {m.implementation}: exported {m.spans_exported} spans,"
            f" expected {m.spans_expected}"
            for m in self.measurements
            if m.spans_ok is False
        ]
        if self.memory is not None and self.memory.error:
            lines.append(f"memory: {self.memory.error}")
        return lines

    def targets(self) -> tuple[Target, ...]:
        """The section 10 targets as ratios of this run's numbers."""
        memory = self.memory
        growth = None if memory is None else memory.growth
        flat_detail = "" if growth is None else f"peak RSS {growth:+.1%} from 50% to 100%"
        if growth is not None and self.settings.get("quick"):
            # Bounded buffers may still be filling in a short run.
            flat_detail += "; too short to judge, see a full run"
        return (
            Target(
                "roundtrip: bus / bare",
                self.ratio("command_roundtrip", "bus-off", "bare"),
                1.5,
                at_most=True,
            ),
            Target(
                "roundtrip: bus + tracing / bus",
                self.ratio("command_roundtrip", "bus-on", "bus-off"),
                1.3,
                at_most=True,
            ),
            Target(
                "events: obvious / bus",
                self.ratio("event_throughput", "obvious", "bus-off"),
                10.0,
                at_most=False,
            ),
            Target(
                "events: obvious / bus + tracing",
                self.ratio("event_throughput", "obvious", "bus-on"),
                2.0,
                at_most=False,
            ),
            Target(
                "memory: peak RSS 100% / 50%",
                None if growth is None else 1.0 + growth,
                1.0 + FLAT_TOLERANCE,
                at_most=True,
                detail=flat_detail,
            ),
        )
