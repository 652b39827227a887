"""What fits on screen: numbers before free text, replay statuses, whole docstrings."""

from __future__ import annotations

import asyncio
import copy
import re
from concurrent.futures import Future
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

import sample_services
from bus import Bus
from bus.testing import wait_idle
from busctl.tui._spans import SpanView
from busctl.tui.activity import ActivityLog
from busctl.tui.app import BusctlApp
from busctl.tui.invoke_screen import InvokeScreen
from busctl.tui.replay_panel import ReplayPanel, StepsTable
from busctl.tui.tables import (
    CommandsTable,
    FitTable,
    ListenersTable,
    MeasuredTable,
    ServicesTable,
    share,
)
from busctl.tui.trace_screen import TraceScreen
from tests.busctl.tui.conftest import ACTIVITY, INSPECT, resolved
from tests.busctl.tui.pilot_helpers import open_failed_call, plain, shown_lines, until
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


def _widths(table: FitTable) -> str:
    widths = {key.value: c.get_render_width(table) for key, c in table.columns.items()}
    region = table.scrollable_content_region.width
    return f"{widths} in {region}, scroll bar {table.show_vertical_scrollbar}: {shown_lines(table)}"


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
# 12 lines: the rows overflow, and the scroll bar takes a column of the 80.
@pytest.mark.parametrize("height", [24, 12])
def test_at_80_columns_the_numbers_stay_and_free_text_is_cut(
    key, kind, numbers, height, source, run_app
):
    async def body():
        app = BusctlApp(source=source)
        async with app.run_test(size=(80, height)) as pilot:
            await until(pilot, lambda: app.inspected is not None)
            await pilot.press(key)
            table = app.query_one(kind)
            await until(pilot, lambda: table.row_count >= 4)
            await pilot.pause()
            await until(pilot, lambda: _fits(table), message=lambda: _widths(table))
            header = shown_lines(table)[0].split()
            assert all(label in header for label in numbers), header
            if kind is CommandsTable:
                # the longest signature is cut with an ellipsis, and kept whole
                name = "lights.turn_on"
                table.move_cursor(row=table.get_row_index(name))  # scrolled to, at 12 lines
                await pilot.pause()
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


class StepsApp(App[None]):
    def compose(self) -> ComposeResult:
        yield StepsTable()


def test_columns_shrink_when_the_rows_do(run_app):
    # DataTable keeps a column as wide as its widest cell ever was (Textual
    # #3449): a trace opened again with other steps cut its statuses at the
    # screen's edge, not with "…".
    async def body():
        app = StepsApp()
        async with app.run_test(size=(80, 20)) as pilot:
            table = app.query_one(StepsTable)
            table.put_rows([(str(i), (str(i), "+0.1s", "event", "x" * 70, "")) for i in range(3)])
            await pilot.pause()
            assert _fits(table)
            table.reset()
            await pilot.pause()
            assert table.columns[ColumnKey("call")].get_render_width(table) == len("call") + 2
            table.put_rows(
                [(str(i), (str(i), "+0.1s", "event", "f()", "as recorded")) for i in range(3)]
            )
            await pilot.pause()
            assert shown_lines(table)[1] == " 0  +0.1s  event  f()   as recorded"
            # A status that grows cuts the call narrower: its column follows at once.
            table.put_rows([("0", ("0", "+0.1s", "event", "y" * 70, "as recorded"))])
            table.put_cell("0", "status", "DIFFERS: " + "z" * 70)
            await pilot.pause()
            assert _fits(table)
            assert shown_lines(table)[1].endswith("…")

    run_app(body)


class LabelledTable(FitTable):
    COLUMNS = (("name", "name"), ("signature", "signature"), ("calls", "calls"))
    FLEX = ("signature",)
    FLEX_LEAST = 4


class LabelledApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LabelledTable()


@pytest.mark.parametrize("rows", [3, 30], ids=["no-scroll-bar", "scroll-bar"])
def test_a_flexible_column_narrower_than_its_heading_cuts_the_heading(rows, run_app):
    # A DataTable column is never narrower than its label: a signature cut to
    # 8 cells under the 9-cell "signature" pushed the table a cell past the
    # screen's edge (CI, stop 17, with the scroll bar taking a column).
    async def body():
        app = LabelledApp()
        async with app.run_test(size=(34, 12)) as pilot:
            table = app.query_one(LabelledTable)
            table.put_rows([(str(i), ("x" * 16, "y" * 40, str(i))) for i in range(rows)])
            await pilot.pause()
            await until(pilot, lambda: _fits(table), timeout=2, message=lambda: _widths(table))
            header = shown_lines(table)[0]
            assert re.search(r"\bsig\w*…", header), header
            assert header.rstrip().endswith("calls"), header
            # the heading is whole again when there is room for it
            await pilot.resize_terminal(80, 12)
            await until(pilot, lambda: "signature" in shown_lines(table)[0], timeout=2)
            assert _fits(table)

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

        # The status grows and the call column is cut narrower: wait until the
        # screen shows both (test_columns_shrink_when_the_rows_do is the bug).
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


def test_a_trace_drawn_again_narrower_fits(source, sample_bus, run_app):
    # The waterfall is drawn again on a resize; its columns kept the old widths
    # and the timeline ran off a narrowed screen.
    async def body():
        app = BusctlApp(source=source, drain=0.05)
        async with app.run_test(size=(160, 35)) as pilot:
            screen = await open_failed_call(app, pilot, sample_bus)
            await until(pilot, lambda: screen.spans)
            table = screen.query_one("#waterfall", DataTable)
            await until(pilot, lambda: _used(table) > 120)
            await pilot.resize_terminal(90, 35)
            await until(pilot, lambda: _used(table) <= 90, message=lambda: _used(table))
            # The axis's end, the trace's length, is on screen.
            assert re.search(r"─[\d.]+ (µs|ms|s)$", shown_lines(table)[0]), shown_lines(table)[0]

    run_app(body)


class NoTraceSource:
    def traces(self, trace_id: str) -> Future[dict]:
        done: Future[dict] = Future()
        done.set_result({})
        return done


class WaterfallApp(App[None]):
    def on_mount(self) -> None:
        self.push_screen(TraceScreen(NoTraceSource(), "ab" * 16))  # type: ignore[arg-type]


@pytest.mark.parametrize("width", [60, 90, 140])
def test_a_waterfall_of_short_names_fits_under_its_longer_headings(width, run_app):
    # "service" and "thread" are wider than "io" and "t1": the columns take
    # their headings' widths, and the timeline counted only the names'.
    spans = [
        SpanView(
            span_id=f"{n:016x}",
            parent_id="" if n == 0 else f"{0:016x}",
            name=f"io.f{n}",
            kind="SERVER",
            start_ns=1_000 * n,
            end_ns=1_000 * n + 500,
            attributes={"bus.service": "io", "thread.name": "t1"},
            events=[],
            error=False,
            status_message="",
            depth=min(n, 1),
        )
        for n in range(3)
    ]

    async def body():
        app = WaterfallApp()
        async with app.run_test(size=(width, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, TraceScreen))
            screen = app.screen
            assert isinstance(screen, TraceScreen)
            screen.show(spans)
            table = screen.query_one("#waterfall", DataTable)
            await pilot.pause()
            room = table.scrollable_content_region.width
            assert _used(table) <= room, (_used(table), room, shown_lines(table))
            assert re.search(r"─[\d.]+ (µs|ms|s)$", shown_lines(table)[0]), shown_lines(table)[0]

    run_app(body)


def _used(table: DataTable) -> int:
    return sum(column.get_render_width(table) for column in table.columns.values())


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ActivityLog()


def test_the_activity_columns_shrink_when_a_flood_replaces_the_rows(run_app):
    # A flood replaces the table's rows; a long name gone with them kept its
    # column wide, and every later row was cut at the screen's edge.
    async def body():
        app = LogApp()
        async with app.run_test(size=(100, 30)) as pilot:
            log = app.query_one(ActivityLog)
            await pilot.pause()
            long = {**ACTIVITY[1], "name": "x." + "y" * 60}
            log.add([long])
            await pilot.pause()
            name = log.table.columns[ColumnKey("name")]
            assert name.get_render_width(log.table) > 60
            log.add([dict(ACTIVITY[4], seq=n) for n in range(ActivityLog.PER_BATCH + 1)])
            await until(pilot, lambda: name.get_render_width(log.table) < 30)


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
            if not isinstance(widget, FitTable):  # which measures what it puts at once
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
