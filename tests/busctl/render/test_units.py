"""Times as every face shows them: ``busctl.render.units``."""

from __future__ import annotations

import time

import pytest

from busctl.render.units import clock, duration, latency, trace_ms


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0004, "400 µs"),
        (0.25, "250 ms"),
        (3.21, "3.2 s"),
        (42.4, "42 s"),
        (60, "1 min"),
        (185, "3 min 5 s"),
        (3600, "1 h"),
        (3725, "1 h 2 min"),
        (90_000, "1 d 1 h"),
        (172_800, "2 d"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (None, "-"),
        (0.0005, "500 ns"),
        (0.42, "420 µs"),
        (3.217, "3.22 ms"),
        (42.0, "42.0 ms"),
        (420.0, "420 ms"),
        (1250.0, "1.25 s"),
        (125_000.0, "2 min 5 s"),
    ],
)
def test_latency(ms: float | None, text: str) -> None:
    assert latency(ms) == text


@pytest.mark.parametrize("odd", ["slow", float("nan"), float("inf"), True, [1], -0.0001])
def test_a_latency_that_is_not_a_time_shows_as_such(odd: object) -> None:
    text = latency(odd)
    assert text == "-" or text.startswith("-")  # never a crash, never a made-up time


def test_clock_is_local_time_with_milliseconds() -> None:
    epoch = 1_700_000_000.215
    assert clock(epoch) == time.strftime("%H:%M:%S", time.localtime(epoch)) + ".215"


@pytest.mark.parametrize("odd", [None, "noon", -1.0, 1e13, float("nan"), True])
def test_a_clock_time_no_calendar_shows_is_unknown(odd: object) -> None:
    assert clock(odd) == "--:--:--.---"


def test_trace_offsets_stay_in_milliseconds() -> None:
    assert [trace_ms(x) for x in (0.06, 12.34, 200.6, 1250.0)] == [
        "0.06 ms",
        "12.3 ms",
        "200.6 ms",
        "1.25 s",
    ]
