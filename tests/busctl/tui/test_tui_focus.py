"""Focus: text typed into a box stays there, Escape leaves it, forms start where typing does."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette
from textual.widgets import Checkbox, DataTable, Input, TabbedContent

from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.replay_panel import ReplayPanel
from busctl.tui.tables import ListenersTable
from tests.busctl.tui.pilot_helpers import listener_form, opened_form, until

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 35)

# Every printable key bound anywhere in the app, the replay panel, the log and the trace view.
APP_KEYS = "qcft/mr1234?pe onx+-="


def _press_text(text: str) -> list[str]:
    names = {" ": "space", "?": "question_mark", "/": "slash", "+": "plus", "-": "minus"}
    return [names.get(c, "equals_sign" if c == "=" else c) for c in text]


async def _replay_panel(app, pilot) -> ReplayPanel:
    await until(pilot, lambda: app.connected and app.query(ReplayPanel))
    return app.query_one(ReplayPanel)


def test_four_puts_the_focus_in_the_replay_path_and_keys_typed_are_text(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            await _replay_panel(app, pilot)
            await pilot.press("4")
            path = app.query_one("#path", Input)
            assert app.focused is path
            await pilot.press(*_press_text("traces/sample.jsonl" + APP_KEYS))
            assert path.value == "traces/sample.jsonl" + APP_KEYS
            # none of them did what it does outside the box
            assert app.query_one(TabbedContent).active == "replay"
            assert len(app.screen_stack) == 1
            assert app.main.has_class("split")
            assert app.is_running

    run_app(body)


def test_four_with_a_file_open_focuses_its_steps(source, run_app, tmp_path):
    trace = tmp_path / "empty.jsonl"
    trace.write_text("")

    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            panel = await _replay_panel(app, pilot)
            await pilot.press("4", *_press_text(str(trace)), "enter")
            await until(pilot, lambda: panel.plan is not None)
            await pilot.press("1", "4")
            assert app.focused is panel.query_one("#steps")

    run_app(body)


def test_a_tab_chosen_with_the_mouse_takes_the_focus_too(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            await _replay_panel(app, pilot)
            assert await pilot.click("#--content-tab-replay")
            await until(pilot, lambda: app.focused is app.query_one("#path", Input))
            assert await pilot.click("#--content-tab-listeners")
            await until(pilot, lambda: app.focused is app.query_one(ListenersTable))

    run_app(body)


@pytest.mark.parametrize("box", ["#activity-pattern", "#activity-service"])
def test_escape_leaves_the_filter_for_the_log_and_a_second_one_is_harmless(box, source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            app.query_one(box, Input).focus()
            await pilot.press(*"clock")
            await pilot.press("escape")
            assert app.focused is log.table
            assert app.query_one(box, Input).value == "clock"  # the filter stays
            await pilot.press("escape")
            assert app.focused is log.table
            assert len(app.screen_stack) == 1
            assert app.is_running

    run_app(body)


def test_escape_leaves_the_errors_box_for_the_log(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            log = app.query_one(ActivityLog)
            app.query_one("#activity-errors", Checkbox).focus()
            await pilot.press("escape")
            assert app.focused is log.table

    run_app(body)


def test_escape_leaves_the_replay_path_for_the_steps(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            panel = await _replay_panel(app, pilot)
            await pilot.press("4", *"traces")
            await pilot.press("escape")
            assert app.focused is panel.query_one("#steps")
            assert panel.query_one("#path", Input).value == "traces"
            await pilot.press("escape")
            assert app.focused is panel.query_one("#steps")
            assert app.is_running

    run_app(body)


def test_the_fire_form_of_a_chosen_event_starts_at_its_arguments(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await listener_form(app, pilot, "motion.detected")
            await pilot.pause()
            assert screen.query_one("#event-name", Input).value == "motion.detected"
            assert app.focused is screen.query_one("#param-room", Input)
            await pilot.press(*"hall", "enter")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None
            assert screen.outcome.result >= 1

    run_app(body)


def test_the_fire_form_of_a_named_event_without_a_listener_starts_at_its_arguments(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_fire("nobody.listens"))
            assert app.focused is screen.query_one("#extra", Input)

    run_app(body)


def test_the_fire_form_without_a_name_starts_at_the_name(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_fire(None))
            assert app.focused is screen.query_one("#event-name", Input)

    run_app(body)


@pytest.mark.parametrize(
    ("opener", "box"),
    [
        (lambda app: app.open_invoke("lights.turn_on"), "#param-room"),
        (lambda app: app.open_fire(None), "#event-name"),
        (lambda app: app.open_fire("nobody.listens"), "#extra"),
        (lambda app: app.open_fire("motion.detected"), "#param-room"),
    ],
    ids=["call", "fire-name", "fire-arguments", "fire-parameter"],
)
def test_keys_typed_in_a_form_are_text(opener, box, source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: opener(app))
            field = screen.query_one(box, Input)
            field.value = ""
            field.focus()
            await pilot.press(*_press_text(APP_KEYS))
            assert field.value == APP_KEYS
            assert app.screen is screen
            assert app.query_one(TabbedContent).active == "services"

    run_app(body)


def test_keys_typed_in_the_palette_are_text(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette))
            await pilot.press(*_press_text(APP_KEYS))
            assert app.screen.query_one(Input).value == APP_KEYS
            assert isinstance(app.screen, CommandPalette)
            assert app.query_one(TabbedContent).active == "services"

    run_app(body)


def test_keys_typed_in_the_service_box_are_text(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=SIZE) as pilot:
            box = app.query_one("#activity-service", Input)
            box.focus()
            await pilot.press(*_press_text(APP_KEYS))
            assert box.value == APP_KEYS
            assert len(app.screen_stack) == 1
            assert app.query_one(ActivityLog).table is not app.focused
            assert not isinstance(app.focused, DataTable)

    run_app(body)
