"""The TUI stepping into a real bus: the Holds panel, stubs on show, copy as, --safe, history."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest
from textual.widgets import Input, Static

from bus import Bus, DroppedByConsoleError
from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.confirm_screen import ConfirmScreen
from busctl.tui.copy_screen import CopyScreen
from busctl.tui.edit_screen import EditScreen, field_texts
from busctl.tui.holds_panel import HeldTable, HoldsTable
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.tables import CommandsTable
from tests.busctl.tui.pilot_helpers import plain, shown_lines, until

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 35)


async def _opened(pilot: Any, app: BusctlApp, kind: type, selector: str) -> None:
    """Wait until a screen of ``kind`` is on top and composed (``selector`` is in it)."""
    await until(pilot, lambda: isinstance(app.screen, kind) and bool(app.screen.query(selector)))


async def _highlighted(pilot: Any, app: BusctlApp, name: str) -> CommandsTable:
    """The Commands tab (2), focused, with ``name``'s row highlighted."""
    await pilot.press("2")
    table = app.query_one(CommandsTable)
    await until(pilot, lambda: name in table.items)
    table.focus()
    table.move_cursor(row=list(table.items).index(name))
    await pilot.pause()
    assert table.current()[0] == name
    return table


def _call_in_background(bus: Bus, *args: Any, **kwargs: Any) -> Future[Any]:
    """Call from another thread: a held call's caller waits, and the test must not."""
    out: Future[Any] = Future()

    def run() -> None:
        out.set_result(bus.execute_command("lights.turn_on", *args, **kwargs))

    threading.Thread(target=run, daemon=True).start()
    return out.result(5)  # execute_command returns at once with the (held) future


def test_h_holds_a_command_enter_releases_what_arrives(sample_bus, source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await _highlighted(pilot, app, "lights.turn_on")
            await pilot.press("h")
            await until(pilot, lambda: sample_bus.holds.holds())
            [hold] = sample_bus.holds.holds()
            assert (hold["pattern"], hold["kind"]) == ("lights.turn_on", "call")
            future = _call_in_background(sample_bus, "kitchen", brightness=70)
            held = app.query_one(HeldTable)
            await until(pilot, lambda: held.row_count == 1)
            assert "Holds (1)" in str(app.tabs.get_tab("holds").label)
            await pilot.press("5")
            assert app.tabs.active == "holds"
            assert app.focused is held
            row = " ".join(shown_lines(held)[1].split())
            assert "lights.turn_on" in row
            assert '("kitchen", brightness=70)' in row
            await pilot.press("enter")
            assert future.result(5)["brightness"] == 70
            await until(pilot, lambda: held.row_count == 0)
            assert app.query_one(HoldsTable).row_count == 1
            await pilot.press("u")  # nothing held: u ends the hold the panel shows
            await until(pilot, lambda: not sample_bus.holds.holds())

    run_app(body)


def test_e_edits_the_arguments_and_d_drops(sample_bus, source, run_app):
    async def body():
        sample_bus.holds.add("lights.turn_on", kind="call")
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            edited = _call_in_background(sample_bus, "hall", brightness=90)
            dropped = _call_in_background(sample_bus, "den")
            held = app.query_one(HeldTable)
            await until(pilot, lambda: held.row_count == 2)
            await pilot.press("5")
            held.move_cursor(row=0)
            await pilot.press("e")
            await _opened(pilot, app, EditScreen, "#edit-brightness")
            field = app.screen.query_one("#edit-brightness", Input)
            assert field.value == "90"
            field.value = "not a number"
            await pilot.press("ctrl+r")
            await pilot.pause(0.3)
            assert isinstance(app.screen, EditScreen)  # refused: still open, still held
            assert not edited.done()
            field.value = ""
            await pilot.press("ctrl+r")
            outcome = app.screen.query_one("#edit-outcome", Static)
            await until(pilot, lambda: "brightness: give a value" in plain(outcome))
            assert not edited.done()
            field.value = "25"
            await pilot.press("ctrl+r")
            assert edited.result(5) == {"room": "hall", "on": True, "brightness": 25}
            await until(pilot, lambda: not isinstance(app.screen, EditScreen))
            await until(pilot, lambda: held.row_count == 1)
            held.focus()
            await pilot.press("d")
            with pytest.raises(DroppedByConsoleError):
                dropped.result(5)
            await until(pilot, lambda: held.row_count == 0)

    run_app(body)


def test_h_on_an_activity_row_holds_its_event(sample_bus, source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            sample_bus.fire_event("motion.detected", room="hall")
            await until(
                pilot, lambda: any(e.get("name") == "motion.detected" for e in log.entries())
            )
            log.table.focus()
            rows = log.entries()
            log.table.move_cursor(
                row=max(i for i, e in enumerate(rows) if e.get("name") == "motion.detected")
            )
            await pilot.press("p")  # pause, so the row stays put
            await pilot.press("h")
            await until(pilot, lambda: sample_bus.holds.holds())
            [hold] = sample_bus.holds.holds()
            assert (hold["pattern"], hold["kind"]) == ("motion.detected", "event")

    run_app(body)


def test_a_stubbed_command_is_marked_in_the_table(sample_bus, source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            commands = app.query_one(CommandsTable)
            await until(pilot, lambda: "thermostat.read_sensor" in commands.items)
            sample_bus.stubs.add("thermostat.read_sensor", raises="TimeoutError: off")
            await until(
                pilot,
                lambda: "[stubbed]" in commands.full_row("thermostat.read_sensor")[0].plain,
            )
            assert commands.full_row("lights.get")[2].plain == "ro"

    run_app(body)


def test_the_activity_log_opens_with_the_bus_s_history(sample_bus, source, run_app):
    sample_bus.execute_command("lights.turn_on", "bathroom", brightness=11).result(5)

    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            await until(pilot, lambda: any(e.get("history") for e in log.entries()))
            earlier = [
                e for e in log.entries() if e.get("history") and e.get("name") == "lights.turn_on"
            ]
            assert [e["kind"] for e in earlier[-2:]] == ["call", "return"]
            assert earlier[-2]["args"] == '["bathroom"]'
            assert '"brightness":11' in earlier[-1]["result"]

    run_app(body)


def test_y_copies_a_call_as_python_and_the_form_remembers(sample_bus, source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            commands = await _highlighted(pilot, app, "lights.turn_on")
            await pilot.press("enter")
            await _opened(pilot, app, InvokeScreen, "#param-room")
            app.screen.query_one("#param-room", Input).value = "hall"
            app.screen.query_one("#param-brightness", Input).value = "33"
            await pilot.press("ctrl+r")
            form = app.screen
            await until(pilot, lambda: form.outcome is not None)
            await pilot.press("escape")
            await pilot.press("enter")  # the same command again: the form remembers
            await _opened(pilot, app, InvokeScreen, "#param-brightness")
            assert app.screen.query_one("#param-brightness", Input).value == "33"
            await pilot.press("escape")
            commands.focus()
            await pilot.press("y")
            await until(pilot, lambda: isinstance(app.screen, CopyScreen))
            await pilot.press("p")
            await until(pilot, lambda: not isinstance(app.screen, CopyScreen))
            snippet = (
                'bus.execute_command("lights.turn_on", room="hall", brightness=33)'
                ".result(timeout=30)"
            )
            assert app.clipboard == snippet
            # Where the terminal drops OSC 52, the text is on screen to copy by hand.
            assert any(n.message == snippet for n in app._notifications)

    run_app(body)


def test_safe_asks_before_a_command_that_is_not_read_only(sample_bus, source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1, safe=True)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            before = _calls(app, "lights.turn_off")
            app.open_invoke("lights.turn_off")
            await _opened(pilot, app, InvokeScreen, "#param-room")
            app.screen.query_one("#param-room", Input).value = "hall"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            await pilot.pause(0.3)
            assert _calls(app, "lights.turn_off", fresh=sample_bus) == before
            await pilot.press("ctrl+r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            form = app.screen
            await until(pilot, lambda: getattr(form, "outcome", None) is not None)
            assert _calls(app, "lights.turn_off", fresh=sample_bus) == before + 1
            # A read-only command is not asked about.
            await pilot.press("escape")
            app.open_invoke("lights.get")
            await _opened(pilot, app, InvokeScreen, "#param-room")
            app.screen.query_one("#param-room", Input).value = "hall"
            await pilot.press("ctrl+r")
            form = app.screen
            await until(pilot, lambda: form.outcome is not None)

    run_app(body)


def _calls(app: BusctlApp, name: str, fresh: Bus | None = None) -> int:
    commands = (fresh.inspect() if fresh is not None else app.inspected or {})["commands"]
    return next(int(c["calls"]) for c in commands if c["name"] == name)


def test_field_texts_fill_each_parameter_from_what_is_held() -> None:
    params = [
        {"name": "room", "kind": "positional_or_keyword", "annotation": "str"},
        {"name": "brightness", "kind": "positional_or_keyword", "annotation": "int"},
        {"name": "note", "kind": "keyword_only", "annotation": None},
    ]
    texts = field_texts({"args": ["hall"], "kwargs": {"brightness": 5}}, params)
    assert texts == {"room": "hall", "brightness": "5", "note": ""}


def test_u_on_a_bus_across_processes_ends_the_hold_in_every_process(run_app):
    # `h` over NATS sets one hold per process (ids N@PROCESS): `u` ends all of
    # them, and leaves a different hold alone.
    from textual.app import App, ComposeResult

    from busctl.tui.holds_panel import HoldsPanel

    def hold(hid: str, process: str, pattern: str = "lights.turn_on") -> dict[str, Any]:
        return {"id": hid, "pattern": pattern, "kind": "call", "service": None,
                "process": process, "caught": 0, "held": 0, "expires_in": 60.0}  # fmt: skip

    result = {
        "holds": [hold("1@a", "a"), hold("1@b", "b"), hold("2@b", "b", "lights.get")],
        "held": [],
    }

    class Host(App[None]):
        def __init__(self) -> None:
            super().__init__()
            self.acts: list[HoldsPanel.Act] = []

        def compose(self) -> ComposeResult:
            yield HoldsPanel()

        def on_holds_panel_act(self, message: HoldsPanel.Act) -> None:
            self.acts.append(message)

    async def body():
        app = Host()
        async with app.run_test(size=SIZE) as pilot:
            panel = app.query_one(HoldsPanel)
            panel.show(result)
            panel.holds_table.focus()
            panel.holds_table.move_cursor(row=0)
            await pilot.pause()
            await pilot.press("u")
            await until(pilot, lambda: len(app.acts) >= 2)
            await pilot.pause(0.1)
            assert sorted(a.params["id"] for a in app.acts) == ["1@a", "1@b"]
            assert {a.method for a in app.acts} == {"unhold"}

    run_app(body)
