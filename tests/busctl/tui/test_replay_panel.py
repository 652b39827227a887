"""The TUI's replay panel, driven through Textual's test pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, Static

import sample_services
from bus import Bus
from busctl.tui.replay_panel import ReplayPanel, StepsTable
from traces.record_sample import OPTIONS

pytestmark = pytest.mark.timeout(60)

SAMPLE = str(Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl")


def unique(messages, kind):
    """Each message once: the hook sees a message at every node it bubbles through."""
    return list({id(m): m for m in messages if isinstance(m, kind)}.values())


class PanelApp(App[None]):
    def __init__(self, bus: Bus, path: str) -> None:
        super().__init__()
        self.bus, self.path = bus, path

    def compose(self) -> ComposeResult:
        yield ReplayPanel(bus=self.bus, path=self.path)


@pytest.fixture
def bus():
    with Bus(name="panel") as bus:
        sample_services.start(bus, **OPTIONS)
        yield bus


def statuses(panel):
    """Each step's status, whole (the table may cut it to fit)."""
    table = panel.query_one(StepsTable)
    return [table.full_row(str(i + 1))[4].plain for i in range(table.row_count)]


def test_open_lists_steps_then_play_fast_reports(bus):
    asyncio.run(_open_lists_steps_then_play_fast_reports(bus))


async def _open_lists_steps_then_play_fast_reports(bus):
    messages = []
    app = PanelApp(bus, SAMPLE)
    async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
        panel = app.query_one(ReplayPanel)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any(isinstance(m, ReplayPanel.Loaded) for m in messages)
        table = panel.query_one("#steps", DataTable)
        assert table.row_count == len(panel.plan.steps) > 0
        assert "greet_event" in table.get_row_at(0)[3]
        await pilot.press("c")  # read-only commands too: re-planned
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert panel.plan.commands
        await pilot.press("f", "space")
        await app.workers.wait_for_complete()
        await pilot.pause()
        finished = unique(messages, ReplayPanel.Finished)
        assert len(finished) == 1
        report = finished[0].report
        assert report.compared >= 1
        assert all(s in {"sent", "as recorded"} for s in statuses(panel)), statuses(panel)
        assert "replayed" in str(panel.query_one("#report", Static).render())


def test_step_sends_one_at_a_time(bus):
    asyncio.run(_step_sends_one_at_a_time(bus))


async def _step_sends_one_at_a_time(bus):
    messages = []
    app = PanelApp(bus, SAMPLE)
    async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
        panel = app.query_one(ReplayPanel)
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("n")
        for _ in range(200):
            await pilot.pause(0.01)
            if any(isinstance(m, ReplayPanel.StepDone) for m in messages):
                break
        done = [m.index for m in unique(messages, ReplayPanel.StepDone)]
        assert done == [1]
        assert panel.replayer is not None
        assert panel.replayer.paused
        assert statuses(panel)[0] == "sent"
        assert statuses(panel)[1] == ""


def test_a_bad_file_is_reported_in_the_panel(bus, tmp_path):
    asyncio.run(_a_bad_file_is_reported_in_the_panel(bus, tmp_path))


async def _a_bad_file_is_reported_in_the_panel(bus, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    app = PanelApp(bus, str(bad))
    async with app.run_test(size=(140, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        panel = app.query_one(ReplayPanel)
        assert panel.plan is not None
        assert "line 1: not JSON" in str(panel.query_one("#report", Static).render())


def report_text(panel):
    return str(panel.query_one("#report", Static).render())


def test_reasons_offer_the_panels_own_keys_never_a_flag(bus):
    asyncio.run(_reasons_offer_the_panels_own_keys_never_a_flag(bus))


async def _reasons_offer_the_panels_own_keys_never_a_flag(bus):
    # The panel said "use --all-commands": a flag of the CLI, not a key here.
    app = PanelApp(bus, SAMPLE)
    async with app.run_test(size=(140, 40)) as pilot:
        panel = app.query_one(ReplayPanel)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "commands are not replayed (press c to replay read-only commands)" in (
            report_text(panel)
        )
        assert "--" not in report_text(panel)
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "not declared read-only (press a to re-execute every command)" in (
            report_text(panel)
        )
        assert "--" not in report_text(panel)
        await pilot.press("a")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert panel.plan.all_commands
        assert "every command, side effects too" in str(panel.query_one("#status").render())
        assert "not declared read-only" not in report_text(panel)


def test_names_from_the_file_are_shown_not_obeyed(bus, tmp_path):
    asyncio.run(_names_from_the_file_are_shown_not_obeyed(bus, tmp_path))


async def _names_from_the_file_are_shown_not_obeyed(bus, tmp_path):
    from tests.busctl.traces.test_trace_shapes import T0, event, write

    weird = "[bold red]boom[/] \x1b]0;title\x07"
    path = write(tmp_path / "weird.jsonl", [event(1, weird, T0), event(2, "ok", 10**30)])
    app = PanelApp(bus, path)
    async with app.run_test(size=(140, 40)) as pilot:
        panel = app.query_one(ReplayPanel)
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = panel.query_one("#steps", DataTable)
        assert table.row_count == 1
        cell = table.get_row_at(0)[3]
        assert cell.plain == "[bold red]boom[/] \\x1b]0;title\\x07()"
        assert not cell.spans  # the brackets are text, not markup
        assert "start time a 31-digit number ns is out of range" in report_text(panel)


class OfferApp(App[None]):
    """The panel as the TUI makes it: no path given."""

    def __init__(self, bus: Bus) -> None:
        super().__init__()
        self.bus = bus

    def compose(self) -> ComposeResult:
        yield ReplayPanel(bus=self.bus)


def test_with_no_file_the_sample_recording_is_offered(bus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as a pip user: no traces/ folder here
    asyncio.run(_with_no_file_the_sample_recording_is_offered(bus))


async def _with_no_file_the_sample_recording_is_offered(bus):
    messages = []
    app = OfferApp(bus)
    async with app.run_test(size=(140, 40), message_hook=messages.append) as pilot:
        panel = app.query_one(ReplayPanel)
        await pilot.pause()
        path = panel.query_one("#path", Input).value
        assert Path(path).resolve() == sample_services.sample_trace().resolve()
        assert panel.plan is None  # offered, not opened behind the user's back
        panel.action_open()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert unique(messages, ReplayPanel.Loaded)
        assert "greet_event" in panel.query_one("#steps", DataTable).get_row_at(0)[3]
