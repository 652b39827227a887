"""What busctl prints: humanised durations and latencies, monitor lines, tables."""

from __future__ import annotations

import pytest

from busctl.cli import _output


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
    assert _output.duration(seconds) == text


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
    assert _output.latency(ms) == text


def test_activity_lines_without_colour() -> None:
    call = {
        "kind": "call",
        "name": "say_hello",
        "time": 0.0,
        "caller": "cli",
        "service": "greeter",
        "args": '["Alice"]',
    }
    line = _output.activity_line(call, colour=False)
    assert 'call     say_hello              cli → greeter ("Alice")' in line
    failed = {
        "kind": "return",
        "name": "probe.fail",
        "time": 0.0,
        "service": "probe",
        "error": {"type": "ValueError", "message": "boom"},
        "duration_ms": 0.5,
    }
    assert "!! ValueError: boom  500 µs" in _output.activity_line(failed, colour=False)
    event = {
        "kind": "event",
        "name": "lights.changed",
        "time": 0.0,
        "caller": "lights",
        "kwargs": '{"room": "hall", "on": true}',
        "listeners": 1,
    }
    line = _output.activity_line(event, colour=False)
    assert 'lights.changed         from lights (room="hall", on=true)  1 listener' in line


def test_markup_in_names_is_escaped() -> None:
    activity = {"kind": "event", "name": "[bold]x", "time": 0.0, "args": '["[red]"]'}
    line = _output.activity_line(activity, colour=True)
    assert "\\[bold]x" in line


def test_table_and_json_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    _output.table(["NAME", "CALLS"], [["say_hello", 3], ["[x]", None]], right=["CALLS"])
    _output.print_json({"a": [1]})
    out = capsys.readouterr().out
    assert "say_hello" in out
    assert "[x]" in out
    assert out.endswith('{\n  "a": [\n    1\n  ]\n}\n')
