"""The live inspector: tables above, activity below, traces and forms on demand.

    from busctl.tui.app import BusctlApp
    from busctl.tui._source import connect

    BusctlApp(connect=lambda: connect(None)).run()

Two timers feed the screen. Every ``POLL`` seconds an ``inspect`` request
goes out (one at a time, awaited as a future, so the UI never blocks); every
``DRAIN`` seconds the UI takes what the activity subscription put in the
bounded ``ActivityFeed``. Nothing from the client's or the bus's threads ever
calls into Textual: they append to the feed or set a flag, and the timers read
them. When the bus goes away the header says so and ``r`` reconnects.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from busctl.render.text import visible

from ._source import Source, reconnector
from .activity import ActivityFeed, ActivityLog
from .busline import BusLine
from .help_screen import HelpScreen
from .holds_panel import HoldsPanel
from .in_flight import InFlight
from .intervening import Intervening, backfill
from .invoke_screen import InvokeScreen
from .palette import BusCommands
from .tables import CommandsTable, ListenersTable, LiveTable, ServicesTable
from .trace_screen import TraceScreen

__all__ = ["BusctlApp"]

_log = logging.getLogger(__name__)
HAS_REPLAY = importlib.util.find_spec("busctl.tui.replay_panel") is not None
LAYOUTS = ("split", "tables", "activity")


class BusctlApp(Intervening):
    """The ``busctl tui`` application.

    Args:
        connect: called on a worker thread to attach (and again to reconnect);
            returns a ``Source``. The app closes the sources it opens this way.
        source: an already attached source. Without ``connect`` (tests) the
            app does not close it; with ``connect`` it is the first attachment
            and the app owns it.
        poll: seconds between ``inspect`` requests.
        drain: seconds between activity-log updates.
        safe: ask before running a command not declared read-only.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "busctl"
    COMMANDS = App.COMMANDS | {BusCommands}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("c", "call", "Call"),
        Binding("x", "cancel_call", "Cancel call"),  # in the footer while a call runs
        Binding("f", "fire", "Fire"),
        Binding("slash", "filter", "Filter"),
        Binding("t", "last_error", "Last error", show=False),
        Binding("m", "layout", "Layout"),
        Binding("r", "reconnect", "Reconnect"),
        Binding("h", "hold", "Hold"),
        Binding("y", "copy", "Copy as", show=False),
        Binding("1", "tab('services')", "Services", show=False),
        Binding("2", "tab('commands')", "Commands", show=False),
        Binding("3", "tab('listeners')", "Listeners", show=False),
        Binding("4", "tab('replay')", "Replay", show=False),
        Binding("5", "tab('holds')", "Holds", show=False),
    ]

    POLL: ClassVar[float] = 0.5
    DRAIN: ClassVar[float] = 0.1
    FLOODED: ClassVar[float] = 0.5
    """Seconds between activity-log updates while more comes than one update draws."""
    SLOW: ClassVar[float] = 5.0
    """Seconds an ``inspect`` may take before the header says the bus is slow."""

    @dataclass
    class Connected(Message):
        """The connect worker attached to a bus."""

        source: Source

    @dataclass
    class ConnectFailed(Message):
        """The connect worker found nothing to attach to."""

        reason: str

    def __init__(
        self,
        connect: Callable[[], Source] | None = None,
        *,
        source: Source | None = None,
        poll: float | None = None,
        drain: float | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        if connect is None and source is None:
            raise ValueError("give connect or source")
        self._connect_fn = connect
        self.source: Source | None = source
        self._owned = connect is not None
        self.poll_every = poll or self.POLL
        self.drain_every = drain or self.DRAIN
        self.feed = ActivityFeed()
        self.in_flight = InFlight()  # calls this TUI started that still run, for x to cancel
        self._in_flight_shown = 0
        self.inspected: dict[str, Any] | None = None
        self.connected = False
        self.lost_reason: str | None = None
        self._lost = threading.Event()  # set from the client's thread; read by the drain timer
        self._polling = False
        self._next_drain = 0.0
        self._layout = 0
        self.polls = 0
        self.last_error: dict[str, Any] | None = None
        self.safe = safe
        self.last_calls = {}
        #: What each form was last filled with, by (kind, name): a form opens with it.
        self.form_memory: dict[tuple[str, str], dict[str, str]] = {}

    # -- layout -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The main screen's widgets are kept as attributes: timers update them
        # while a trace or a form is the active screen (where queries look).
        self.busline = BusLine("connecting…", id="busline")
        self.main = Vertical(id="main", classes="split")
        self.tabs = TabbedContent(id="tabs", initial="services")
        self.services_table = ServicesTable(id="services-table")
        self.commands_table = CommandsTable(id="commands-table")
        self.listeners_table = ListenersTable(id="listeners-table")
        self.tables: tuple[LiveTable, ...] = (
            self.services_table,
            self.commands_table,
            self.listeners_table,
        )
        self.activity_log = ActivityLog(id="activity")
        self.replay_pane: TabPane | None = None
        yield Header(show_clock=False, icon="◆")
        yield self.busline
        with self.main:
            with self.tabs:
                with TabPane("Services", id="services"):
                    yield self.services_table
                with TabPane("Commands", id="commands"):
                    yield self.commands_table
                with TabPane("Listeners", id="listeners"):
                    yield self.listeners_table
                if HAS_REPLAY:
                    self.replay_pane = TabPane("Replay", id="replay")
                    with self.replay_pane:
                        yield Static("the replay panel opens once attached", id="replay-wait")
                with TabPane("Holds", id="holds"):
                    self.holds_panel = HoldsPanel(id="holds-panel")
                    yield self.holds_panel
            yield self.activity_log
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.poll_every, self._tick_poll, name="poll")
        self.set_interval(self.drain_every, self._tick_drain, name="drain")
        if self.source is not None and self._owned:
            first = self.source
            self.source = None
            self._connect(lambda: first)  # subscribing blocks: on the worker thread
        elif self.source is not None:
            self._attach_existing(self.source)
        else:
            self._connect()

    # -- attaching ----------------------------------------------------------------

    def _attach_existing(self, source: Source) -> None:
        # A source given attached (tests, an embedding app): the one wait on
        # the UI thread, once, and short; `busctl tui` attaches on a worker.
        backfill(source, self.feed.append, timeout=2.0)
        source.subscribe(self.feed.append)
        source.on_disconnect(self._lost.set)
        self._attached(source)

    @work(thread=True, exclusive=True, group="connect", exit_on_error=False)
    def _connect(self, connect: Callable[[], Source] | None = None) -> None:
        # A worker thread: connecting and subscribing block. It only posts messages.
        connect = connect or self._connect_fn
        assert connect is not None
        try:
            source = connect()
        except Exception as exc:
            self.post_message(self.ConnectFailed(str(exc) or type(exc).__name__))
            return
        try:
            # What happened before the app came is what the log starts with.
            backfill(source, self.feed.append)
            source.subscribe(self.feed.append)
            source.on_disconnect(self._lost.set)
        except Exception as exc:
            source.close()
            self.post_message(self.ConnectFailed(f"cannot subscribe: {exc}"))
            return
        self.post_message(self.Connected(source))

    @on(Connected)
    def _on_connected(self, message: Connected) -> None:
        self._attached(message.source)

    @on(ConnectFailed)
    def _on_connect_failed(self, message: ConnectFailed) -> None:
        self.connected = False
        self.lost_reason = message.reason
        self.sub_title = "not attached"
        self.busline.not_attached(message.reason)

    def _attached(self, source: Source) -> None:
        self.source = source
        self.connected = True
        self.lost_reason = None
        self.title = f"busctl · {source.name}"
        self.sub_title = (
            "embedded sample bus: no bus was running, so it runs in this process"
            if source.embedded
            else str(source.address)
        )
        self._mount_replay(source)
        self._tick_poll()

    def _mount_replay(self, source: Source) -> None:
        if not HAS_REPLAY:
            return
        from .replay_panel import ReplayPanel

        pane = self.replay_pane
        if pane is None:
            return
        for child in list(pane.children):
            child.remove()
        client = getattr(source, "client", None)
        bus = None if client is not None else getattr(source, "bus", None)
        pane.mount(ReplayPanel(client=client, bus=bus))

    def _mark_lost(self, reason: str) -> None:
        if not self.connected:
            return
        self.connected = False
        self.lost_reason = reason
        name = self.source.name if self.source is not None else "?"
        self.sub_title = "DISCONNECTED"
        self.busline.went_away(name, reason)
        self.notify(
            visible(f"bus {name} went away: press r to reconnect"),
            severity="error",
            timeout=6,
            markup=False,
        )
        source = self.source
        if source is not None and self._owned:
            self._close_source(source)

    @work(thread=True, group="close", exit_on_error=False)
    def _close_source(self, source: Source) -> None:
        source.close()

    def action_reconnect(self) -> None:
        """Attach again after the bus went away (or the first attempt failed)."""
        if self.connected:
            self.notify("attached: nothing to reconnect")
            return
        again = None if self.source is None else reconnector(self.source)
        if self._connect_fn is None and again is None:
            self.notify("this view was given its bus: cannot reconnect", severity="warning")
            return
        self._lost.clear()
        self.busline.update("reconnecting…")
        self._connect(again)

    # -- the timers -----------------------------------------------------------------

    def _tick_poll(self) -> None:
        if self.connected and not self._polling and self.source is not None:
            self._polling = True
            self._poll(self.source)

    @work(group="poll", exit_on_error=False)
    async def _poll(self, source: Source) -> None:
        try:
            inspected = await asyncio.wait_for(
                asyncio.wrap_future(source.inspect()), timeout=self.SLOW
            )
        except TimeoutError:
            if source is self.source and self.connected:
                self.busline.slow(source.name, self.SLOW)
            return
        except Exception as exc:
            if source is self.source and (source.closed or self._lost.is_set()):
                self._mark_lost(str(exc) or type(exc).__name__)
            return
        finally:
            self._polling = False
        if source is not self.source or not isinstance(inspected, dict):
            return
        self.polls += 1
        with self._surviving("the tables"):
            self.show_inspected(inspected)
        totals = inspected.get("totals") or {}
        if totals.get("holds") or self.held_count or self.tabs.active == "holds":
            self._poll_held(source)

    def show_inspected(self, inspected: dict[str, Any]) -> None:
        """Bring the tables and the bus line up to date."""
        self.inspected = inspected
        for table in self.tables:
            table.show(inspected)
        dropped = self.feed.dropped + (self.source.dropped if self.source is not None else 0)
        self.busline.show(inspected, not_shown=dropped)
        processes = inspected.get("processes")
        if isinstance(processes, list) and self.source is not None:  # a bus across processes
            count = len(processes)
            self.sub_title = f"{self.source.address} · {count} process{'es' if count != 1 else ''}"

    def _tick_drain(self) -> None:
        running = self.in_flight.count()
        if running != self._in_flight_shown:  # calls end on other threads: seen here
            self._in_flight_shown = running
            self.refresh_bindings()
        if self._lost.is_set() and self.connected:
            error = getattr(getattr(self.source, "client", None), "error", None)
            self._mark_lost(str(error) if error else "connection closed")
        if time.monotonic() < self._next_drain:
            return  # flooded: the feed holds (and counts) what comes meanwhile
        batch = self.feed.drain()
        if batch:
            with self._surviving("the activity log"):
                for activity in reversed(batch):
                    if activity.get("error") and activity.get("trace_id"):
                        self.last_error = activity
                        break
                drawn = self.activity_log.add(batch)
                if drawn >= self.activity_log.PER_BATCH:
                    # Drawing a full batch costs the UI tens of milliseconds;
                    # every tick of a flood would leave keys waiting behind it.
                    self._next_drain = time.monotonic() + self.FLOODED

    # -- actions ---------------------------------------------------------------------

    MAIN_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "call",
            "cancel_call",
            "fire",
            "filter",
            "last_error",
            "layout",
            "tab",
            "quit",
            "reconnect",
            "hold",
            "copy",
        }
    )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The main screen's keys are hidden (and off) over a trace or a form:
        # there q goes back, and Ctrl+Q still quits.
        if action in self.MAIN_ACTIONS and len(self.screen_stack) > 1:
            return False
        if action == "cancel_call":  # x: shown only while a call started here runs
            return self.in_flight.count() > 0
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        if tab == "replay" and not HAS_REPLAY:
            self.notify("no replay panel in this build")
            return
        self.tabs.active = tab
        if self._layout == 2:
            self.action_layout()
        self._focus_tab()

    def _focus_tab(self) -> None:
        # Focus follows the tab: keys typed next must reach what is on screen,
        # not a table the tab just hid (and, on Replay, the path box, not app keys).
        active = self.tabs.active
        for table in self.tables:
            if table.id == f"{active}-table":
                table.focus()
        if active == "holds":
            self.holds_panel.focus_default()
            self._poll_held_soon()
        if active == "replay" and self.replay_pane is not None:
            from .replay_panel import ReplayPanel

            panels = self.replay_pane.query(ReplayPanel)
            if panels:
                panels.first().focus_default()
            else:  # not attached yet: nothing there takes keys
                self.screen.set_focus(None)

    def action_layout(self) -> None:
        """Cycle: tables and activity, tables only, activity only."""
        self._layout = (self._layout + 1) % len(LAYOUTS)
        self.main.set_classes(LAYOUTS[self._layout])
        if LAYOUTS[self._layout] == "activity":
            self.activity_log.table.focus()
        else:
            self._focus_tab()

    def action_filter(self) -> None:
        """Type a filter for the activity log (showing it if hidden)."""
        if LAYOUTS[self._layout] == "tables":
            self._layout = 0
            self.main.set_classes(LAYOUTS[0])
        self.activity_log.pattern_input.focus()

    def action_call(self) -> None:
        """Call the highlighted command (or go to the commands tab)."""
        tabs = self.tabs
        if tabs.active == "commands":
            current = self.commands_table.current()
            if current is not None:
                self.open_invoke(current[0])
                return
        tabs.active = "commands"
        self._focus_tab()
        self.notify("choose a command and press Enter (or Ctrl+P to search)")

    def action_cancel_call(self) -> None:
        """Cancel the running call this TUI started of the highlighted command."""
        current = self.commands_table.current() if self.tabs.active == "commands" else None
        if current is None:
            self.notify("choose the command on the Commands tab (2), then press x")
            return
        name = str(current[0])
        call = self.in_flight.latest(name)
        if call is None or self.source is None:
            self.notify(f"no call of {name} started here is running")
            return
        self._cancel(self.source, call, name)

    @work(group="cancel", exit_on_error=False)
    async def _cancel(self, source: Source, call: Any, name: str) -> None:
        from busctl._cancel import describe

        try:
            outcome = await asyncio.wrap_future(source.cancel(call))
        except Exception as exc:  # the connection ended, or the bus refused: say why
            self.notify(f"could not cancel {name}: {exc}", severity="error")
            return
        self.notify(
            describe(outcome, name), severity="information" if outcome == "cancelled" else "warning"
        )

    def action_fire(self) -> None:
        """Fire an event: the highlighted listener's, or any name."""
        name = None
        if self.tabs.active == "listeners":
            current = self.listeners_table.current()
            if current is not None:
                name = str(current[1].get("pattern"))
        self.open_fire(name)

    @work(group="forms", exclusive=True, exit_on_error=False)
    async def _show_form(self, screen: InvokeScreen) -> None:
        """Show a form once it has the bus's contract of its name (types, choices, defaults)."""
        await screen.load_contract()
        self.push_screen(screen)

    def action_last_error(self) -> None:
        """Open the trace of the most recent failure."""
        if self.last_error is None:
            self.notify("no failure seen since the start")
            return
        self.open_trace(str(self.last_error["trace_id"]))

    def open_trace(self, trace_id: str) -> None:
        """Show trace ``trace_id``."""
        source = self._usable()
        if source is not None:
            self.push_screen(TraceScreen(source, trace_id))

    @on(LiveTable.Chosen)
    def _chosen(self, message: LiveTable.Chosen) -> None:
        if isinstance(message.table, CommandsTable):
            self.open_invoke(message.key)
        elif isinstance(message.table, ListenersTable):
            self.open_fire(str(message.item.get("pattern")))
        elif isinstance(message.table, ServicesTable):
            self.activity_log.service_input.value = message.key
            if message.item.get("state") == "failed":
                # The table cuts the error to fit: here it is whole (the bus's
                # text: shown, never read as markup).
                error = message.item.get("error") or "no error given"
                text = visible(f"{message.key} failed: {error}")
                self.notify(text, severity="error", timeout=15, markup=False)
            else:
                text = visible(f"activity of {message.key} only (clear the service box for all)")
                self.notify(text, markup=False)

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_activated(self) -> None:
        # A tab chosen with the mouse takes the focus as a number key does.
        self._focus_tab()

    @on(ActivityLog.OpenTrace)
    def _open_trace(self, message: ActivityLog.OpenTrace) -> None:
        self.open_trace(message.trace_id)

    def on_unmount(self) -> None:
        if self._owned and self.source is not None:
            self.source.close()
