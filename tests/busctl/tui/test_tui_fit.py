"""What fits on screen: numbers before free text, replay statuses, whole docstrings."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

import sample_services
from bus import Bus
from bus.testing import wait_idle
from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.replay_panel import ReplayPanel
from busctl.tui.tables import (
    CommandsTable,
    FitTable,
    ListenersTable,
    MeasuredTable,
    ServicesTable,
    share,
)
from busctl.tui.trace_screen import TraceScreen
from tests.busctl.tui.conftest import INSPECT, resolved
from tests.busctl.tui.pilot_helpers import plain, shown_lines, until
from traces.record_sample import OPTIONS

pytestmark = pytest.mark.timeout(60)

SAMPLE = str(Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl")


def test_share_gives_narrow_columns_what_they_want_and_splits_the_rest():
    assert share(100, [10, 80], 8) == [10, 80]
    assert share(50, [10, 80], 8) == [10, 40]
    assert share(30, [40, 80], 8) == [15, 15]
    assert share(0, [40, 3], 8) == [8, 3]  # never below the least (or what it wants)
    assert share(40, [50, 25], 8, weights=[3, 1]) == [26, 14]  # 8 each, then 24 shared 3:1
    assert share(28, [46, 25], 8, weights=[3, 1]) == [17, 11]  # the least counts in the room
    for room in range(0, 120):
        widths = share(room, [46, 25, 3], 8, weights=[3, 1, 1])
        assert sum(widths) <= max(room, 8 + 8 + 3)


def _fits(table: FitTable) -> bool:
    used = sum(column.get_render_width(table) for column in table.columns.values())
    return used <= table.scrollable_content_region.width


@pytest.mark.parametrize(
    ("key", "kind", "numbers"),
    [
        ("1", ServicesTable, ["mailbox", "handled", "failed"]),
        ("2", CommandsTable, ["calls", "errors", "p50", "p99"]),
        ("3", ListenersTable, ["deliveries", "errors", "p50"]),
    ],
    ids=["services", "commands", "listeners"],
)
def test_at_80x24_the_numbers_stay_and_free_text_is_cut(key, kind, numbers, source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press(key)
            table = app.query_one(kind)
            await until(pilot, lambda: table.row_count >= 4)
            await pilot.pause()
            await until(pilot, lambda: _fits(table), message=lambda: shown_lines(table)[0])
            header = shown_lines(table)[0].split()
            assert all(label in header for label in numbers), header
            if kind is CommandsTable:
                # the longest signature is cut with an ellipsis, and kept whole
                name = "lights.turn_on"
                line = next(t for t in shown_lines(table) if t.split()[0] == name)
                assert "…" in line
                assert table.full_row(name)[3].plain.endswith("-> LightState")

    run_app(body)


def test_a_signature_is_shown_as_text_not_markup(fake_source, run_app):
    inspected = copy.deepcopy(INSPECT)
    inspected["commands"][0]["signature"] = "(xs: list[int]) -> dict[str, int]"
    fake_source.inspect = lambda: resolved(inspected)

    async def body():
        app = BusctlApp(source=fake_source)
        async with app.run_test(size=(120, 35)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press("2")
            table = app.query_one(CommandsTable)
            await pilot.pause()
            assert any("(xs: list[int]) -> dict[str, int]" in line for line in shown_lines(table))

    run_app(body)


class PanelApp(App[None]):
    def __init__(self, bus: Bus) -> None:
        super().__init__()
        self.bus = bus

    def compose(self) -> ComposeResult:
        yield ReplayPanel(bus=self.bus, path=SAMPLE)


@pytest.mark.parametrize("width", [140, 80])
def test_a_replay_difference_is_shown_as_one(width):
    with Bus(name="panel") as bus:
        sample_services.start(bus, **OPTIONS)
        # One motion more than the recording saw: automation.status will differ.
        bus.fire_event("motion.detected", room="kitchen")
        wait_idle(bus)
        asyncio.run(_replay_shows_the_difference(bus, width))


async def _replay_shows_the_difference(bus: Bus, width: int) -> None:
    app = PanelApp(bus)
    async with app.run_test(size=(width, 40)) as pilot:
        panel = app.query_one(ReplayPanel)
        await until(pilot, lambda: panel.plan is not None)
        await pilot.press("c")  # read-only commands too
        await until(pilot, lambda: panel.plan is not None and panel.plan.commands)
        await pilot.press("f", "space")
        await until(pilot, lambda: panel.report is not None)
        table = panel.query_one("#steps")

        def status_line() -> str:
            return next(t for t in shown_lines(table) if "automation.status" in t)

        # When the status grows, the call column is cut narrower; DataTable
        # measures its columns again only when idle, so wait for that.
        await until(pilot, lambda: status_line().endswith("…"), message=status_line)
        line = status_line()
        assert "DIFFERS: result: {" in line, line
        assert len(line) <= width
        assert "DIFFERS" in str(panel.query_one("#report", Static).render())


def _entry_with_doc(doc: str) -> dict:
    entry = copy.deepcopy(INSPECT["commands"][1])
    entry["doc"] = doc
    return entry


def test_the_call_form_shows_the_whole_docstring(source, run_app):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            app.open_invoke("lights.turn_on")
            await until(pilot, lambda: isinstance(app.screen, InvokeScreen))
            await pilot.pause()
            text = plain(app.screen.query_one("#invoke-doc-text", Static))
            assert "Raises:" in text
            assert "TypeError: the brightness is not an integer." in text
            scroll = app.screen.query_one("#invoke-doc", VerticalScroll)
            assert scroll.max_scroll_y == 0  # all of it on screen at once

    run_app(body)


def test_a_long_docstring_scrolls(fake_source, run_app):
    doc = "Do it.\n\nArgs:\n" + "\n".join(f"    arg{i}: the {i}th." for i in range(40))
    doc += "\n\nRaises:\n    ValueError: the last line."

    async def body():
        app = BusctlApp(source=fake_source)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            app.push_screen(InvokeScreen(fake_source, "command", _entry_with_doc(doc)))
            await pilot.pause()
            screen = app.screen
            static = screen.query_one("#invoke-doc-text", Static)
            assert static.size.height >= len(doc.splitlines()) + 1  # not cut
            scroll = screen.query_one("#invoke-doc", VerticalScroll)
            assert 0 < scroll.size.height < static.size.height
            scroll.scroll_end(animate=False)
            await pilot.pause()
            assert scroll.scroll_y == scroll.max_scroll_y > 0
            assert app.focused is screen.query_one("#param-room")  # typing starts in the form

    run_app(body)


LONG = "motion.detected.in.the.attic"


class _PairsTable(FitTable):
    COLUMNS = (("name", "name"), ("who", "service"))


def _log_rows(table: Widget) -> None:
    assert isinstance(table, ActivityLog)
    entry = {"kind": "event", "name": LONG, "time": 1.7e9, "seq": 0, "caller": "sensor"}
    table.add([{**entry, "args": "[]"}])


def _fit_rows(table: Widget) -> None:
    assert isinstance(table, _PairsTable)
    table.put_rows([("a", (LONG, "sensor"))])


def _measured_rows(table: Widget) -> None:
    assert isinstance(table, MeasuredTable)
    table.add_column("name")
    table.add_row(LONG)


@pytest.mark.parametrize(
    ("make", "fill"),
    [(ActivityLog, _log_rows), (_PairsTable, _fit_rows), (MeasuredTable, _measured_rows)],
    ids=["activity-log", "fit-table", "measured-table"],
)
def test_rows_drawn_before_their_columns_are_measured_are_drawn_again_whole(make, fill, run_app):
    # DataTable measures new cells when idle and caches drawn rows under a
    # count that measuring does not move: a frame drawn in between (the event
    # loop decides; on Python 3.12 the TUI's first frame was one) kept the
    # rows cut to the labels' widths until the next row came.
    class OneTable(App[None]):
        # As in the TUI: a table that fills its place does not resize (which
        # would drop the cached rows) when rows come.
        CSS = "DataTable { height: 1fr; }"

        def compose(self) -> ComposeResult:
            yield make()

    async def body():
        app = OneTable()
        async with app.run_test(size=(100, 10)) as pilot:
            widget = app.query_one(make)
            await pilot.pause()
            fill(widget)
            table = widget.table if isinstance(widget, ActivityLog) else widget
            assert not any(LONG in line for line in shown_lines(table))  # drawn unmeasured
            await pilot.pause()  # idle: the table measures its new cells
            assert any(LONG in line for line in shown_lines(table)), shown_lines(table)

    run_app(body)


def test_every_table_of_the_tui_is_a_measured_one(fake_source, trace_id, run_app):
    async def body():
        app = BusctlApp(source=fake_source)
        async with app.run_test(size=(120, 35)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            assert isinstance(app.activity_log.table, MeasuredTable)
            assert all(isinstance(table, MeasuredTable) for table in app.tables)
            app.open_trace(trace_id)
            await until(pilot, lambda: isinstance(app.screen, TraceScreen) and app.screen.spans)
            assert isinstance(app.screen.query_one("#waterfall"), MeasuredTable)

    run_app(body)
