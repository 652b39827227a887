"""The TUI's plain parts: formatting, the activity filter and feed, spans, the form reader."""

from __future__ import annotations

import threading

import pytest

from busctl._args import ArgumentError
from busctl.tui._format import ActivityFilter, activity_cells, clip
from busctl.tui._spans import attribute_value, parse_traces, waterfall_bar
from busctl.tui.activity import ActivityFeed
from busctl.tui.form_field import read_form


def test_clip_keeps_one_line_and_marks_the_cut():
    assert clip("a\nb   c", 10) == "a b c"
    assert clip("abcdefghij", 5) == "abcd…"


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (ActivityFilter(), True),
        (ActivityFilter(pattern="lights.*"), True),
        (ActivityFilter(pattern="turn"), True),
        (ActivityFilter(pattern="clock.*"), False),
        (ActivityFilter(service="lights"), True),
        (ActivityFilter(service="automation"), True),  # the caller counts too
        (ActivityFilter(service="greeter"), False),
        (ActivityFilter(errors_only=True), False),
    ],
)
def test_filter_matches_name_service_and_errors(flt, expected):
    call = {"kind": "call", "name": "lights.turn_on", "service": "lights", "caller": "automation"}
    assert flt.matches(call) is expected


def test_errors_only_keeps_failures():
    failed = {"kind": "return", "name": "x", "error": {"type": "E", "message": "m"}}
    assert ActivityFilter(errors_only=True).matches(failed)
    cells = activity_cells(failed)
    assert str(cells[2]) == "x"
    assert str(cells[5]) == "!! E: m"
    assert cells[5].style == "red"


def test_feed_is_bounded_and_counts_what_it_dropped():
    feed = ActivityFeed(maxlen=100)
    threads = [
        threading.Thread(target=lambda: [feed.append({"n": i}) for i in range(1000)])
        for _ in range(1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(feed) == 100
    batch = feed.drain(limit=30)
    assert [a["n"] for a in batch] == list(range(900, 930))
    assert feed.dropped == 900
    assert len(feed.drain()) == 70


def test_attribute_values_decode():
    assert attribute_value({"intValue": "42"}) == 42
    assert attribute_value({"arrayValue": {"values": [{"boolValue": True}]}}) == [True]
    kvlist = {"kvlistValue": {"values": [{"key": "a", "value": {"doubleValue": 1.5}}]}}
    assert attribute_value(kvlist) == {"a": 1.5}


def test_parse_traces_orders_depth_first(fake_source, trace_id):
    spans = parse_traces(fake_source.traces(trace_id).result())
    assert [(s.depth, s.name, s.kind) for s in spans] == [
        (0, "send motion.detected", "producer"),
        (1, "process motion.detected", "consumer"),
        (2, "lights.turn_on", "client"),
        (3, "lights.turn_on", "server"),
    ]
    server = spans[3]
    assert server.error
    assert server.queued_ms == 1.0
    assert server.thread == "bus:demo/lights"
    assert server.exception()["exception.type"] == "ValueError"
    assert spans[0].duration_ms == pytest.approx(0.04)


def test_waterfall_bar_places_queue_wait_and_work(fake_source, trace_id):
    spans = parse_traces(fake_source.traces(trace_id).result())
    t0, t1 = spans[0].start_ns, spans[1].end_ns
    bar = waterfall_bar(spans[3], t0, t1, width=23)
    assert len(bar.plain) == 23
    # queued from 0.4 ms to 1.4 ms, ran to 2.2 ms, on a 2.3 ms axis of 23 cells
    assert bar.plain == "    " + "┄" * 10 + "█" * 8 + " "


def test_read_form_builds_args_and_kwargs():
    params = [
        {"name": "room", "kind": "positional_or_keyword", "annotation": "str", "required": True},
        {"name": "level", "kind": "positional_or_keyword", "annotation": "int", "required": False},
        {"name": "pos", "kind": "positional", "annotation": "list", "required": False},
    ]
    assert read_form(params, {"room": "42", "level": "7", "pos": "[1, 2]"}) == (
        [[1, 2]],
        {"room": "42", "level": 7},
    )
    assert read_form(params, {"room": '"hall"', "level": ""}) == ([], {"room": "hall"})
    # left out: whether it binds is the bus's to say (one check, the bus's)
    assert read_form(params, {"room": ""}) == ([], {})
    with pytest.raises(ArgumentError, match="argument 2"):
        read_form(params, {"room": "x", "level": "[1,"})
    assert read_form([], {}, "3 room=hall") == ([3], {"room": "hall"})


def test_a_column_that_keeps_its_end_is_cut_at_its_start():
    from rich.text import Text

    from busctl.tui.tables import FitTable, ServicesTable

    assert "threads" in ServicesTable.KEEP_END  # busctl.render.columns says so
    cut = FitTable._cut(Text("bus:demo/greeter", style="red"), 10, keep_end=True)
    assert cut.plain == "…o/greeter"
    assert cut.style == "red"
    assert FitTable._cut(Text("bus:demo/greeter"), 10).plain == "bus:demo/…"
    assert FitTable._cut(Text("short"), 10, keep_end=True).plain == "short"
