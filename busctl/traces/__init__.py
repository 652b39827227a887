"""Trace files on disk: read, show, export and replay what a bus recorded.

    from busctl.traces import read_trace_file, render_traces, to_chrome

    trace_file = read_trace_file("traces/sample.jsonl")
    print(render_traces(trace_file.traces()))

The format is OTLP JSON lines (``docs/traces.md``); ``bus.otlp`` encodes and
decodes one line, this package handles files, trees, exports and replay.
"""

from __future__ import annotations

from ._chrome import to_chrome
from ._file import (
    MAX_LINE_BYTES,
    LineError,
    TraceFile,
    TraceFileError,
    parse_trace_lines,
    parse_traces_data,
    read_trace_file,
    write_trace_file,
)
from ._model import NOT_JSON, Span, json_value
from ._replay import (
    DEFAULT_MAX_GAP,
    BusTarget,
    ClientTarget,
    Difference,
    Outcome,
    Reason,
    ReasonCode,
    Replayer,
    ReplayPlan,
    ReplayReport,
    Step,
    plan_replay,
)
from ._show import TraceFilter, render_trace, render_traces, summary_json
from ._tree import Trace, build_traces

__all__ = [
    "DEFAULT_MAX_GAP",
    "MAX_LINE_BYTES",
    "NOT_JSON",
    "BusTarget",
    "ClientTarget",
    "Difference",
    "LineError",
    "Outcome",
    "Reason",
    "ReasonCode",
    "ReplayPlan",
    "ReplayReport",
    "Replayer",
    "Span",
    "Step",
    "Trace",
    "TraceFile",
    "TraceFileError",
    "TraceFilter",
    "build_traces",
    "json_value",
    "parse_trace_lines",
    "parse_traces_data",
    "plan_replay",
    "read_trace_file",
    "render_trace",
    "render_traces",
    "summary_json",
    "to_chrome",
    "write_trace_file",
]
