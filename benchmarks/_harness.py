"""The harness: every implementation side by side in one process, best of R.

Each repeat runs every implementation of a scenario once, in an order rotated
from repeat to repeat, so drift in the machine's speed (another process, CPU
frequency) spreads over all of them instead of favouring whichever ran first;
the best repeat of each is the figure reported. The memory scenario runs first,
while the process's peak RSS has not yet been raised by other work.

Example::

    from benchmarks import render, run

    print(render(run(["event_throughput"], n=10_000, repeat=3)))
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

from ._bus_services import bus_class
from ._memory import run_memory
from ._results import Measurement, MemoryReport, Results
from ._scenarios import SCENARIOS, Timing

__all__ = ["ALL_SCENARIOS", "run"]

MEMORY = "memory"
ALL_SCENARIOS: tuple[str, ...] = (*SCENARIOS, MEMORY)
"""Every scenario name, in report order."""

DEFAULT_REPEAT = 5
QUICK_REPEAT = 2
MEMORY_EVENTS = 1_000_000
QUICK_MEMORY_EVENTS = 50_000


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
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _measure(
    name: str,
    n: int,
    repeat: int,
    bus_error: str | None,
    progress: Callable[[str], None],
) -> list[Measurement]:
    scenario = SCENARIOS[name]
    implementations = scenario.implementations
    timings: dict[str, list[Timing]] = {key: [] for key in implementations}
    errors: dict[str, str] = {}
    if bus_error is not None:
        errors.update((key, bus_error) for key in implementations if key.startswith("bus"))
    for r in range(repeat):
        shift = r % len(implementations)
        for key in implementations[shift:] + implementations[:shift]:
            if key in errors:
                continue
            progress(f"{name}: {key} ({r + 1}/{repeat})")
            try:
                timings[key].append(scenario.run_once(key, n, _warmup(n)))
            except Exception as exc:
                errors[key] = f"{type(exc).__name__}: {exc}"
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
                spans_expected=sum(t.spans_expected or 0 for t in traced) if traced else None,
                spans_exported=sum(t.spans_exported or 0 for t in traced) if traced else None,
                error=errors.get(key),
            )
        )
    return measurements


def run(
    scenarios: Sequence[str] | None = None,
    n: int | None = None,
    repeat: int | None = None,
    quick: bool = False,
    *,
    memory_events: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Results:
    """Run the benchmark scenarios and return what they measured.

    Blocks for the whole run (a full run takes a minute or two, ``quick`` a
    few seconds). Failures of one implementation are recorded in the results,
    not raised, so the others still run.

    Args:
        scenarios: names from :data:`ALL_SCENARIOS`; all of them if ``None``.
        n: operations per repeat for every scenario (events for ``memory``);
            by default each scenario's own, smaller with ``quick``.
        repeat: repeats per implementation, the best reported (default 5,
            2 with ``quick``).
        quick: small sizes, for a check that finishes in seconds.
        memory_events: events for the memory scenario, overriding ``n``.
        progress: called with a short line before each run.

    Raises:
        ValueError: an unknown scenario name, or ``n`` or ``repeat`` below 1.
    """
    names = list(dict.fromkeys(scenarios)) if scenarios else list(ALL_SCENARIOS)
    unknown = [name for name in names if name not in ALL_SCENARIOS]
    if unknown:
        raise ValueError(
            f"unknown scenario {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(ALL_SCENARIOS)}"
        )
    if n is not None and n < 1:
        raise ValueError("n must be at least 1")
    repeat = repeat if repeat is not None else QUICK_REPEAT if quick else DEFAULT_REPEAT
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    report = progress or (lambda line: None)
    bus_error = _bus_unavailable()

    ops: dict[str, int] = {}
    memory: MemoryReport | None = None
    if MEMORY in names:
        events = memory_events or n or (QUICK_MEMORY_EVENTS if quick else MEMORY_EVENTS)
        ops[MEMORY] = events
        report(f"memory: {events:,} traced events")
        memory = run_memory(events)
    measurements: list[Measurement] = []
    for name in names:
        if name == MEMORY:
            continue
        scenario = SCENARIOS[name]
        ops[name] = n or (scenario.quick_n if quick else scenario.default_n)
        measurements += _measure(name, ops[name], repeat, bus_error, report)
    settings = {"quick": quick, "repeat": repeat, "ops": ops}
    return Results(tuple(measurements), memory, settings, _environment())
