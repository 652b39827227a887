"""Benchmarks of the bus against plain baselines (DESIGN.md section 10).

Each timed scenario runs on every implementation side by side in one process:
a bare lock-and-queue hand-off, an obvious ``ThreadPoolExecutor`` bus with and
without OpenTelemetry SDK spans, and the real bus with tracing off and on. The
report gives µs per operation and the section 10 targets as PASS/MISS ratios.

Run them with ``python -m benchmarks [--quick] [--json]`` or ``busctl bench``,
or from Python::

    from benchmarks import render, run, to_json

    results = run(quick=True)
    print(render(results))
    for target in results.targets():
        print(target.label, target.verdict)
"""

from __future__ import annotations

from ._baselines import (
    BareHandoff,
    CountingExporter,
    ObviousBus,
    ObviousTracedBus,
    counting_provider,
)
from ._harness import ALL_SCENARIOS, run
from ._report import render, to_json
from ._results import (
    IMPLEMENTATIONS,
    Measurement,
    MemoryReport,
    MemorySample,
    Results,
    Target,
)

__all__ = [
    "ALL_SCENARIOS",
    "IMPLEMENTATIONS",
    "BareHandoff",
    "CountingExporter",
    "Measurement",
    "MemoryReport",
    "MemorySample",
    "ObviousBus",
    "ObviousTracedBus",
    "Results",
    "Target",
    "counting_provider",
    "render",
    "run",
    "to_json",
]
