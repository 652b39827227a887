"""The Holds panel: the holds set, the work they hold, and keys to let it go, edit it or drop it.

    panel = HoldsPanel(id="holds-panel")
    panel.show(held_result)          # the ``held`` method's result, on every poll

Set a hold with ``h`` on a command, a listener or an activity row (the app
does that); here ``Enter`` releases the highlighted item as it was, ``e``
opens it to edit its arguments first, ``d`` drops it, ``a`` releases
everything, and ``u`` ends the highlighted hold (what it held goes on). The
panel only says what was asked (``HoldsPanel.Act``); the app sends it to
the bus and shows the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label

from busctl.render.intervene import HELD, HOLDS

from .tables import LiveTable, layout

__all__ = ["HeldTable", "HoldsPanel", "HoldsTable"]


class HoldsTable(LiveTable):
    """The holds: pattern, what they catch, where, how much, when they end."""

    SPEC = HOLDS
    COLUMNS, FLEX, FLEX_WEIGHTS, KEEP_END = layout(HOLDS)


class HeldTable(LiveTable):
    """What is held: id, kind, name, where it was going, its arguments, how long it waited."""

    SPEC = HELD
    COLUMNS, FLEX, FLEX_WEIGHTS, KEEP_END = layout(HELD)


class HoldsPanel(Vertical):
    """The holds and what they hold, live; keys act on the highlighted row."""

    DEFAULT_CSS = """
    HoldsPanel { height: 1fr; }
    HoldsPanel > #holds-table { height: auto; max-height: 35%; }
    HoldsPanel > #held-table { height: 1fr; }
    HoldsPanel > Label { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "release", "Release", show=False),
        Binding("e", "edit", "Edit & release"),
        Binding("d", "drop", "Drop"),
        Binding("a", "release_all", "Release all"),
        Binding("u", "unhold", "Unhold"),
    ]

    @dataclass
    class Act(Message):
        """Ask the bus: ``method`` with ``params`` (``release``, ``drop``, ``unhold``)."""

        method: str
        params: dict[str, Any]
        what: str

    @dataclass
    class Edit(Message):
        """Open held item ``item`` to edit its arguments before it is let go."""

        item: dict[str, Any] = field(default_factory=dict)

    def compose(self) -> ComposeResult:
        self.holds_table = HoldsTable(id="holds-table")
        self.held_table = HeldTable(id="held-table")
        self.status = Label(_NONE, id="holds-status")
        self._status_text = _NONE
        yield self.status
        yield self.holds_table
        yield self.held_table

    def show(self, result: dict[str, Any]) -> None:
        """Bring both tables up to date with a ``held`` result."""
        self.holds_table.show(result)
        self.held_table.show(result)
        holds, held = len(result.get("holds") or ()), len(result.get("held") or ())
        if not holds:
            text = _NONE
        else:
            text = (
                f"{holds} hold{'s' if holds != 1 else ''}, {held} held · Enter release · "
                "e edit · d drop · a release all · u end the hold"
            )
        if text != self._status_text:
            # The label sizes itself, so a change means a layout pass: only on a change.
            self._status_text = text
            self.status.update(text)

    def focus_default(self) -> None:
        """Focus what the keys act on: the held items, else the holds."""
        (self.held_table if self.held_table.row_count else self.holds_table).focus()

    # -- keys ----------------------------------------------------------------------

    def _item(self) -> dict[str, Any] | None:
        current = self.held_table.current()
        if current is None:
            self.notify("nothing held is highlighted", severity="warning")
            return None
        return current[1]

    def action_release(self) -> None:
        """Let the highlighted item go, as it was."""
        if self.screen.focused is self.holds_table:
            self.action_unhold()
            return
        item = self._item()
        if item is not None:
            self.post_message(self.Act("release", {"id": item["id"]}, f"release {item['id']}"))

    def action_edit(self) -> None:
        """Edit the highlighted item's arguments, then let it go."""
        item = self._item()
        if item is not None:
            self.post_message(self.Edit(item))

    def action_drop(self) -> None:
        """Drop the highlighted item: a call fails, a delivery is counted dropped."""
        item = self._item()
        if item is not None:
            self.post_message(self.Act("drop", {"id": item["id"]}, f"drop {item['id']}"))

    def action_release_all(self) -> None:
        """Let everything held go, as it was."""
        self.post_message(self.Act("release", {"all": True}, "release all"))

    def action_unhold(self) -> None:
        """End the hold of the highlighted item, else the highlighted hold."""
        item = None if self.screen.focused is self.holds_table else self.held_table.current()
        if item is not None:
            hold_id = item[1].get("hold")
        else:  # the highlighted hold (with nothing held, the one the panel shows first)
            current = self.holds_table.current()
            hold_id = current[1]["id"] if current is not None else None
        if hold_id is None:
            self.notify("no hold is highlighted", severity="warning")
            return
        for one in self._siblings(hold_id):
            self.post_message(self.Act("unhold", {"id": one}, f"unhold {one}"))

    def _siblings(self, hold_id: Any) -> list[Any]:
        """``hold_id`` and, on a bus across processes, the same hold in the other processes.

        `h` there sets one hold per process (ids ``N@PROCESS``): ending it
        ends them all, as `busctl unhold PATTERN` would, and no other hold.
        """
        holds = list(self.holds_table.items.values())
        this = next((h for h in holds if h.get("id") == hold_id), None)
        if this is None or not this.get("process"):
            return [hold_id]
        same = ("pattern", "kind", "service")
        return [
            h["id"]
            for h in holds
            if h.get("process") and all(h.get(k) == this.get(k) for k in same)
        ]

    def on_live_table_chosen(self, message: LiveTable.Chosen) -> None:
        # Enter on a row: the panel's own keys, not the app's (which opens forms).
        message.stop()
        if message.table is self.holds_table:
            self.action_unhold()
        else:
            self.action_release()


_NONE = "no holds: press h on a command, a listener or an activity row to hold it"
