"""The TUI driven by Textual's Pilot against a real bus running the sample services."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static, TabbedContent

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.help_screen import HelpScreen
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.tables import CommandsTable, ListenersTable, ServicesTable
from busctl.tui.trace_screen import TraceScreen
from tests.busctl.tui.pilot_helpers import (
    command_form,
    listener_form,
    open_failed_call,
    plain,
    result_text,
    until,
)

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 35)


def test_tables_fill_update_and_keep_the_cursor(source, run_app):
    async def body():
        app = BusctlApp(source=source, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            services = app.query_one(ServicesTable)
            await until(pilot, lambda: services.row_count == 6)
            services.focus()
            await pilot.press("down", "down")
            key = services.current()[0]
            scheduler_handled = services.items["scheduler"]["handled"]
            polls = app.polls
            await until(pilot, lambda: app.polls >= polls + 3)
            await until(pilot, lambda: services.items["scheduler"]["handled"] > scheduler_handled)
            assert services.cursor_row == 2
            assert services.current()[0] == key
            assert app.query_one(CommandsTable).row_count == 14
            assert app.query_one(ListenersTable).row_count >= 4
            assert "6 services" in plain(app.busline)

    run_app(body)


def test_number_keys_switch_tabs_and_layout_cycles(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            tabs = app.query_one(TabbedContent)
            await pilot.press("2")
            assert tabs.active == "commands"
            assert app.focused is app.query_one(CommandsTable)
            await pilot.press("3")
            assert tabs.active == "listeners"
            await pilot.press("1")
            assert tabs.active == "services"
            log = app.query_one(ActivityLog)
            await pilot.press("m")  # the tables only
            assert log.styles.display == "none"
            await pilot.press("m")  # the activity only
            assert tabs.styles.display == "none"
            assert log.styles.display == "block"
            await pilot.press("m")  # both
            assert log.styles.display == "block"
            assert tabs.styles.display == "block"

    run_app(body)


def test_activity_shows_traffic_and_filters_it(source, sample_bus, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            await until(pilot, lambda: any(a["name"] == "clock.tick" for a in log.entries()))
            await pilot.press("m", "m")  # the activity only
            await pilot.press("slash")
            assert app.focused is app.query_one("#activity-pattern", Input)
            await pilot.press(*"lights.*", "enter")
            sample_bus.execute_command("lights.turn_on", "hall").result(timeout=5)
            await until(pilot, lambda: any(a["name"] == "lights.turn_on" for a in log.entries()))
            assert {a["name"] for a in log.entries()} <= {"lights.turn_on", "lights.changed"}
            # errors only: a bad brightness fails in the handler
            with pytest.raises(ValueError, match="brightness"):
                sample_bus.execute_command("lights.turn_on", "hall", 500).result(timeout=5)
            log.table.focus()
            await pilot.pause()
            await pilot.press("e")
            await until(pilot, lambda: len(log.entries()) >= 1)
            assert all(a.get("error") for a in log.entries())
            assert log.entries()[-1]["error"]["type"] == "ValueError"
            # the service box: only the scheduler's traffic
            await pilot.press("e")
            pattern = app.query_one("#activity-pattern", Input)
            pattern.value = ""
            app.query_one("#activity-service", Input).value = "scheduler"
            await until(pilot, lambda: log.entries() and log.filter.service == "scheduler")
            assert all("scheduler" in (a.get("service"), a.get("caller")) for a in log.entries())

    run_app(body)


def test_pause_holds_entries_and_resume_shows_them(source, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            await until(pilot, lambda: log.entries())
            log.table.focus()
            await pilot.pause()
            await pilot.press("p")
            assert log.paused
            shown = log.shown
            await until(pilot, lambda: len(log._held) >= 3)
            assert log.shown == shown
            assert "PAUSED" in str(log.status.content)
            await pilot.press("p")
            assert not log.paused
            assert log.shown > shown

    run_app(body)


def test_choosing_an_entry_opens_its_trace_with_the_error(source, sample_bus, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_failed_call(app, pilot, sample_bus)
            status = screen.query_one("#trace-status", Static)
            await until(pilot, lambda: screen.spans, message=lambda: status.render())
            assert {s.kind for s in screen.spans} >= {"client", "server"}
            failed = [s for s in screen.spans if s.error]
            assert failed
            assert all(s.name == "lights.turn_on" for s in failed)
            await pilot.press("n")  # the next failed span
            await pilot.pause()
            detail = plain(screen.query_one("#span-detail-body", Static))
            assert "brightness" in detail
            await pilot.press("escape")
            assert not isinstance(app.screen, TraceScreen)

    run_app(body)


def test_invoke_a_command_with_good_input(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await command_form(app, pilot, "lights.turn_on")
            brightness = screen.query_one("#param-brightness", Input)
            assert brightness.value == "100"  # the default, filled in
            assert "int" in brightness.placeholder
            await pilot.press(*"kitchen")
            brightness.value = "60"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None
            assert screen.outcome.result == {"room": "kitchen", "on": True, "brightness": 60}
            assert '"brightness": 60' in result_text(screen)
            await pilot.press("escape")
            assert not isinstance(app.screen, InvokeScreen)

    run_app(body)


def test_enter_runs_a_command_without_parameters(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await command_form(app, pilot, "lights.list")
            assert not screen.query(Input)
            await pilot.press("enter")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None
            assert {light["room"] for light in screen.outcome.result} >= {"hall", "kitchen"}

    run_app(body)


def test_invoke_with_bad_input_shows_why(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await command_form(app, pilot, "lights.turn_on")
            # unreadable: stopped before it is sent
            screen.query_one("#param-room", Input).value = "hall"
            screen.query_one("#param-brightness", Input).value = "[1,"
            await pilot.press("enter")
            await until(pilot, lambda: screen.outcome is not None)
            assert "cannot read the arguments" in result_text(screen)
            # a required one left out: sent, and the bus says what is missing
            screen.outcome = None
            screen.query_one("#param-room", Input).value = ""
            screen.query_one("#param-brightness", Input).value = "40"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert "missing required argument 'room'" in result_text(screen)
            screen.query_one("#param-room", Input).value = "hall"
            # readable, but the handler refuses it: the error and its traceback
            screen.outcome = None
            screen.query_one("#param-brightness", Input).value = "500"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is not None
            text = result_text(screen)
            assert "ValueError" in text
            assert "brightness" in text
            assert "Traceback" in text

    run_app(body)


def test_fire_an_event_reaches_its_listener(source, sample_bus, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            screen = app.screen
            await pilot.press(*"motion.detected")
            screen.query_one("#extra", Input).value = "room=hall"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None
            assert screen.outcome.result >= 1
            await pilot.press("escape")
            log = app.query_one(ActivityLog)
            await until(
                pilot,
                lambda: any(
                    a["kind"] == "delivery" and a["name"] == "motion.detected"
                    for a in log.entries()
                ),
            )

    run_app(body)


def test_fire_from_a_listener_row_builds_its_form(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listener_form(app, pilot, "motion.detected")
            assert screen.query_one("#event-name", Input).value == "motion.detected"
            screen.query_one("#param-room", Input).value = "kitchen"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.result >= 1

    run_app(body)


def test_palette_lists_bus_commands(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press("ctrl+p")
            await pilot.press(*"lights.get")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            assert app.screen.target == "lights.get"

    run_app(body)


def test_help_screen_opens_and_closes(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

    run_app(body)


def test_keys_typed_in_the_filter_are_text(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("slash", *"qcfmr")
            assert app.query_one("#activity-pattern", Input).value == "qcfmr"
            assert app.is_running
            assert len(app.screen_stack) == 1

    run_app(body)


def test_bus_going_away_is_reported_and_r_reconnects(sample_bus, make_source, run_app):
    first = make_source(sample_bus)
    made = []

    def connect():
        made.append(make_source(sample_bus) if made else first)
        return made[-1]

    async def body():
        app = BusctlApp(connect=connect, poll=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connected and app.inspected is not None)
            first.close()  # the connection goes away under the app
            await until(pilot, lambda: not app.connected)
            assert "went away" in plain(app.busline)
            assert app.sub_title == "DISCONNECTED"
            await pilot.press("c")  # no crash: it says why
            await pilot.press("r")
            # back on the same bus (at its address, or through ``connect``)
            await until(pilot, lambda: app.connected and app.source is not first)
            made.append(app.source)
            polls = app.polls
            await until(pilot, lambda: app.polls > polls)

    try:
        run_app(body)
    finally:
        for src in made:
            src.close()


def test_t_and_the_palette_open_the_last_failure(source, sample_bus, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("t")  # nothing failed yet: it says so
            assert len(app.screen_stack) == 1
            with pytest.raises(ValueError, match="brightness"):
                sample_bus.execute_command("lights.turn_on", "hall", 500).result(timeout=5)
            await until(pilot, lambda: app.last_error is not None)
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TraceScreen) and app.screen.spans)
            assert app.screen.trace_id == app.last_error["trace_id"]
            await pilot.press("escape")
            await pilot.press("ctrl+p", *"last error")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TraceScreen))

    run_app(body)


def test_enter_on_a_service_filters_the_activity_by_it(source, run_app):
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            services = app.query_one(ServicesTable)
            await until(pilot, lambda: "scheduler" in services.items)
            services.focus()
            services.move_cursor(row=services.get_row_index("scheduler"))
            await pilot.press("enter")
            log = app.query_one(ActivityLog)
            await until(pilot, lambda: log.filter.service == "scheduler" and log.entries())
            assert all("scheduler" in (a.get("service"), a.get("caller")) for a in log.entries())

    run_app(body)


def test_unexpected_data_from_the_bus_does_not_crash_the_app(fake_source, run_app):
    from concurrent.futures import Future

    def bad_inspect():
        future = Future()
        future.set_result({"services": [{"name": "x", "mailbox": "lots"}], "commands": "?"})
        return future

    fake_source.inspect = bad_inspect

    async def body():
        app = BusctlApp(source=fake_source, poll=0.05, drain=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.polls >= 2)
            fake_source.callback({"kind": "return", "name": "x", "error": "boom", "trace_id": "f"})
            fake_source.callback({"unexpected": True})
            await until(
                pilot, lambda: any(a.get("name") == "x" for a in app.activity_log.entries())
            )
            assert app.is_running
            # what can be shown is shown (busctl.render.columns takes odd values as text)
            assert app.services_table.full_row("x")[4].plain == "lots/0"
            assert app.commands_table.row_count == 0

    run_app(body)


def test_a_bus_that_does_not_answer_is_reported_and_keys_still_work(fake_source, run_app):
    from concurrent.futures import Future

    fake_source.inspect = Future  # never completes

    class Impatient(BusctlApp):
        SLOW = 0.2

    async def body():
        app = Impatient(source=fake_source, poll=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "has not answered" in plain(app.busline))
            await pilot.press("2")
            assert app.query_one(TabbedContent).active == "commands"

    run_app(body)


def test_main_keys_work_from_the_activity_log(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            app.activity_log.table.focus()
            await pilot.pause()
            await pilot.press("c")  # call: to the commands, to choose one
            assert app.query_one(TabbedContent).active == "commands"

    run_app(body)


def test_mouse_clicks_switch_tabs_and_choose_rows(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(CommandsTable)
            await until(pilot, lambda: app.inspected is not None)
            assert await pilot.click("#--content-tab-commands")
            await pilot.pause()
            assert app.query_one(TabbedContent).active == "commands"
            await until(pilot, lambda: table.row_count == 14)
            # a click highlights a row, a click on the highlighted row chooses it
            assert await pilot.click(CommandsTable, offset=(3, 2))
            await pilot.pause()
            assert table.cursor_row == 1
            assert await pilot.click(CommandsTable, offset=(3, 2))
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            assert app.screen.target == table.current()[0]

    run_app(body)


def test_a_trace_still_growing_is_redrawn(fake_source, trace_id, run_app):
    from concurrent.futures import Future

    full = fake_source.traces(trace_id).result()
    scope = full["resourceSpans"][0]["scopeSpans"][0]
    reads = []

    def traces(tid):
        reads.append(tid)
        spans = scope["spans"][: 2 if len(reads) == 1 else 4]
        data = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
        future = Future()
        future.set_result(data)
        return future

    fake_source.traces = traces

    async def body():
        app = BusctlApp(source=fake_source)
        async with app.run_test(size=SIZE) as pilot:
            app.open_trace(trace_id)
            await until(pilot, lambda: isinstance(app.screen, TraceScreen) and app.screen.spans)
            assert len(app.screen.spans) == 2
            await until(pilot, lambda: len(app.screen.spans) == 4)

    run_app(body)
