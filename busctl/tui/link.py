"""The TUI's link to its bus: attaching, word of a lost bus, reconnecting, the live timers.

``Linking`` is a base of ``BusctlApp`` (``busctl.tui.app``), as
``Intervening`` is for stepping in. It attaches on a worker thread (the
``connect`` the app was given, or an already attached ``Source``), fills the
activity log with the bus's history, and runs two timers. Every ``POLL``
seconds an ``inspect`` request goes out (one at a time, awaited as a future,
so the UI never blocks); every ``DRAIN`` seconds the UI takes what the
activity subscription put in the bounded ``ActivityFeed``. Nothing from the
client's or the bus's threads ever calls into Textual: they append to the
feed or set a flag, and the timers read them. When the bus goes away the bus
line says so and ``r`` reconnects.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.message import Message
from textual.widgets import TabPane

from busctl.render.text import visible

from ._source import Source, reconnector
from .activity import ActivityFeed
from .busline import BusLine
from .in_flight import InFlight
from .intervening import Intervening, backfill
from .tables import LiveTable

__all__ = ["Linking"]


class Linking(Intervening):
    """A base of ``BusctlApp``: attaches it to its bus and keeps the screen live.

    ``BusctlApp`` makes the widgets named here (in ``compose``) and keeps the
    state (in ``__init__``); this class reads and updates them.
    """

    POLL: ClassVar[float] = 0.5
    DRAIN: ClassVar[float] = 0.1
    FLOODED: ClassVar[float] = 0.5
    """Seconds between activity-log updates while more comes than one update draws."""
    SLOW: ClassVar[float] = 5.0
    """Seconds an ``inspect`` may take before the header says the bus is slow."""

    busline: BusLine
    tables: tuple[LiveTable, ...]
    replay_pane: TabPane | None
    feed: ActivityFeed
    in_flight: InFlight
    poll_every: float
    drain_every: float
    lost_reason: str | None
    #: ``inspect`` replies shown so far.
    polls: int
    #: The most recent failure with a trace, for ``t``.
    last_error: dict[str, Any] | None
    _connect_fn: Callable[[], Source] | None
    _owned: bool
    _in_flight_shown: int
    _lost: threading.Event
    _polling: bool
    _was_covered: bool
    _next_drain: float

    # Handled as on_busctl_app_connected (and ..._connect_failed): the app's
    # messages, whichever of its bases sends them.
    @dataclass
    class Connected(Message, namespace="busctl_app"):
        """The connect worker attached to a bus."""

        source: Source

    @dataclass
    class ConnectFailed(Message, namespace="busctl_app"):
        """The connect worker found nothing to attach to."""

        reason: str

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
        pane = self.replay_pane
        if pane is None:  # no replay panel in this build
            return
        from .replay_panel import ReplayPanel

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
        if self.covered():
            return  # _tick_drain shows the newest reply when the main screen is back
        for table in self.tables:
            table.show(inspected)
        dropped = self.feed.dropped + (self.source.dropped if self.source is not None else 0)
        self.busline.show(inspected, not_shown=dropped)
        processes = inspected.get("processes")
        if isinstance(processes, list) and self.source is not None:  # a bus across processes
            count = len(processes)
            self.sub_title = f"{self.source.address} · {count} process{'es' if count != 1 else ''}"

    def _tick_drain(self) -> None:
        covered = self.covered()
        if covered != self._was_covered:
            self._was_covered = covered
            self.activity_log.set_covered(covered)
            if not covered:
                if self.inspected is not None:
                    with self._surviving("the tables"):
                        self.show_inspected(self.inspected)
                if self.held_count or self.tabs.active == "holds":
                    self._poll_held_soon()
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

    def on_unmount(self) -> None:
        if self._owned and self.source is not None:
            self.source.close()
