"""Snapshots of the TUI's main screens, on a fake bus with fixed data (no times, no pids).

Update them after a deliberate change with
``.venv/bin/python -m pytest tests/busctl/tui/test_tui_snapshots.py --snapshot-update``
and look at the SVGs in ``__snapshots__`` before committing.
"""

from __future__ import annotations

import copy

import pytest
from textual.widgets import Input

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.trace_screen import TraceScreen
from tests.busctl.tui.conftest import INSPECT, SET_MODE, resolved

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("utc")]


@pytest.fixture
def snap_compare(snap_compare):
    """pytest-textual-snapshot's ``snap_compare``, the text cursors held still for the picture.

    A focused ``Input``'s cursor blinks every half second from when it got
    the focus, so whether a picture shows it depended on how long the test
    took to get there (a busy machine, another Python). Blinking off hides it.
    """

    def compare(app, *, terminal_size, run_before):
        async def then_still(pilot) -> None:
            await run_before(pilot)
            for screen in pilot.app.screen_stack:
                for field in screen.query(Input):
                    field.cursor_blink = False

        return snap_compare(app, terminal_size=terminal_size, run_before=then_still)

    return compare


async def _ready(pilot) -> None:
    app = pilot.app
    while app.inspected is None or len(app.activity_log.entries()) < 6:
        await pilot.pause(0.02)
    await pilot.pause()


def test_main_screen_80x24(snap_compare, fake_source):
    assert snap_compare(BusctlApp(source=fake_source), terminal_size=(80, 24), run_before=_ready)


def test_a_failed_service_80x24(snap_compare, fake_source):
    inspected = copy.deepcopy(INSPECT)
    thermostat = inspected["services"][2]
    thermostat.update(state="failed", error="ConnectionError: no sensor bus at /dev/ttyUSB0")
    fake_source.inspect = lambda: resolved(copy.deepcopy(inspected))
    assert snap_compare(BusctlApp(source=fake_source), terminal_size=(80, 24), run_before=_ready)


def test_main_screen_commands_120x35(snap_compare, fake_source):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("2", "down")

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(120, 35), run_before=run_before
    )


def test_activity_only_with_errors_filter(snap_compare, fake_source):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("m", "m")
        log = pilot.app.query_one(ActivityLog)
        log.table.focus()
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(100, 24), run_before=run_before
    )


def test_trace_screen(snap_compare, fake_source, trace_id):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        pilot.app.open_trace(trace_id)
        while not (isinstance(pilot.app.screen, TraceScreen) and pilot.app.screen.spans):
            await pilot.pause(0.02)
        await pilot.press("n")  # the first failed span, with its exception
        await pilot.pause()

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(120, 35), run_before=run_before
    )


def test_trace_screen_80x24(snap_compare, fake_source, trace_id):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        pilot.app.open_trace(trace_id)
        while not (isinstance(pilot.app.screen, TraceScreen) and pilot.app.screen.spans):
            await pilot.pause(0.02)

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(80, 24), run_before=run_before
    )


def test_invoke_form_with_a_remote_error(snap_compare, fake_source):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        pilot.app.open_invoke("lights.turn_on")
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, InvokeScreen)
        screen.query_one("#param-room", Input).value = "attic"
        await pilot.press("ctrl+r")
        while screen.outcome is None:
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(100, 30), run_before=run_before
    )


def test_help_screen(snap_compare, fake_source):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(80, 24), run_before=run_before
    )


def test_typed_call_form_refusing_a_value(snap_compare, fake_source):
    # Types, choices (a Select) and defaults from the bus's schema; a value it
    # would refuse marked on its field, and nothing sent.
    async def run_before(pilot) -> None:
        from textual.widgets import Select

        await _ready(pilot)
        screen = InvokeScreen(fake_source, "command", copy.deepcopy(SET_MODE))
        await screen.load_contract()
        pilot.app.push_screen(screen)
        while not isinstance(pilot.app.screen, InvokeScreen):
            await pilot.pause(0.02)
        await pilot.pause()
        screen.query_one("#param-zone", Input).value = "office"
        screen.query_one("#param-mode", Select).value = "away"
        screen.query_one("#param-hours", Input).value = "two"
        await pilot.press("ctrl+r")
        while screen.outcome is None:
            await pilot.pause(0.02)
        assert not [c for c in fake_source.calls if c[0] == "execute"]  # refused: not sent
        await pilot.pause()

    assert snap_compare(
        BusctlApp(source=fake_source), terminal_size=(100, 34), run_before=run_before
    )
