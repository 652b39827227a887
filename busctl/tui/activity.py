"""The live activity log: a bounded feed filled by the bus, drained by the UI.

    feed = ActivityFeed()
    source.subscribe(feed.append)      # on the client's reader thread: an append, nothing else
    log.add(feed.drain())              # on the UI, from a timer: batched and rate-limited

Under a flood the feed drops its oldest entries instead of growing, and the
log draws only the newest rows of each batch: the UI keeps up however busy
the bus is, and the bus never waits for the UI.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, DataTable, Input, Label

from ._format import ActivityFilter, activity_cells
from .tables import MeasuredTable, clear_rows, fit_columns

__all__ = ["ActivityFeed", "ActivityLog"]


class ActivityFeed:
    """A bounded buffer between a producer thread and the UI.

    ``append`` is called on the producer's thread and only appends (a
    ``deque`` append is atomic); ``drain`` is called on the UI thread.

    Args:
        maxlen: most entries held; older ones are dropped (and counted).
    """

    def __init__(self, maxlen: int = 5000) -> None:
        self.maxlen = maxlen
        self._items: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.received = 0
        self.drained = 0

    def append(self, activity: dict[str, Any]) -> None:
        """Add one entry (any thread; never blocks)."""
        self._items.append(activity)
        self.received += 1  # only the producer thread writes this

    def __len__(self) -> int:
        return len(self._items)

    def drain(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Take up to ``limit`` of the oldest entries (UI thread)."""
        items = self._items
        count = len(items) if limit is None else min(limit, len(items))
        out = [items.popleft() for _ in range(count)]
        self.drained += count
        return out

    @property
    def dropped(self) -> int:
        """Entries lost because the UI did not drain fast enough."""
        return max(self.received - self.drained - len(self._items), 0)


class ActivityLog(Vertical):
    """The activity log with its filter bar; Enter on a row opens the row's trace."""

    DEFAULT_CSS = """
    ActivityLog { height: 1fr; }
    ActivityLog > .filters { height: 1; }
    ActivityLog > .filters Input { border: none; height: 1; padding: 0 1; width: 1fr; }
    ActivityLog > .filters #activity-service { width: 18; }
    ActivityLog > .filters Checkbox { border: none; height: 1; padding: 0 1; width: auto; }
    ActivityLog > .filters Label { width: auto; padding: 0 1; color: $text-muted; }
    ActivityLog > DataTable { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("e", "errors_only", "Errors", show=False),
        Binding("ctrl+l", "clear", "Clear", show=False),
        Binding("escape", "leave_filter", "To the log", show=False),
    ]

    MAX_ROWS: ClassVar[int] = 300
    """Most rows in the table: past it the oldest are removed, down to ``KEEP``."""
    KEEP: ClassVar[int] = 200
    """Rows kept when the table is trimmed (all at once: see ``_trim``)."""
    PER_BATCH: ClassVar[int] = 100
    """Most rows drawn per batch: under a flood only the newest are drawn."""
    STORE: ClassVar[int] = 2000
    """Entries remembered for re-filtering."""

    @dataclass
    class OpenTrace(Message):
        """The user chose an entry: show its trace."""

        trace_id: str
        activity: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = ActivityFilter()
        self.compact = False
        self.paused = False
        #: Another screen is over the log: new entries are held, undrawn (``set_covered``).
        self.covered = False
        self.shown = 0
        self.skipped = 0
        self._store: deque[dict[str, Any]] = deque(maxlen=self.STORE)
        self._held: list[dict[str, Any]] = []
        self._rows: deque[str] = deque()
        self._by_key: dict[str, dict[str, Any]] = {}
        self._keys = itertools.count()
        self._status_text = ""

    def compose(self) -> ComposeResult:
        # Kept as attributes: the UI updates them from timers while another
        # screen (a trace, a form) may be on top.
        self.pattern_input = Input(placeholder="filter: name (lights.*)", id="activity-pattern")
        self.service_input = Input(placeholder="service", id="activity-service")
        self.errors_box = Checkbox("errors", id="activity-errors", compact=True)
        self.status = Label("", id="activity-status")
        self.table: DataTable[Any] = MeasuredTable(id="activity-table", cursor_type="row")
        with Horizontal(classes="filters"):
            yield self.pattern_input
            yield self.service_input
            yield self.errors_box
            yield self.status
        yield self.table

    COMPACT_BELOW: ClassVar[int] = 100
    """Narrower than this, rows are compact (see ``activity_cells``)."""

    def on_mount(self) -> None:
        self._add_columns()
        self._update_status()

    def _add_columns(self) -> None:
        for key, label in (
            ("time", "time"),
            ("kind", "" if self.compact else "kind"),
            ("name", "name"),
            ("who", "service"),
            ("took", "took"),
            ("detail", "detail"),
        ):
            self.table.add_column(label, key=key)

    def on_resize(self) -> None:
        compact = 0 < self.size.width < self.COMPACT_BELOW
        if compact != self.compact:
            self.compact = compact
            self.table.clear(columns=True)
            self._add_columns()
            self._rebuild()

    # -- feeding -------------------------------------------------------------

    def add(self, batch: list[dict[str, Any]]) -> int:
        """Show a batch of new activity (UI thread), unless paused.

        Returns:
            How many rows were drawn: ``PER_BATCH`` means more came than
            were drawn, and the caller may wait a little before the next batch.
        """
        if not batch:
            return 0
        self._store.extend(batch)
        if self.paused or self.covered:
            self._held.extend(batch)
            del self._held[: -self.STORE]
            if self.paused:
                self._update_status()
            return 0
        return self._show([a for a in batch if self.filter.matches(a)])

    def _show(self, entries: list[dict[str, Any]]) -> int:
        flood = len(entries) > self.PER_BATCH
        if flood:
            self.skipped += len(entries) - self.PER_BATCH
            entries = entries[-self.PER_BATCH :]
        if not entries:
            self._update_status()
            return 0
        table = self.table
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        current = self._current_key()
        if flood and following:
            # Rows scrolling past faster than anyone reads: the newest batch
            # replaces the table (clearing is cheap, removing rows is not).
            self._rows.clear()
            self._by_key.clear()
            clear_rows(table)
        for activity in entries:
            key = str(next(self._keys))
            table.add_row(*activity_cells(activity, self.compact), key=key)
            self._rows.append(key)
            self._by_key[key] = activity
        if flood and following:
            fit_columns(table)
        if len(self._rows) > self.MAX_ROWS:
            self._trim()
        self.shown += len(entries)
        if following:
            table.move_cursor(row=table.row_count - 1, animate=False)
        elif current is not None and current in self._by_key:
            table.move_cursor(row=table.get_row_index(current), animate=False, scroll=False)
        self._update_status()
        return len(entries)

    def _trim(self) -> None:
        # DataTable.remove_row renumbers every row and re-places the cursor,
        # so removing old rows one at a time costs rows x rows: under a flood
        # that kept the UI busy most of each second and keys waited. Drawing
        # the newest KEEP rows again, once every MAX_ROWS - KEEP rows, costs rows.
        table = self.table
        while len(self._rows) > self.KEEP:
            self._by_key.pop(self._rows.popleft(), None)
        clear_rows(table)
        for key in self._rows:
            table.add_row(*activity_cells(self._by_key[key], self.compact), key=key)
        fit_columns(table)

    def _current_key(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            value = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return value

    def _rebuild(self) -> None:
        clear_rows(self.table)
        self._rows.clear()
        self._by_key.clear()
        self._show([a for a in self._store if self.filter.matches(a)])
        fit_columns(self.table)

    def _update_status(self) -> None:
        parts = []
        if self.paused:
            parts.append(f"[b yellow]PAUSED[/] {len(self._held)} new")
        if self.filter.active:
            parts.append("[b]filtered[/]")
        if self.skipped:
            parts.append(f"{self.skipped} not drawn")
        text = " · ".join(parts)
        if text != self._status_text:
            # The label sizes itself, so a change means a layout pass: only on a change.
            self._status_text = text
            self.status.update(text)

    # -- the filter ------------------------------------------------------------

    @on(Input.Changed, "#activity-pattern")
    @on(Input.Changed, "#activity-service")
    @on(Checkbox.Changed, "#activity-errors")
    def _filter_changed(self) -> None:
        self.set_filter(
            ActivityFilter(
                pattern=self.pattern_input.value.strip(),
                service=self.service_input.value.strip(),
                errors_only=self.errors_box.value,
            )
        )

    @on(Input.Submitted)
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def set_filter(self, activity_filter: ActivityFilter) -> None:
        """Show only the entries ``activity_filter`` matches (including remembered ones)."""
        if activity_filter == self.filter:
            return
        self.filter = activity_filter
        self._rebuild()

    # -- actions -----------------------------------------------------------------

    def set_covered(self, covered: bool) -> None:
        """Hold new entries undrawn while another screen covers the log; draw them after.

        Nothing is lost: held entries are shown (as after a pause) when the
        log is uncovered, unless it is paused.
        """
        self.covered = covered
        self._release()

    def action_pause(self) -> None:
        """Pause or resume the log (the bus keeps running; new entries are held)."""
        self.paused = not self.paused
        self._release()
        self._update_status()

    def _release(self) -> None:
        if self.paused or self.covered or not self._held:
            return
        held, self._held = self._held, []
        self._show([a for a in held if self.filter.matches(a)])

    def action_leave_filter(self) -> None:
        """Escape from the filter bar: back to the log, the filter kept."""
        if self.screen.focused is self.table:
            raise SkipAction()  # Escape does what it does elsewhere
        self.table.focus()

    def action_errors_only(self) -> None:
        self.errors_box.value = not self.errors_box.value

    def action_clear(self) -> None:
        self._store.clear()
        self.skipped = 0
        self._rebuild()

    @on(DataTable.RowSelected, "#activity-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        activity = self._by_key.get(str(event.row_key.value))
        if activity is None:
            return
        trace_id = activity.get("trace_id")
        if trace_id:
            self.post_message(self.OpenTrace(str(trace_id), activity))
        else:
            self.notify("this entry has no trace (tracing is off)", severity="warning")

    def current(self) -> dict[str, Any] | None:
        """The entry of the highlighted row, if any."""
        key = self._current_key()
        return None if key is None else self._by_key.get(key)

    def entries(self) -> list[dict[str, Any]]:
        """The entries shown, oldest first (for tests)."""
        return [self._by_key[k] for k in self._rows]
