"""The live inspector: tables above, activity below, traces and forms on demand.

    from busctl.tui.app import BusctlApp
    from busctl.tui._source import connect

    BusctlApp(connect=lambda: connect(None)).run()

This module lays the screen out and holds its keys. Attaching, word of a lost
bus, ``r`` to reconnect and the two timers that feed the screen (``inspect``
every ``POLL`` seconds, the activity feed every ``DRAIN``) are its base
``Linking`` (``busctl.tui.link``); holds, edits, copying and ``--safe`` are
``Intervening`` (``busctl.tui.intervening``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from busctl.render.text import visible

from ._source import Source
from .activity import ActivityFeed, ActivityLog
from .busline import BusLine
from .help_screen import HelpScreen
from .holds_panel import HoldsPanel
from .in_flight import InFlight
from .invoke_screen import InvokeScreen
from .link import Linking
from .palette import BusCommands
from .tables import CommandsTable, ListenersTable, LiveTable, ServicesTable
from .trace_screen import TraceScreen

__all__ = ["BusctlApp"]

HAS_REPLAY = importlib.util.find_spec("busctl.tui.replay_panel") is not None
LAYOUTS = ("split", "tables", "activity")


class BusctlApp(Linking):
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
        self._was_covered = False  # by another screen, at the last drain tick
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
