"""Chrome trace-event export: what the viewers need, slices that nest, arrows that bind.

The flow checks read the export the way the viewers do: Perfetto's JSON
importer and the catapult viewer behind chrome://tracing both bind a flow v2
end (``bind_id`` with ``flow_out``/``flow_in``) to the very slice that
carries it, and pair a flow's ends in order of start time, file order on a
tie; an end whose start comes first is dropped. ``viewer_arrows`` does the
same, so an arrow it finds is one the viewers draw.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from busctl.traces import Span, build_traces, read_trace_file, to_chrome

pytestmark = pytest.mark.timeout(30)

SAMPLE = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"
T0 = 1_700_000_000_000_000_000


def check_perfetto_fields(data):
    """The fields Perfetto's JSON importer reads, with the right types."""
    assert isinstance(data["traceEvents"], list)
    json.dumps(data, allow_nan=False)  # strict JSON
    names = {}
    for event in data["traceEvents"]:
        assert event["ph"] in {"M", "X"}
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
        assert isinstance(event["dur"], int | float)
        assert event["dur"] >= 0
        assert ("thread_name", event["pid"], event["tid"]) in names
        if "bind_id" in event:
            assert isinstance(event["bind_id"], int)
            assert event["bind_id"] > 0  # catapult ignores a falsy bind_id
            assert event.get("flow_in", False) != event.get("flow_out", False)
    return names


def check_nesting(data):
    """On each thread track, slices nest: none overlaps another partially."""
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


def viewer_arrows(data) -> tuple[list[tuple[dict, dict]], list[dict]]:
    """``(arrows drawn as (from, to) slice events, flow ends left unbound)``.

    Pairs flow v2 ends as both viewers do: in order of start, then of the
    file; each ``flow_in`` joins the last ``flow_out`` of its ``bind_id``
    seen before it (one source may reach many); one with none is dropped.
    """
    ends = [(i, e) for i, e in enumerate(data["traceEvents"]) if "bind_id" in e]
    ends.sort(key=lambda item: (item[1]["ts"], item[0]))
    sources: dict[int, dict] = {}
    arrows, unbound = [], []
    for _, event in ends:
        if event.get("flow_out"):
            assert event["bind_id"] not in sources, "two slices leave by one bind_id"
            sources[event["bind_id"]] = event
        elif event["bind_id"] in sources:
            arrows.append((sources[event["bind_id"]], event))
        else:
            unbound.append(event)
    return arrows, unbound


def slices_by_span(data) -> dict[str, dict]:
    return {
        e["args"]["span_id"]: e
        for e in data["traceEvents"]
        if e["ph"] == "X" and "from_span_id" not in e["args"]
    }


def check_flows(data, spans):
    """Every arrow binds, and they are exactly the arrows the spans call for.

    A flow end sits on a slice of a real track: a span's own slice, or a
    zero-length marker inside it on the same track. The arrows drawn go from
    each parent to its children that are handlers or are drawn on another
    track, and from each linked span to the span that links it.
    """
    slices = slices_by_span(data)
    for event in data["traceEvents"]:
        if "from_span_id" in event["args"]:  # a marker: inside its span's slice, same track
            host = slices[event["args"]["span_id"]]
            assert (host["pid"], host["tid"]) == (event["pid"], event["tid"])
            assert host["ts"] <= event["ts"] <= host["ts"] + host["dur"]
            assert event["dur"] == 0
    arrows, unbound = viewer_arrows(data)
    assert unbound == [], "flow ends the viewers drop"
    drawn = {(source["args"]["span_id"], target["args"]["span_id"]) for source, target in arrows}
    assert len(drawn) == len(arrows), "an arrow drawn twice"
    ids = {s.span_id for s in spans}
    expected = set()
    for span in spans:
        track = (slices[span.span_id]["pid"], slices[span.span_id]["tid"])
        parent = slices.get(span.parent_id or "")
        if parent is not None and (
            span.kind in ("server", "consumer") or (parent["pid"], parent["tid"]) != track
        ):
            expected.add((span.parent_id, span.span_id))
        expected.update((linked, span.span_id) for _, linked, _ in span.links if linked in ids)
    assert drawn == expected
    return arrows


def track_names(data) -> dict[tuple[int, int], str]:
    return {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in data["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }


def test_the_sample_exports_with_one_track_per_service_thread_and_every_arrow_binds():
    trace_file = read_trace_file(SAMPLE)
    spans = trace_file.spans
    data = to_chrome(spans)
    names = check_perfetto_fields(data)
    check_nesting(data)
    threads = {args["name"] for (kind, _, _), args in names.items() if kind == "thread_name"}
    assert {"bus:sample/lights", "bus:sample/automation", "MainThread"} <= threads
    assert "automation" not in threads  # no row named after a calling service
    processes = {args["name"] for (kind, _, _), args in names.items() if kind == "process_name"}
    assert processes == {"sample"}
    assert len(slices_by_span(data)) == len(spans)
    arrows = check_flows(data, spans)
    hops = [s for s in spans if s.kind in ("server", "consumer") and s.parent is not None]
    assert len(hops) > 20
    # and one to each call drawn on an overlap lane: the evening scene's calls
    # run in parallel, two of them on lanes (which have arrows in and out)
    names_by_track = track_names(data)
    on_lanes = {
        e["args"]["span_id"]
        for e in slices_by_span(data).values()
        if "(overlap" in names_by_track[(e["pid"], e["tid"])]
    }
    assert len(on_lanes) == 2
    assert len(arrows) == len(hops) + len(on_lanes)
    for lane_span in on_lanes:
        assert any(s["args"]["span_id"] == lane_span for s, _ in arrows)
        assert any(t["args"]["span_id"] == lane_span for _, t in arrows)


def test_a_call_made_in_a_handler_is_drawn_nested_in_it_on_its_thread():
    spans = read_trace_file(SAMPLE).spans
    data = to_chrome(spans)
    names = track_names(data)
    slices = slices_by_span(data)
    calls = [
        s
        for s in spans
        if s.kind in ("client", "producer") and s.parent is not None and s.parent.kind == "server"
    ]
    assert len(calls) >= 5
    for call in calls:
        handler = call.parent
        assert handler is not None
        event, outer = slices[call.span_id], slices[handler.span_id]
        assert names[(event["pid"], event["tid"])].startswith(handler.thread)
        if (event["pid"], event["tid"]) == (outer["pid"], outer["tid"]):
            assert outer["ts"] <= event["ts"]
            assert event["ts"] + event["dur"] <= outer["ts"] + outer["dur"]
    # lights.get("hall"), called by the automation's status command, in its slice
    nested = [c for c in calls if names[(slices[c.span_id]["pid"], slices[c.span_id]["tid"])]
              == c.parent.thread]  # fmt: skip
    assert nested


def span(span_id, start, end, thread="worker", parent=None, kind="server", **extra):
    return Span(
        trace_id="1" * 32,
        span_id=span_id,
        parent_id=parent,
        name=f"op{span_id[-1]}",
        kind=kind,
        start_ns=start,
        end_ns=end,
        attributes={"thread.name": thread, "bus.service": thread, "rpc.system.name": "bus"},
        resource={"service.name": "home"},
        **extra,
    )


def test_spans_overlapping_on_one_thread_go_to_an_overlap_lane_with_their_arrows():
    spans = [
        span("a" * 16, 0, 10_000),
        span("b" * 16, 2_000, 5_000, parent="a" * 16, kind="client"),  # nests in a
        span("c" * 16, 8_000, 20_000, parent="a" * 16, kind="client"),  # outlives a
        span("d" * 16, 9_000, 12_000, thread="other", parent="c" * 16),
    ]
    for s in spans[1:3]:
        del s.attributes["thread.name"]  # a call: on its handler's thread
    build_traces(spans)
    data = to_chrome(spans)
    check_perfetto_fields(data)
    check_nesting(data)
    names = track_names(data)
    slices = slices_by_span(data)
    track = {s: names[(slices[s * 16]["pid"], slices[s * 16]["tid"])] for s in "abcd"}
    assert track == {"a": "worker", "b": "worker", "c": "worker (overlap 1)", "d": "other"}
    assert slices["c" * 16]["dur"] == pytest.approx(12.0)  # microseconds
    arrows = check_flows(data, spans)
    # a -> c (c is drawn on the lane, not nested in a) and c -> d (a handler)
    assert len(arrows) == 2
    sort_index = {
        e["tid"]: e["args"]["sort_index"]
        for e in data["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_sort_index"
    }
    lane, thread = slices["c" * 16]["tid"], slices["a" * 16]["tid"]
    assert sort_index[thread] < sort_index[lane] < sort_index[slices["d" * 16]["tid"]]


def test_links_are_drawn_from_the_span_they_point_to():
    recorded = span("a" * 16, 0, 1_000, kind="producer")
    replayed = span("b" * 16, 5_000, 6_000, kind="producer")
    replayed.links.append(("1" * 32, "a" * 16, {"bus.replay": True}))
    handler = span("c" * 16, 5_500, 5_800, thread="other", parent="b" * 16, kind="consumer")
    handler.links.append(("1" * 32, "f" * 16, {}))  # to a span not in the file: no arrow
    spans = [recorded, replayed, handler]
    build_traces(spans)
    data = to_chrome(spans)
    check_perfetto_fields(data)
    check_nesting(data)
    arrows = check_flows(data, spans)
    pairs = sorted((s["args"]["span_id"][0], t["args"]["span_id"][0]) for s, t in arrows)
    assert pairs == [("a", "b"), ("b", "c")]
    # b both leaves (to c) and is reached (from a): the arrow in lands on a marker in b
    (marker,) = [e for e in data["traceEvents"] if "from_span_id" in e["args"]]
    assert marker["name"] == "← opa"
    assert marker["ts"] == slices_by_span(data)["b" * 16]["ts"]


def test_an_arrow_reaching_a_slice_that_starts_with_its_source_still_binds():
    # The child starts in the same nanosecond as its parent and lasts longer:
    # sorted first, its own slice would pair before the source; a marker does not.
    parent = span("a" * 16, 1_000, 2_000, kind="client")
    child = span("b" * 16, 1_000, 3_000, thread="other", parent="a" * 16)
    spans = [parent, child]
    build_traces(spans)
    data = to_chrome(spans)
    check_flows(data, spans)


def test_an_arrow_back_in_time_is_not_drawn():
    # Another process's clock is behind: the handler ends before its caller starts.
    parent = span("a" * 16, 10_000, 20_000, kind="client")
    child = span("b" * 16, 1_000, 2_000, thread="other", parent="a" * 16)
    data = to_chrome([parent, child])
    arrows, unbound = viewer_arrows(data)
    assert arrows == []
    assert unbound == []
    assert not any("bind_id" in e for e in data["traceEvents"])


def test_nothing_to_export_is_an_empty_trace():
    assert to_chrome([])["traceEvents"] == []


def test_replayed_spans_are_shown_as_such():
    from busctl.traces import render_traces

    replayed = span("a" * 16, 0, 1_000)
    replayed.links.append(("2" * 32, "3" * 16, {"bus.replay": True}))
    plain = span("b" * 16, 2_000, 3_000)
    assert replayed.replayed
    assert not plain.replayed
    (event,) = [e for e in to_chrome([replayed])["traceEvents"] if e["ph"] == "X"]
    assert event["args"]["replayed"] is True
    assert "links" not in event["args"]  # the replay link is what "replayed" says
    text = render_traces(build_traces([replayed, plain]))
    assert text.count("[replayed]") == 1


def test_another_applications_span_carries_its_attributes_events_and_links(tmp_path):
    foreign = Span(
        trace_id="1" * 32,
        span_id="a" * 16,
        parent_id=None,
        name="handle Pay",
        kind="server",
        start_ns=T0,
        end_ns=T0 + 5_000,
        attributes={"http.route": "/pay", "payload": b"\x00\x01", "ratio": float("nan")},
        events=[("retry", {"attempt": 2}, T0 + 1_000)],
        links=[("2" * 32, "3" * 16, {"why": "batch"})],
        resource={"service.name": "shop"},
        error=True,
    )
    (event,) = [e for e in to_chrome([foreign])["traceEvents"] if e["ph"] == "X"]
    args: dict[str, Any] = event["args"]
    assert args["attributes"] == {"http.route": "/pay", "payload": "AAE=", "ratio": "NaN"}
    assert args["events"] == [
        {"name": "retry", "time_unix_nano": str(T0 + 1_000), "attributes": {"attempt": 2}}
    ]
    assert args["links"] == [
        {"trace_id": "2" * 32, "span_id": "3" * 16, "attributes": {"why": "batch"}}
    ]
    assert args["error"] == "error"  # failed without a message: still says so
    json.dumps(args, allow_nan=False)
