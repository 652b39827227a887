"""Chrome trace-event export: what Perfetto needs, and slices that nest per thread."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from busctl.traces import Span, read_trace_file, to_chrome

pytestmark = pytest.mark.timeout(30)

SAMPLE = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"


def check_perfetto_fields(data):
    """The fields Perfetto's JSON importer reads, with the right types."""
    assert isinstance(data["traceEvents"], list)
    json.dumps(data, allow_nan=False)  # strict JSON
    names = {}
    for event in data["traceEvents"]:
        assert event["ph"] in {"M", "X", "b", "e", "s", "f"}
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        if event["ph"] == "M":
            assert event["name"] in {"process_name", "thread_name", "thread_sort_index"}
            names[(event["name"], event["pid"], event["tid"])] = event["args"]
            continue
        assert isinstance(event["name"], str)
        assert event["name"]
        assert isinstance(event["ts"], int | float)
        assert event["ts"] >= 0
        if event["ph"] == "X":
            assert isinstance(event["dur"], int | float)
            assert event["dur"] >= 0
            assert ("thread_name", event["pid"], event["tid"]) in names
        if event["ph"] in {"b", "e", "s", "f"}:
            assert "id" in event
            assert "cat" in event
    return names


def check_nesting(data):
    """On each thread, complete slices nest: none overlaps another partially."""
    by_thread = defaultdict(list)
    for event in data["traceEvents"]:
        if event["ph"] == "X":
            by_thread[(event["pid"], event["tid"])].append(
                (event["ts"], event["ts"] + event["dur"])
            )
    for slices in by_thread.values():
        stack = []
        for start, end in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, "slices overlap on one thread"
            stack.append(end)


def test_the_sample_exports_with_one_track_per_service_thread():
    spans = read_trace_file(SAMPLE).spans
    data = to_chrome(spans)
    names = check_perfetto_fields(data)
    check_nesting(data)
    threads = {args["name"] for (kind, _, _), args in names.items() if kind == "thread_name"}
    assert {"bus:sample/lights", "bus:sample/automation", "MainThread"} <= threads
    processes = {args["name"] for (kind, _, _), args in names.items() if kind == "process_name"}
    assert processes == {"sample"}
    placed = [e for e in data["traceEvents"] if e["ph"] in {"X", "b"}]
    assert len(placed) == len(spans)
    assert any(e["ph"] == "s" for e in data["traceEvents"])  # sender -> handler arrows


def span(span_id, start, end, thread="worker", parent=None):
    return Span(
        trace_id="1" * 32,
        span_id=span_id,
        parent_id=parent,
        name=f"op{span_id[-1]}",
        kind="server",
        start_ns=start,
        end_ns=end,
        attributes={"thread.name": thread, "bus.service": thread},
        resource={"service.name": "home"},
    )


def test_spans_overlapping_on_one_thread_go_to_an_async_track():
    spans = [
        span("a" * 16, 0, 10_000),
        span("b" * 16, 2_000, 5_000),  # nests in a
        span("c" * 16, 8_000, 20_000),  # starts in a, ends after it
        span("d" * 16, 9_000, 12_000, thread="other"),
    ]
    data = to_chrome(spans)
    check_perfetto_fields(data)
    check_nesting(data)
    by_name = defaultdict(list)
    for event in data["traceEvents"]:
        if event["ph"] != "M":
            by_name[event["name"]].append(event)
    assert [e["ph"] for e in by_name["opa"]] == ["X"]
    assert [e["ph"] for e in by_name["opb"]] == ["X"]
    assert [e["ph"] for e in by_name["opc"]] == ["b", "e"]
    begin, end = by_name["opc"]
    assert begin["id"] == end["id"]
    assert begin["cat"] == end["cat"]
    assert end["ts"] - begin["ts"] == pytest.approx(12.0)  # microseconds
    assert [e["ph"] for e in by_name["opd"]] == ["X"]


def test_nothing_to_export_is_an_empty_trace():
    assert to_chrome([])["traceEvents"] == []


def test_replayed_spans_are_shown_as_such():
    from busctl.traces import build_traces, render_traces

    replayed = span("a" * 16, 0, 1_000)
    replayed.links.append(("2" * 32, "3" * 16, {"bus.replay": True}))
    plain = span("b" * 16, 2_000, 3_000)
    assert replayed.replayed
    assert not plain.replayed
    (event,) = [e for e in to_chrome([replayed])["traceEvents"] if e["ph"] == "X"]
    assert event["args"]["replayed"] is True
    text = render_traces(build_traces([replayed, plain]))
    assert text.count("[replayed]") == 1
