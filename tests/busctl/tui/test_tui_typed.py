"""The TUI's call and fire forms and the typed contract, driven by Pilot against a real bus.

The bus runs the sample services and ``Counted`` (whose handlers count what
reaches them), reached both ways: over its control socket (``ClientSource``)
and directly in this process (``LocalSource``). A form shows each field's
type, choices (a ``Select``) and default; a value the bus would refuse is
marked on its field before anything is sent, and the handler's counter
stays at 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input, Select, Static

from bus import Bus
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from tests.busctl.counted_services import Counted
from tests.busctl.served_buses import counted_bus
from tests.busctl.tui.pilot_helpers import opened_form, plain, result_text, until

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 40)


@pytest.fixture
def counted_served() -> Iterator[tuple[Bus, Counted]]:
    """The bus ``counted_source`` reaches: the quiet sample services and ``Counted``."""
    with counted_bus("typed", samples=True, releaser=False) as served:
        yield served


def hint_of(screen: InvokeScreen, name: str) -> str:
    row = screen.rows()[name]
    return plain(row.query_one(".field-hint", Static)).strip()


def error_of(screen: InvokeScreen, name: str) -> str:
    row = screen.rows()[name]
    return plain(row.query_one(".field-error", Static)).strip() if row.invalid else ""


def test_the_call_form_shows_types_choices_and_defaults(counted_source, run_app):
    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_invoke("counted.set_mode"))
            assert screen.contract is not None
            assert hint_of(screen, "zone") == "string · required"
            assert hint_of(screen, "mode") == "Mode · one of heat, off, away · required"
            assert hint_of(screen, "level") == "integer · default 1"
            mode = screen.query_one("#param-mode", Select)
            assert [str(label) for label, _ in mode._options[1:]] == ["heat", "off", "away"]
            assert mode.is_blank()  # required, no default: nothing chosen for you
            assert screen.query_one("#param-level", Input).value == "1"
            assert app.focused is screen.query_one("#param-zone", Input)
            assert screen.contract.result == "Change"

    run_app(body)


def test_a_bad_value_is_refused_on_its_field_before_anything_is_sent(
    counted_source, counted_served, run_app
):
    _, counted = counted_served

    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_invoke("counted.set_mode"))
            refused: list[InvokeScreen.Refused] = []
            original = screen.post_message

            def spy(message: Any) -> bool:
                if isinstance(message, InvokeScreen.Refused):
                    refused.append(message)
                return original(message)

            screen.post_message = spy  # type: ignore[method-assign]
            await pilot.press(*"hall")
            screen.query_one("#param-mode", Select).value = "away"
            screen.query_one("#param-level", Input).value = "high"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert refused
            assert set(refused[0].problems) == {"level"}
            assert error_of(screen, "level") == (
                "Input should be a valid integer, unable to parse string as an integer"
            )
            assert error_of(screen, "zone") == ""
            text = result_text(screen)
            assert text.startswith("not sent: 1 value the bus would refuse")
            assert "argument 'level' must be int, not 'high'" in text
            assert counted.calls == 0
            # Fixing the value clears its error; the call then runs, once.
            screen.outcome = None
            screen.query_one("#param-level", Input).value = "3"
            await pilot.pause()
            assert error_of(screen, "level") == ""
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None, result_text(screen)
            assert screen.outcome.result["mode"] == "away"
            assert screen.outcome.result["at"] == "2026-03-01T12:30:00Z"
            assert counted.calls == 1

    run_app(body)


def test_a_missing_required_value_is_marked_and_not_sent(counted_source, counted_served, run_app):
    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_invoke("counted.set_mode"))
            await pilot.press(*"hall")
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert error_of(screen, "mode") == "missing required argument 'mode'"
            assert result_text(screen).startswith("not sent")
            assert counted_served[1].calls == 0

    run_app(body)


def test_a_literal_is_a_select_and_null_is_a_choice(counted_source, run_app):
    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_invoke("counted.size"))
            size = screen.query_one("#param-size", Select)
            assert [str(label) for label, _ in size._options[1:]] == ["s", "m", "l"]
            assert hint_of(screen, "size") == '"s" | "m" | "l" · required'
            assert hint_of(screen, "note") == "string | null · default null"
            size.value = "m"
            screen.query_one("#param-note", Input).value = "null"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.result == "m"

    run_app(body)


def test_the_fire_form_of_a_declared_event(counted_source, counted_served, run_app):
    bus, counted = counted_served

    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_fire("counted.changed"))
            assert plain(screen.query_one("#payload", Static)).strip() == (
                "payload: Changed (declared)"
            )
            assert list(screen.rows()) == ["zone", "level", "mode"]
            mode = screen.query_one("#param-mode", Select)
            assert mode.value == "heat"  # the declared default, chosen
            assert hint_of(screen, "mode") == "Mode · one of heat, off, away · default heat"
            await pilot.press(*"hall")
            screen.query_one("#param-level", Input).value = "loud"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert "valid integer" in error_of(screen, "level")
            assert bus.wait_idle(5)
            assert counted.heard == 0
            screen.outcome = None
            screen.query_one("#param-level", Input).value = "4"
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.outcome is not None)
            assert screen.outcome.error is None, result_text(screen)
            assert bus.wait_idle(5)
            assert counted.heard == 1

    run_app(body)


def test_typing_an_event_name_builds_its_fields(counted_source, run_app):
    async def body():
        app = BusctlApp(source=counted_source)
        async with app.run_test(size=SIZE) as pilot:
            screen = await opened_form(app, pilot, lambda: app.open_fire(None))
            assert app.focused is screen.query_one("#event-name", Input)
            assert screen.rows() == {}
            await pilot.press(*"counted.changed", "enter")
            await until(pilot, lambda: list(screen.rows()) == ["zone", "level", "mode"])
            assert app.focused is screen.query_one("#param-zone", Input)
            # Another name: the fields follow it; one nothing describes takes free arguments.
            name = screen.query_one("#event-name", Input)
            name.value = "nobody.listens"
            name.focus()
            await pilot.press("enter")
            await until(pilot, lambda: not screen.rows() and bool(screen.query("#extra")))
            assert "not described" in plain(screen.query_one("#payload", Static))

    run_app(body)
