"""Printed tables fit the terminal: names and numbers whole, free text cut (``render.fit``)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from busctl.render.columns import COMMANDS, SERVICES, TABLES
from busctl.render.fit import cut, share
from busctl.render.printed import registry_table

LONG = "(room: str, brightness: int = 100, transition: float = 0.5) -> LightState"
SNAPSHOT = {
    "services": [
        {
            "name": "lights",
            "state": "failed",
            "error": "ConnectionError: " + "x" * 80,
            "activity": "idle",
            "threads": [{"name": "bus:home-automation/lights"}],
            "mailbox": 90,
            "mailbox_size": 100000,
            "handled": 123456,
            "failed": 1,
            "dropped": 7,
        }
    ],
    "commands": [
        {
            "name": "lights.turn_on",
            "owner": "lights-and-other-things",
            "signature": LONG,
            "stub": {"returns": "{}"},
            "calls": 1234567,
            "errors": 12,
            "p50_ms": 0.42,
            "p99_ms": 1500.0,
        },
        {"name": "lights.get", "owner": "lights", "signature": "() -> int", "readonly": True},
    ],
    "listeners": [
        {"pattern": "motion.*", "owner": "automation", "handler": "Automation.on_motion"},
    ],
}


def printed(table_name: str, width: int, *, colour: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, force_terminal=False)
    console.print(registry_table(TABLES[table_name], SNAPSHOT, colour=colour))
    return out.getvalue().splitlines()


def test_cut_keeps_the_start_or_the_end_and_counts_cells() -> None:
    assert cut("(room: str) -> LightState", 12) == "(room: str)…"
    assert cut("bus:home/greeter", 8, keep_end=True) == "…greeter"
    assert cut("fits", 4) == "fits"
    assert cut("日本語テキスト", 6) == "日本…"  # two cells a character
    assert cut("日本語", 2, keep_end=True) == "…"
    assert cut("abc", 1) == "…"
    assert cut("abc", 0) == ""


def test_share_is_the_one_the_tui_uses() -> None:
    from busctl.tui import tables

    assert tables.share is share


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
@pytest.mark.parametrize("width", [72, 80, 100, 120])
def test_a_narrow_table_cuts_free_text_and_keeps_names_and_numbers(width: int, colour: bool):
    lines = printed("commands", width, colour=colour)
    assert all(len(line) <= width for line in lines), lines
    header = lines[0].split()
    assert header[0] == "NAME"
    assert header[-4:] == ["CALLS", "ERRORS", "P50", "P99"]
    rows = [line for line in lines if line.startswith("lights.")]
    assert len(rows) == 2, lines  # one line each: nothing wraps
    turn_on = rows[0]
    assert turn_on.startswith("lights.turn_on [stubbed]")
    assert turn_on.endswith("1234567      12  420 µs  1.50 s"), turn_on
    assert LONG not in turn_on
    assert "…" in turn_on


def test_a_wide_table_cuts_nothing() -> None:
    lines = printed("commands", 200, colour=False)
    assert any(LONG in line for line in lines)
    assert "…" not in "".join(lines)


def test_a_cut_path_keeps_its_end() -> None:
    # THREADS is cut at its start: the end of a thread's name says which service.
    assert SERVICES.column("threads").keep == "end"
    lines = printed("services", 80, colour=False)
    row = next(line for line in lines if line.startswith("lights"))
    assert "…" in row
    assert "/lights" in row
    assert row.split()[-4:] == ["90/100000", "123456", "1", "7"]


def test_every_table_fits_down_to_its_names_and_numbers() -> None:
    for name in TABLES:
        for width in range(60, 130, 7):
            lines = printed(name, width, colour=True)
            assert all(len(line) <= width for line in lines), (name, width, lines)


def test_the_cells_given_are_not_changed() -> None:
    [(_, _, cells), _] = COMMANDS.rows(SNAPSHOT)
    printed("commands", 72, colour=False)
    assert cells[3].text == LONG
