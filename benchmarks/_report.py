"""The report: tables of a run's figures and targets, or one JSON document.

:func:`render` draws the tables with ``rich`` when it is importable and as
aligned plain text otherwise; :func:`to_json` is what ``--json`` prints.

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

from ._results import IMPLEMENTATIONS, Measurement, Results, Target

__all__ = ["render", "to_json"]

# Wide enough for every table; a table is as wide as its cells, never wider.
_RICH_WIDTH = 220


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


def _cell(m: Measurement | None) -> str:
    if m is None:
        return ""
    return _fmt_us(m.best_us) + ("" if m.valid else " !")


def _figures(results: Results) -> _Table | None:
    scenarios = list(dict.fromkeys(m.scenario for m in results.measurements))
    if not scenarios:
        return None
    implementations = [
        key for key in IMPLEMENTATIONS if any(m.implementation == key for m in results.measurements)
    ]
    rows = [
        [IMPLEMENTATIONS[key]] + [_cell(results.get(s, key)) for s in scenarios]
        for key in implementations
    ]
    units = []
    for scenario in scenarios:
        first = next(m for m in results.measurements if m.scenario == scenario)
        units.append(f"{scenario} {first.ops:,} x {first.unit}")
    return _Table(
        f"µs per operation, best of {results.settings.get('repeat', '?')}"
        f" ({'; '.join(units)}); ! = does not count, see below",
        ["implementation", *scenarios],
        rows,
        right=set(range(1, 1 + len(scenarios))),
    )


def _value(t: Target) -> str:
    if t.value is None:
        return "-"
    return f"{t.value:.0f} B" if t.unit == "B" else f"{t.value:.2f}x"


def _bound(t: Target) -> str:
    return f"{t.op} {t.limit:g}{' B' if t.unit == 'B' else 'x'}"


def _targets(results: Results) -> _Table:
    rows = []
    for t in results.targets():
        note = t.detail
        if t.invalid is not None:
            note = f"{t.invalid}; {note}" if note else t.invalid
        rows.append([t.scenario, t.measure, _value(t), _bound(t), t.verdict, note])
    return _Table(
        "performance targets: each from figures of this run",
        ["target", "measured as", "value", "bound", "verdict", "note"],
        rows,
        right={2, 3},
    )


def _footprint(results: Results) -> _Table | None:
    if not results.footprint:
        return None
    rows = []
    for f in results.footprint:
        per = f.per_item
        rows.append(
            [
                f.label,
                f"{f.items:,} {f.item}s",
                "-" if f.error else f"{f.growth / 1024:,.0f} KiB",
                "-" if per is None else f"{per:.0f}",
            ]
        )
    return _Table(
        "memory: Python allocations (tracemalloc) held per item, tracing lossless",
        ["what", "items", "held", "bytes each"],
        rows,
        right={1, 2, 3},
    )


def _rss(results: Results) -> _Table | None:
    rss = results.rss
    if rss is None or not rss.samples:
        return None
    keys = list(dict.fromkeys(k for s in rss.samples for k in s.bus_sizes))
    ends = [s for s in rss.samples if s.label in ("start", "50%", "100%", "drained")]
    rows = []
    for s in ends:
        now = "-" if s.rss_kib is None else f"{s.rss_kib / 1024:.1f}"
        rows.append(
            [s.label, f"{s.fired:,}", f"{s.delivered:,}", now, f"{s.max_rss_kib / 1024:.1f}"]
            + [f"{s.bus_sizes[k]:,}" if k in s.bus_sizes else "-" for k in keys]
        )
    title = f"memory: {rss.events:,} traced events through the bus in {rss.seconds:.1f} s"
    slope = rss.slope
    if slope is not None:
        title += f"; RSS {slope:+.2f} bytes/event over the second half; MiB"
    return _Table(
        title,
        ["point", "fired", "delivered", "RSS", "peak RSS", *keys],
        rows,
        right=set(range(1, 5 + len(keys))),
    )


def _tables(results: Results) -> list[_Table]:
    made = [
        _figures(results),
        _footprint(results),
        _rss(results),
        _targets(results),
    ]
    return [table for table in made if table is not None]


def _pinning(results: Results) -> str:
    cpu = results.settings.get("pinned_cpu")
    if cpu is not None:
        return f"pinned to CPU {cpu} (every thread)"
    if results.settings.get("pin"):
        return "unpinned (this platform cannot pin)"
    return "unpinned"


_SPEEDUPS = {
    "c": ", events with the C accelerator",
    "python": ", events in pure Python (BUS_PURE_PYTHON, or not built)",
}


def _header(results: Results) -> str:
    env = results.environment
    return (
        f"bus benchmarks: Python {env.get('python', '?')} on {env.get('platform', '?')},"
        f" {env.get('cpus', '?')} CPUs, {_pinning(results)}"
        f"{_SPEEDUPS.get(str(env.get('speedups')), '')}"
        f"{', quick' if results.settings.get('quick') else ''}"
    )


def _footer(results: Results) -> list[str]:
    traced = [m for m in results.measurements if m.spans_expected is not None]
    lines = []
    if traced and all(m.spans_ok for m in traced):
        total = sum(m.spans_exported or 0 for m in traced)
        lines.append(
            f"Traced runs are timed until exported, and exported every span"
            f" ({total:,} in the timed regions, none dropped)."
        )
    share = results.cpu_share
    if share is not None:
        lines.append(
            f"This process had {share:.0%} of the timed wall time as CPU time"
            f"{' on its one CPU' if results.settings.get('pinned_cpu') is not None else ''};"
            " the rest went to other processes, or to waiting."
        )
    lines += [f"! {line}" for line in results.errors]
    return lines


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


def _render_rich(results: Results, color: bool) -> str:
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=_RICH_WIDTH,
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
    )
    console.print(_header(results), markup=False)
    verdict_style = {"PASS": "bold green", "MISS": "bold red", "INVALID": "bold yellow"}
    for spec in _tables(results):
        # The title on a line of its own: as a table's title it would wrap
        # at the table's width.
        console.print(spec.title, markup=False)
        table = Table(header_style="bold")
        for i, header in enumerate(spec.headers):
            table.add_column(header, justify="right" if i in spec.right else "left")
        for row in spec.rows:
            table.add_row(*(_styled(cell, verdict_style) for cell in row))
        console.print(table)
    for line in _footer(results):
        console.print(line, markup=False, style="yellow" if line.startswith("!") else None)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _styled(cell: str, styles: Mapping[str, str]) -> Any:
    from rich.text import Text

    return Text(cell, style=styles.get(cell, ""))


def render(results: Results, *, color: bool = False) -> str:
    """The results as tables: µs/op, memory, and the targets with their verdicts.

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
            "repeats_cpu_us": list(m.repeats_cpu_us),
            "cpus": sorted(m.cpus),
            "spans_expected": m.spans_expected,
            "spans_exported": m.spans_exported,
            "spans_dropped": m.spans_dropped,
            "valid": m.valid,
            "error": m.problem,
        }

    rss = results.rss
    document: dict[str, Any] = {
        "environment": dict(results.environment),
        "settings": dict(results.settings),
        "cpu_share": results.cpu_share,
        "measurements": [measurement(m) for m in results.measurements],
        "footprint": [
            {
                "label": f.label,
                "item": f.item,
                "items": f.items,
                "growth_bytes": f.growth,
                "bytes_per_item": f.per_item,
                "error": f.error,
            }
            for f in results.footprint
        ],
        "rss": None
        if rss is None
        else {
            "events": rss.events,
            "seconds": rss.seconds,
            "growth": rss.growth,
            "slope_bytes_per_event": rss.slope,
            "flat": rss.flat,
            "error": rss.error,
            "samples": [
                {
                    "label": s.label,
                    "fired": s.fired,
                    "delivered": s.delivered,
                    "max_rss_kib": s.max_rss_kib,
                    "rss_kib": s.rss_kib,
                    "bus_sizes": dict(s.bus_sizes),
                }
                for s in rss.samples
            ],
        },
        "targets": [
            {
                "scenario": t.scenario,
                "measure": t.measure,
                "value": t.value,
                "op": t.op,
                "limit": t.limit,
                "unit": t.unit,
                "verdict": t.verdict,
                "invalid": t.invalid,
                "detail": t.detail,
            }
            for t in results.targets()
        ],
        "errors": results.errors,
    }
    return json.dumps(document, indent=2)
