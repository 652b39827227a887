"""The TUI's replay panel: open a trace file, see its events, replay them.

    from busctl.tui.replay_panel import ReplayPanel

    yield ReplayPanel(client=client)                # a bus reached over its socket
    yield ReplayPanel(bus=bus, path="traces/sample.jsonl")   # or one in this process

Keys: ``o`` opens the file named in the path box, ``space`` plays or pauses,
``n`` sends the next step, ``+``/``-`` change the speed (``f``: as fast as
possible), ``c`` toggles replaying read-only commands, ``a`` every command
(side effects too). Recorded gaps longer than 10 s are replayed as 10 s, as
``busctl replay`` does; the report says which. Reading the file and
the replay itself run in worker threads; they only post messages, so the UI
stays responsive. The report (differences, what was not replayed) shows below
the list of steps when the replay ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Static

from busctl.render.text import clipped, visible

from .tables import FitTable

if TYPE_CHECKING:
    from bus import Bus
    from busctl._client import Client
    from busctl.traces import Outcome, ReasonCode, Replayer, ReplayPlan, ReplayReport, Step

__all__ = ["ReplayPanel"]


def _hints() -> dict[ReasonCode, str]:
    """The panel's remedies for why something is not replayed: its own keys."""
    from busctl.traces import ReasonCode

    return {
        ReasonCode.COMMANDS_OFF: "press c to replay read-only commands",
        ReasonCode.NOT_READONLY: "press a to re-execute every command",
    }


def _cell(text: str) -> Text:
    # Names, arguments and results come from the file or the bus: shown as
    # they are (no markup), one line, control characters visible.
    return Text(clipped(visible(text), 400), no_wrap=True)


SPEEDS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
SHOWN_PROBLEMS = 20  # bad lines and spans listed in the report


class StepsTable(FitTable):
    """The steps of a replay plan: the call and its status share the width left.

    Keyed by the step's number. A status that does not fit (``DIFFERS: result:
    {...}``) is cut with an ellipsis; the report below the table has it whole.
    """

    COLUMNS = (("#", "#"), ("at", "at"), ("kind", "kind"), ("call", "call"), ("status", "status"))
    FLEX = ("call", "status")


class ReplayPanel(Widget):
    """Open a trace file, list its events and commands, and replay them onto the bus.

    Args:
        client: the control client of the bus to replay onto.
        bus: a bus in this process (instead of ``client``).
        path: a trace file to open at once.
    """

    DEFAULT_CSS = """
    ReplayPanel { height: 1fr; layout: vertical; }
    ReplayPanel .replay-bar { height: 3; }
    ReplayPanel .replay-bar Input { width: 1fr; }
    ReplayPanel .replay-bar Button { min-width: 8; margin-left: 1; }
    ReplayPanel .replay-status { height: 1; padding: 0 1; color: $text-muted; }
    ReplayPanel StepsTable { height: 1fr; min-height: 4; }
    ReplayPanel .replay-report { height: auto; max-height: 40%; border-top: solid $primary; }
    ReplayPanel .replay-report Static { padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open", "Open"),
        Binding("space", "play_pause", "Play/Pause"),
        Binding("n", "step", "Step"),
        Binding("plus,equals_sign", "faster", "Faster"),
        Binding("minus", "slower", "Slower"),
        Binding("f", "toggle_fast", "Fast"),
        Binding("c", "toggle_commands", "Commands"),
        Binding("a", "toggle_all_commands", "All commands"),
        Binding("escape", "leave_bar", "To the steps", show=False),
    ]

    @dataclass
    class Loaded(Message):
        """A trace file was read and planned (posted by the loading worker)."""

        plan: ReplayPlan
        bad_lines: list[str]
        path: str

    @dataclass
    class LoadFailed(Message):
        """The trace file could not be read."""

        error: str

    @dataclass
    class StepDone(Message):
        """One step was sent (posted by the replay worker)."""

        index: int
        status: str

    @dataclass
    class Finished(Message):
        """The replay ended; ``report`` says what happened."""

        report: ReplayReport

    def __init__(
        self,
        *,
        client: Client | None = None,
        bus: Bus | None = None,
        path: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.client = client
        self.bus = bus
        self.initial_path = path or ""
        # No path given: offer the recording that ships with the package in
        # the path box (opened by `o`, not at once: the tab may be hidden).
        self.offered_path = _sample_path() if path is None else ""
        self.plan: ReplayPlan | None = None
        self.report: ReplayReport | None = None
        self.replayer: Replayer | None = None
        self.speed = 1.0
        self.fast = False
        self.commands = False
        self.all_commands = False

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(classes="replay-bar"):
            yield Input(
                self.initial_path or self.offered_path,
                placeholder="trace file (OTLP JSON lines)",
                id="path",
            )
            yield Button("Open", id="open")
            yield Button("Play", id="play", variant="primary")
            yield Button("Step", id="step")
            yield Button("-", id="slower")
            yield Button("+", id="faster")
        yield Label(self._status_text(), classes="replay-status", id="status")
        yield StepsTable(id="steps")
        with VerticalScroll(classes="replay-report"):
            yield Static("", id="report")

    def focus_default(self) -> None:
        """Focus the path box while no file is open, else the list of steps."""
        if self.plan is None:
            self.query_one("#path", Input).focus()
        else:
            self.query_one(StepsTable).focus()

    def action_leave_bar(self) -> None:
        """Escape from the path box or a button: back to the list of steps."""
        table = self.query_one(StepsTable)
        if self.screen.focused is table:
            raise SkipAction()  # Escape does what it does elsewhere
        table.focus()

    def on_mount(self) -> None:
        if self.initial_path:
            self.action_open()

    def _status_text(self, extra: str = "") -> str:
        pace = "as fast as possible" if self.fast else f"speed x{self.speed:g}"
        commands = "read-only commands too" if self.commands else "events only"
        if self.all_commands:
            commands = "every command, side effects too"
        state = "no file" if self.plan is None else f"{len(self.plan.steps)} steps"
        if self.replayer is not None:
            state += ", paused" if self.replayer.paused else ", playing"
        text = f"{state} · {pace} · {commands}"
        return f"{text} · {extra}" if extra else text

    def _refresh_status(self, extra: str = "") -> None:
        self.query_one("#status", Label).update(self._status_text(extra))

    # -- target --------------------------------------------------------------------

    def _target(self) -> Any:
        from busctl.traces import BusTarget, ClientTarget

        if self.bus is not None:
            return BusTarget(self.bus)
        if self.client is not None:
            return ClientTarget(self.client)
        raise RuntimeError("the replay panel has no bus to replay onto")

    # -- loading ---------------------------------------------------------------------

    def action_open(self) -> None:
        """Read and plan the file named in the path box."""
        path = self.query_one("#path", Input).value.strip()
        if not path:
            self._refresh_status("name a trace file first")
            return
        if self.replayer is not None:
            self.replayer.stop()
        self._load(path, self.commands, self.all_commands)

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay-load")
    def _load(self, path: str, commands: bool, all_commands: bool = False) -> None:
        from busctl.traces import TraceFileError, plan_replay, read_trace_file

        try:
            trace_file = read_trace_file(path)
            readonly = self._target().commands().get if commands else None
        except (TraceFileError, OSError) as exc:
            self.post_message(self.LoadFailed(str(exc)))
            return
        except Exception as exc:  # the bus went away: say so in the panel
            self.post_message(self.LoadFailed(f"{type(exc).__name__}: {exc}"))
            return
        plan = plan_replay(
            trace_file, commands=commands, all_commands=all_commands, readonly=readonly
        )
        bad = [str(e) for e in trace_file.errors]
        self.post_message(self.Loaded(plan, bad, path))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.plan = message.plan
        self.report = None
        self.replayer = None
        table = self.query_one(StepsTable)
        table.reset()
        hints = _hints()
        table.put_rows(
            (
                str(step.index),
                (
                    str(step.index),
                    f"+{step.offset_ns / 1e9:.3f}s",
                    step.kind,
                    _cell(step.call_text()),
                    _cell(f"cannot replay: {step.problem.text(hints)}" if step.problem else ""),
                ),
            )
            for step in message.plan.steps
        )
        lines = [f"{message.path}: {len(message.plan.steps)} steps"]
        warning = message.plan.gap_warning()
        if warning is not None:
            lines.append(warning)
        bad = message.bad_lines
        lines += [f"skipped or mended: {b}" for b in bad[:SHOWN_PROBLEMS]]
        if len(bad) > SHOWN_PROBLEMS:
            more = len(bad) - SHOWN_PROBLEMS
            lines.append(f"{more} more problems: busctl trace check {message.path} lists them all")
        lines += [f"left out: {s.operation}: {r.text(hints)}" for s, r in message.plan.left_out]
        self.query_one("#report", Static).update(
            Text("\n".join(clipped(visible(line), 400) for line in lines))
        )
        table.focus()  # so the panel's keys reach it rather than the path box
        self._refresh_status()

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        self.query_one("#report", Static).update(Text(f"cannot open: {visible(message.error)}"))
        self._refresh_status("open failed")

    # -- playing ----------------------------------------------------------------------

    def _start(self, paused: bool) -> None:
        from busctl.traces import Replayer

        if self.plan is None:
            self._refresh_status("open a trace file first")
            return
        table = self.query_one(StepsTable)
        rows = []  # every status cleared at once: one pass over the rows, not one per row
        for step in self.plan.steps:
            key = str(step.index)
            cells = table.full_row(key)
            rows.append((key, (*cells[:-1], cells[-1] if step.problem else "")))
        table.put_rows(rows)
        self.replayer = Replayer(
            self.plan,
            self._target(),
            speed=self.speed,
            fast=self.fast,
            paused=paused,
            on_step=self._on_step,
        )
        self._run(self.replayer)

    @work(thread=True, exclusive=True, exit_on_error=False, group="replay-run")
    def _run(self, replayer: Replayer) -> None:
        report = replayer.run()
        self.post_message(self.Finished(report))

    def _on_step(self, step: Step, outcome: Outcome | None) -> None:
        # On the replay worker's thread: only post.
        if outcome is None:
            status = "sent"
        elif step.recorded is None or not step.recorded.comparable or not outcome.comparable:
            status = "ran (not compared)"
        elif step.recorded.same_as(outcome):
            status = "as recorded"
        else:
            status = f"DIFFERS: {outcome.describe()}"
        # Worker thread: the message carries the text; the cell is made on the UI's.
        self.post_message(self.StepDone(step.index, status))

    @on(StepDone)
    def _step_done(self, message: StepDone) -> None:
        table = self.query_one(StepsTable)
        key = str(message.index)
        if table.has_row(key):
            table.put_cell(key, "status", _cell(message.status))
            table.move_cursor(row=table.get_row_index(key))
        self._refresh_status(f"step {message.index}")

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.report = message.report
        self.replayer = None
        table = self.query_one(StepsTable)
        for step, reason in message.report.skipped:
            if table.has_row(str(step.index)):
                cell = _cell(f"skipped: {reason.text(_hints())}")
                table.put_cell(str(step.index), "status", cell)
        self.query_one("#report", Static).update(Text(message.report.render(_hints())))
        self.query_one("#play", Button).label = "Play"
        self._refresh_status("finished")

    def action_play_pause(self) -> None:
        """Play from the start, or pause and resume a running replay."""
        button = self.query_one("#play", Button)
        if self.replayer is None:
            self._start(paused=False)
            button.label = "Pause"
        elif self.replayer.paused:
            self.replayer.resume()
            button.label = "Pause"
        else:
            self.replayer.pause()
            button.label = "Play"
        self._refresh_status()

    def action_step(self) -> None:
        """Send the next step (starting a paused replay if none runs)."""
        if self.replayer is None:
            self._start(paused=True)
        if self.replayer is not None:
            if not self.replayer.paused:
                self.replayer.pause()
                self.query_one("#play", Button).label = "Play"
            self.replayer.step()

    def _set_speed(self, speed: float) -> None:
        self.speed = speed
        if self.replayer is not None:
            self.replayer.set_speed(speed)
        self._refresh_status()

    def action_faster(self) -> None:
        """The next speed up."""
        self._set_speed(next((s for s in SPEEDS if s > self.speed), SPEEDS[-1]))

    def action_slower(self) -> None:
        """The next speed down."""
        self._set_speed(next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0]))

    def action_toggle_fast(self) -> None:
        """Switch between the recorded pace and as fast as possible."""
        self.fast = not self.fast
        if self.replayer is not None:
            self.replayer.fast = self.fast
            self.replayer.set_speed(self.speed)  # wakes a waiting replay
        self._refresh_status()

    def action_toggle_commands(self) -> None:
        """Replay read-only commands too (and compare their results), or not; re-plans."""
        self.commands = not self.commands
        self.all_commands = False
        self._refresh_status()
        if self.plan is not None:
            self.action_open()

    def action_toggle_all_commands(self) -> None:
        """Re-execute every command, side effects too, or go back to events only; re-plans."""
        self.all_commands = not self.all_commands
        self.commands = self.all_commands
        self._refresh_status()
        if self.plan is not None:
            self.action_open()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {
            "open": self.action_open,
            "play": self.action_play_pause,
            "step": self.action_step,
            "faster": self.action_faster,
            "slower": self.action_slower,
        }
        action = actions.get(event.button.id or "")
        if action is not None:
            event.stop()
            action()

    @on(Input.Submitted, "#path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_open()

    def on_unmount(self) -> None:
        if self.replayer is not None:
            self.replayer.stop()


def _sample_path() -> str:
    """The sample recording, as short a path as reads well from here."""
    import os

    import sample_services

    path = str(sample_services.sample_trace())
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
