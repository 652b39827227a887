"""Benchmarks of the bus against plain baselines (DESIGN.md section 12).

Each timed scenario runs on every implementation side by side in one process,
pinned to one CPU: a ``SimpleQueue`` hand-off (the floor), an obvious
``ThreadPoolExecutor`` bus with and without OpenTelemetry SDK spans, and the
real bus untraced and traced losslessly three ways (its own provider keeping
spans in its ring; the application's provider with a ``BatchSpanProcessor``;
its own provider writing a trace file). The memory scenario measures what a
queued event and a ring span hold, and RSS over a long run. The report gives
µs per operation and the targets as ratios of this run's figures, each PASS,
MISS, or INVALID when a traced side lost spans.

Run them with ``python -m benchmarks [--quick] [--json] [--unpinned]`` or
``busctl bench``, or from Python::

    from benchmarks import render, run, to_json

    results = run(quick=True)
    print(render(results))
    for target in results.targets():
        print(target.scenario, target.verdict)
"""

from __future__ import annotations

from ._baselines import (
    CallFloor,
    CountingExporter,
    EventFloor,
    ObviousBus,
    ObviousTracedBus,
    counting_provider,
)
from ._harness import ALL_SCENARIOS, run
from ._report import render, to_json
from ._results import (
    IMPLEMENTATIONS,
    Footprint,
    Measurement,
    MemorySample,
    Results,
    RssReport,
    Target,
)

__all__ = [
    "ALL_SCENARIOS",
    "IMPLEMENTATIONS",
    "CallFloor",
    "CountingExporter",
    "EventFloor",
    "Footprint",
    "Measurement",
    "MemorySample",
    "ObviousBus",
    "ObviousTracedBus",
    "Results",
    "RssReport",
    "Target",
    "counting_provider",
    "render",
    "run",
    "to_json",
]
