"""The TUI's replay panel, driven through Textual's test pilot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

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
