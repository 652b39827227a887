"""Benchmark results, the DESIGN.md section 10 targets, and their rendering.

Results are frozen dataclasses; :func:`render` turns them into tables (with
``rich`` when it is importable, aligned plain text otherwise) and
:func:`to_json` into one JSON document for ``--json``.

Example::

    from benchmarks import render, run, to_json

    results = run(["command_roundtrip"], quick=True)
    print(render(results))
    print(to_json(results))
"""

from __future__ import annotations

import io
import json
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
    "render",
    "to_json",
]

IMPLEMENTATIONS: dict[str, str] = {
    "bare": "bare hand-off",
    "obvious": "obvious pool",
    "obvious-traced": "obvious + SDK spans",
    "bus-off": "bus",
    "bus-on": "bus + tracing",
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
        lines = [f"{m.scenario} / {m.implementation}: {m.error}" for m in self.measurements if m.error]
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
        return (
            Target("roundtrip: bus / bare", self.ratio("command_roundtrip", "bus-off", "bare"),
                   1.5, at_most=True),
            Target("roundtrip: bus + tracing / bus",
                   self.ratio("command_roundtrip", "bus-on", "bus-off"), 1.3, at_most=True),
            Target("events: obvious / bus", self.ratio("event_throughput", "obvious", "bus-off"),
                   10.0, at_most=False),
            Target("events: obvious / bus + tracing",
                   self.ratio("event_throughput", "obvious", "bus-on"), 2.0, at_most=False),
            Target("memory: peak RSS 100% / 50%",
                   None if growth is None else 1.0 + growth, 1.0 + FLAT_TOLERANCE,
                   at_most=True, detail=flat_detail),
        )


# A table as data, drawn by rich or as plain text.
@dataclass
class _Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)


def _fmt_us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _tables(results: Results) -> list[_Table]:
    scenarios = list(dict.fromkeys(m.scenario for m in results.measurements))
    implementations = [
        key for key in IMPLEMENTATIONS if any(m.implementation == key for m in results.measurements)
    ]
    tables: list[_Table] = []
    if scenarios:
        rows = []
        for scenario in scenarios:
            first = next(m for m in results.measurements if m.scenario == scenario)
            row = [scenario, f"{first.ops:,} x {first.unit}"]
            for key in implementations:
                m = results.get(scenario, key)
                cell = "" if m is None else _fmt_us(m.best_us)
                if m is not None and (m.error or m.spans_ok is False):
                    cell += " !"
                row.append(cell)
            rows.append(row)
        tables.append(
            _Table(
                f"µs per operation, best of {results.settings.get('repeat', '?')}",
                ["scenario", "ops"] + [IMPLEMENTATIONS[k] for k in implementations],
                rows,
                right=set(range(1, 2 + len(implementations))),
            )
        )
    memory = results.memory
    if memory is not None and memory.samples:
        rows = []
        for s in memory.samples:
            sizes = ", ".join(f"{k} {v:,}" for k, v in s.bus_sizes.items()) or "-"
            rss = "-" if s.rss_kib is None else f"{s.rss_kib / 1024:.1f}"
            rows.append(
                [s.label, f"{s.fired:,}", f"{s.delivered:,}",
                 f"{s.max_rss_kib / 1024:.1f}", rss, sizes]
            )
        per_event = memory.bytes_per_event
        title = f"memory: {memory.events:,} traced events through the bus in {memory.seconds:.1f} s"
        if per_event is not None:
            title += f", {per_event:+.1f} bytes/event from 50% to 100%"
        tables.append(
            _Table(
                title,
                ["point", "fired", "delivered", "peak RSS MiB", "RSS MiB", "bus sizes"],
                rows,
                right={1, 2, 3, 4},
            )
        )
    rows = []
    for t in results.targets():
        ratio = "-" if t.ratio is None else f"{t.ratio:.2f}"
        bound = ("<= " if t.at_most else ">= ") + f"{t.limit:g}"
        rows.append([t.label, ratio, bound, t.verdict, t.detail])
    tables.append(_Table("DESIGN.md section 10 targets", ["target", "ratio", "target", "", ""],
                         rows, right={1, 2}))
    return tables


def _header(results: Results) -> str:
    env = results.environment
    return (
        f"bus benchmarks: Python {env.get('python', '?')} on {env.get('platform', '?')},"
        f" {env.get('cpus', '?')} CPUs{', quick' if results.settings.get('quick') else ''}"
    )


def _render_plain(results: Results) -> str:
    out = [_header(results), ""]
    for table in _tables(results):
        widths = [len(h) for h in table.headers]
        for row in table.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: list[str], table: _Table = table, widths: list[int] = widths) -> str:
            parts = [
                c.rjust(w) if i in table.right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        out += [table.title, line(table.headers), "  ".join("-" * w for w in widths).rstrip()]
        out += [line(row) for row in table.rows]
        out.append("")
    out += _footer(results)
    return "\n".join(out).rstrip() + "\n"


def _footer(results: Results) -> list[str]:
    traced = [m for m in results.measurements if m.spans_expected is not None]
    lines = []
    if traced and all(m.spans_ok for m in traced):
        total = sum(m.spans_exported or 0 for m in traced)
        lines.append(f"Traced runs exported every expected span ({total:,} in the timed regions).")
    lines += [f"! {line}" for line in results.errors]
    return lines


def _render_rich(results: Results, color: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=120,
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )
    console.print(_header(results), markup=False)
    verdict_style = {"PASS": "bold green", "MISS": "bold red"}
    for spec in _tables(results):
        table = Table(title=spec.title, title_justify="left", header_style="bold")
        for i, header in enumerate(spec.headers):
            table.add_column(header, justify="right" if i in spec.right else "left")
        for row in spec.rows:
            table.add_row(*(_styled(cell, verdict_style) for cell in row))
        console.print(table)
    for line in _footer(results):
        console.print(line, markup=False, style="yellow" if line.startswith("!") else None)
    return buffer.getvalue()


def _styled(cell: str, styles: Mapping[str, str]) -> Any:
    from rich.text import Text

    return Text(cell, style=styles.get(cell, ""))


def render(results: Results, *, color: bool = False) -> str:
    """The results as tables: µs/op, memory, and the targets with PASS/MISS.

    Uses ``rich`` when it is importable, plain aligned text otherwise.

    Args:
        results: what :func:`benchmarks.run` returned.
        color: emit ANSI colours (rich only); for a terminal.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        return _render_plain(results)
    return _render_rich(results, color)


def to_json(results: Results) -> str:
    """The results as one JSON document (µs figures, spans, memory, targets)."""

    def measurement(m: Measurement) -> dict[str, Any]:
        return {
            "scenario": m.scenario,
            "implementation": m.implementation,
            "unit": m.unit,
            "ops": m.ops,
            "best_us": m.best_us,
            "repeats_us": list(m.repeats_us),
            "spans_expected": m.spans_expected,
            "spans_exported": m.spans_exported,
            "error": m.error,
        }

    memory = results.memory
    document: dict[str, Any] = {
        "environment": dict(results.environment),
        "settings": dict(results.settings),
        "measurements": [measurement(m) for m in results.measurements],
        "memory": None
        if memory is None
        else {
            "events": memory.events,
            "seconds": memory.seconds,
            "growth": memory.growth,
            "bytes_per_event": memory.bytes_per_event,
            "flat": memory.flat,
            "error": memory.error,
            "samples": [
                {
                    "label": s.label,
                    "fired": s.fired,
                    "delivered": s.delivered,
                    "max_rss_kib": s.max_rss_kib,
                    "rss_kib": s.rss_kib,
                    "bus_sizes": dict(s.bus_sizes),
                }
                for s in memory.samples
            ],
        },
        "targets": [
            {
                "label": t.label,
                "ratio": t.ratio,
                "limit": t.limit,
                "at_most": t.at_most,
                "verdict": t.verdict,
            }
            for t in results.targets()
        ],
        "errors": results.errors,
    }
    return json.dumps(document, indent=2)
