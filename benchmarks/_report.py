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

from ._results import IMPLEMENTATIONS, Measurement, Results

__all__ = ["render", "to_json"]


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
            row = [scenario, f"{first.ops:,}", first.unit]
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
                ["scenario", "ops", "per"] + [IMPLEMENTATIONS[k] for k in implementations],
                rows,
                right={1} | set(range(3, 3 + len(implementations))),
            )
        )
    memory = results.memory
    if memory is not None and memory.samples:
        keys = list(dict.fromkeys(k for s in memory.samples for k in s.bus_sizes))
        rows = []
        for s in memory.samples:
            rss = "-" if s.rss_kib is None else f"{s.rss_kib / 1024:.1f}"
            rows.append(
                [s.label, f"{s.fired:,}", f"{s.delivered:,}", f"{s.max_rss_kib / 1024:.1f}", rss]
                + [f"{s.bus_sizes[k]:,}" if k in s.bus_sizes else "-" for k in keys]
            )
        per_event = memory.bytes_per_event
        title = f"memory: {memory.events:,} traced events through the bus in {memory.seconds:.1f} s"
        if per_event is not None:
            title += f"; peak RSS {per_event:+.1f} bytes/event from 50% to 100%; RSS in MiB"
        tables.append(
            _Table(
                title,
                ["point", "fired", "delivered", "peak RSS", "RSS", *keys],
                rows,
                right=set(range(1, 5 + len(keys))),
            )
        )
    rows = []
    for t in results.targets():
        ratio = "-" if t.ratio is None else f"{t.ratio:.2f}"
        bound = ("<= " if t.at_most else ">= ") + f"{t.limit:g}"
        rows.append([t.label, ratio, bound, t.verdict, t.detail])
    tables.append(
        _Table(
            "performance targets: each a ratio of two figures above",
            ["target", "ratio", "bound", "verdict", "note"],
            rows,
            right={1, 2},
        )
    )
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
    memory = results.memory
    if memory is not None and memory.samples:
        # Dropping is allowed (and counted) under overload, but it also means
        # the memory figures did not pay for those spans.
        dropped = memory.samples[-1].bus_sizes.get("spans dropped", 0)
        if dropped:
            lines.append(
                f"Note: in the memory run the bus dropped {dropped:,} spans of about"
                f" {2 * memory.events:,} (its span buffer was full)."
            )
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
