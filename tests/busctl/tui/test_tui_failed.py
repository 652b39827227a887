"""A service the bus marks failed is unmistakable: red, with its error, counted and announced."""

from __future__ import annotations

import threading
import time

import pytest
from rich.text import Text

from bus import Bus, Service
from busctl.tui.app import BusctlApp
from busctl.tui.tables import ServicesTable
from tests.busctl.tui.pilot_helpers import plain, shown_lines, until

pytestmark = pytest.mark.timeout(60)

ERROR = "ConnectionError: no database at db.internal:5432"


class Broken(Service):
    """A service whose start-up fails after ``add_service`` stopped waiting for it."""

    name = "broken"

    def __init__(self, go: threading.Event) -> None:
        super().__init__()
        self.go = go

    def on_start(self) -> None:
        self.go.wait(10)
        raise ConnectionError("no database at db.internal:5432")


def _break_a_service(bus: Bus) -> None:
    go = threading.Event()
    with pytest.raises(TimeoutError):
        bus.add_service(Broken(go), timeout=0.05)  # stays on the bus as "starting"
    go.set()  # ...until on_start raises: then the bus marks it failed
    deadline = time.monotonic() + 10
    while not any(s["state"] == "failed" for s in bus.inspect()["services"]):
        assert time.monotonic() < deadline, "the bus never marked the service failed"
        time.sleep(0.01)


class Recording(BusctlApp):
    """The app, keeping every notification it shows."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.notes: list[tuple[str, str]] = []

    def notify(self, message, *, severity="information", **kwargs) -> None:
        self.notes.append((str(message), severity))
        super().notify(message, severity=severity, **kwargs)


@pytest.mark.parametrize("size", [(120, 35), (80, 24)])
def test_a_failed_service_is_red_with_its_error_counted_and_announced(
    size, sample_bus, source, run_app
):
    _break_a_service(sample_bus)

    async def body():
        app = Recording(source=source, poll=0.1)
        async with app.run_test(size=size) as pilot:
            table = app.query_one(ServicesTable)
            await until(pilot, lambda: "broken" in table.items)
            await pilot.pause()
            name, state = table.full_row("broken")[:2]
            # the words of `busctl services` (busctl.render.columns), in red
            assert state.plain == f"failed ({ERROR})"
            for cell in (name, state):
                assert "red" in str(cell.style), cell
            # the table cuts what does not fit, but the failure starts on screen
            # (at 80 columns the error itself is on the status line, and Enter)
            line = next(t for t in shown_lines(table) if t.split()[:1] == ["broken"])
            assert ("failed (ConnectionError" if size[0] >= 120 else "failed (") in line
            # counted first on the status line, so a narrow terminal shows it too
            busline = plain(app.busline)
            assert busline.split("·")[1].strip() == "✗ 1 service failed: broken"
            assert isinstance(app.busline.content, Text)
            # announced once, with the error, however often the bus is polled
            polls = app.polls
            await until(pilot, lambda: app.polls >= polls + 3)
            announced = [n for n in app.notes if n[0].startswith("service broken failed")]
            assert announced == [(f"service broken failed: {ERROR}", "error")]
            # Enter on it gives the whole error again
            table.focus()
            table.move_cursor(row=table.get_row_index("broken"))
            await pilot.press("enter")
            assert app.notes[-1] == (f"broken failed: {ERROR}", "error")

    run_app(body)


def test_the_running_services_raise_no_alarm(source, run_app):
    async def body():
        app = Recording(source=source, poll=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.polls >= 2)
            assert "failed:" not in plain(app.busline)
            assert not [n for n in app.notes if n[1] == "error"]
            states = {
                row[1].plain for row in map(app.services_table.full_row, app.services_table.items)
            }
            assert states == {"running"}

    run_app(body)


def test_a_failed_service_error_is_announced_as_text_not_markup(fake_source, run_app):
    import copy

    from tests.busctl.tui.conftest import INSPECT, resolved

    evil = "[bold red]ERR[/] \x1b]0;pwned\x07"
    inspected = copy.deepcopy(INSPECT)
    inspected["services"][0].update(state="failed", error=evil)
    fake_source.inspect = lambda: resolved(copy.deepcopy(inspected))

    class Kept(BusctlApp):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.kept: list[tuple[str, object]] = []

        def notify(self, message, *, markup=True, **kwargs) -> None:
            self.kept.append((str(message), markup))
            super().notify(message, markup=markup, **kwargs)

    async def body():
        app = Kept(source=fake_source, poll=0.05)
        async with app.run_test(size=(120, 35)) as pilot:
            name = inspected["services"][0]["name"]
            await until(pilot, lambda: any(m.startswith(f"service {name}") for m, _ in app.kept))
            table = app.query_one(ServicesTable)
            table.focus()
            table.move_cursor(row=table.get_row_index(name))
            await pilot.press("enter")
            await until(pilot, lambda: app.kept[-1][0].startswith(f"{name} failed"))
            for message, markup in app.kept:
                if "ERR" in message:
                    assert markup is False
                    assert "[bold red]ERR[/]" in message
                    assert "\\x1b]0;pwned\\x07" in message

    run_app(body)
