"""The TUI's side of stepping into the bus: holds, edits, copying calls, asking first, history.

``Intervening`` is mixed into ``BusctlApp``: its keys (``h`` hold the
highlighted command, listener or activity row; ``y`` copy it as a command
line, Python or JSON-RPC), what the Holds panel asks for (release, edit,
drop, unhold), the ``held`` poll that keeps the panel live, ``--safe``'s
question before a command not declared read-only, and the activity that
history gives the log when the app attaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from textual import work
from textual.app import App
from textual.widgets import DataTable, TabbedContent

from busctl.render.intervene import activity_records, hold_text
from busctl.render.text import visible

from .activity import ActivityLog
from .confirm_screen import ConfirmScreen
from .copy_screen import CopyScreen
from .edit_screen import EditScreen
from .holds_panel import HoldsPanel
from .invoke_screen import InvokeScreen
from .tables import CommandsTable, ListenersTable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._source import Source

__all__ = ["BACKFILL", "Intervening", "backfill"]

_log = logging.getLogger(__name__)

BACKFILL = 200
"""History entries the activity log is filled with when the app attaches."""


def backfill(source: Source, put: Callable[[dict[str, Any]], None], timeout: float = 5.0) -> int:
    """Put the bus's recent history into the log's feed, oldest first (a worker thread).

    A bus that keeps no history (tracing off, or an older bus) gives none;
    nothing here fails the attaching. Returns how many records were put.
    """
    try:
        result = source.request(
            "history", {"limit": BACKFILL, "kinds": ["call", "event", "delivery"]}
        ).result(timeout)
    except Exception as exc:  # an older bus, or tracing off: a log that starts empty
        _log.debug("no history to fill the activity log: %s", exc)
        return 0
    count = 0
    for entry in (result or {}).get("entries", []) if isinstance(result, dict) else []:
        if isinstance(entry, dict):
            for record in activity_records(entry):
                put({**record, "history": True})
                count += 1
    return count


def _args_of(record: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """An activity record's arguments as values (the bus sends JSON text)."""
    values: list[Any] = []
    for key, empty in (("args", []), ("kwargs", {})):
        text = record.get(key)
        try:
            value = json.loads(text) if isinstance(text, str) else (text or empty)
        except ValueError:
            value = empty
        values.append(value if isinstance(value, type(empty)) else empty)
    return values[0], values[1]


class Intervening(App[None]):
    """A base of ``BusctlApp`` (under ``Linking``): its keys and handlers that step into the bus.

    ``BusctlApp`` makes the widgets named here (in ``compose``) and keeps the
    state; this class reads them.
    """

    activity_log: ActivityLog
    commands_table: CommandsTable
    tabs: TabbedContent
    holds_panel: HoldsPanel
    inspected: dict[str, Any] | None
    connected: bool
    source: Source | None
    #: ``--safe``: ask before a command not declared read-only runs.
    safe: bool = False
    #: The arguments each command was last called with from a form, for ``y``.
    last_calls: dict[str, tuple[list[Any], dict[str, Any]]]
    #: What each form was last filled with, by (kind, name): a form opens with it.
    form_memory: dict[tuple[str, str], dict[str, str]]
    held_supported = True
    held_count = 0

    if TYPE_CHECKING:  # BusctlApp's (a worker there): declared for the forms opened here

        def _show_form(self, screen: InvokeScreen) -> Any:
            """Show a form once it has the bus's contract of its name."""

    def _usable(self) -> Source | None:
        """The source to ask, or ``None`` (and a word) when not attached."""
        if not self.connected or self.source is None:
            self.notify("not attached to a bus: press r to reconnect", severity="warning")
            return None
        return self.source

    @contextlib.contextmanager
    def _surviving(self, what: str) -> Iterator[None]:
        # A bus sending something unexpected must not take the console down
        # with it: say so once, keep the rest of the screen alive.
        try:
            yield
        except Exception as exc:
            _log.exception("cannot update %s", what)
            complained: set[str] = self.__dict__.setdefault("_complained_about", set())
            if what not in complained:
                complained.add(what)
                message = visible(f"cannot update {what}: {exc!r}")
                self.notify(message, severity="error", timeout=8, markup=False)

    # -- h: hold ----------------------------------------------------------------------

    def action_hold(self) -> None:
        """Hold the highlighted command (its calls), listener or activity row's name."""
        target = _highlighted(self)
        if target is None:
            self.notify(
                "highlight a command, a listener or an activity row, then press h",
                severity="warning",
            )
            return
        name, kind = target
        source = self._usable()
        if source is not None:
            self._send(source, "hold", {"pattern": name, "kind": kind}, f"hold {name}")

    # -- y: copy as -------------------------------------------------------------------

    def action_copy(self) -> None:
        """Copy the highlighted activity row's call (or the command's last one) as text."""
        focused = self.screen.focused
        if focused is self.activity_log.table:
            record = self.activity_log.current()
            if record is None or record.get("kind") not in ("call", "event"):
                self.notify("highlight a call or an event to copy it", severity="warning")
                return
            args, kwargs = _args_of(record)
            kind: Literal["command", "event"] = (
                "command" if record.get("kind") == "call" else "event"
            )
            self.push_screen(CopyScreen(str(record.get("name")), args, kwargs, kind))
            return
        if focused is self.commands_table and self.commands_table.current() is not None:
            name = self.commands_table.current()[0]  # type: ignore[index]
            args, kwargs = self.last_calls.get(name, ([], {}))
            self.push_screen(CopyScreen(name, args, kwargs))
            return
        self.notify("highlight a call, an event or a command, then press y", severity="warning")

    # -- the Holds panel ----------------------------------------------------------------

    def on_holds_panel_act(self, message: HoldsPanel.Act) -> None:
        source = self._usable()
        if source is not None:
            self._send(source, message.method, message.params, message.what)

    def on_holds_panel_edit(self, message: HoldsPanel.Edit) -> None:
        source = self._usable()
        if source is None:
            return
        item = message.item
        self.push_screen(EditScreen(source, item, _params_of(self, item)), self._edited)

    def _edited(self, released: bool | None) -> None:
        if released:
            self.notify("released, edited")
            self._poll_held_soon()

    @work(group="intervene", exit_on_error=False)
    async def _send(self, source: Source, method: str, params: dict[str, Any], what: str) -> None:
        try:
            result = await asyncio.wrap_future(source.request(method, params))
        except Exception as exc:
            self.notify(visible(f"{what}: {exc}"), severity="error", timeout=8, markup=False)
            return
        if method == "hold":
            holds = result.get("holds", [result]) if isinstance(result, dict) else []
            text = "; ".join(hold_text(h) for h in holds)
            self.notify(visible(f"{text} · see the Holds tab (5)"), markup=False, timeout=6)
        else:
            self.notify(visible(f"{what}: done"), markup=False)
        self._poll_held_soon()

    def covered(self) -> bool:
        """Whether another screen (a form, a trace, help, the palette) is over the main one.

        The main screen then stands still: Textual draws a covered screen
        again, dimmed, under the one on top each time anything on it changes,
        and at 120x35 that costs about a tenth of a second of the UI thread a
        frame, so live tables behind a form made every key wait. Replies and
        activity are kept meanwhile, and shown when the main screen is back.
        """
        return len(self.screen_stack) > 1

    def _poll_held_soon(self) -> None:
        if self.connected and self.source is not None:
            self._poll_held(self.source)

    @work(group="held", exclusive=True, exit_on_error=False)
    async def _poll_held(self, source: Source) -> None:
        """Ask what is held and show it in the Holds panel (from the poll timer)."""
        if not self.held_supported:
            return
        from bus.control.protocol import ErrorCode
        from busctl._remote import RemoteError

        try:
            result = await asyncio.wait_for(asyncio.wrap_future(source.request("held")), 5)
        except RemoteError as exc:
            if exc.code == ErrorCode.METHOD_NOT_FOUND:
                self.held_supported = False  # an older bus: no holds to show
            return
        except Exception:
            return
        if source is not self.source or not isinstance(result, dict):
            return
        with self._surviving("the Holds panel"):
            held = result.get("held") or []
            if not self.covered():  # else shown when the main screen is back (Linking)
                self.holds_panel.show(result)
                label = f"Holds ({len(held)})" if held else "Holds"
                tab = self.tabs.get_tab("holds")
                if str(tab.label) != label:
                    # Only on a change: a new label slides the tabs' underline
                    # again, and a poll every 0.1 s kept it sliding for good.
                    tab.label = label
            arrived = len(held) - self.held_count
            if arrived > 0 and held:
                newest = held[-1]
                self.notify(
                    visible(f"held: {newest.get('kind')} {newest.get('name')} (Holds tab, 5)"),
                    markup=False,
                )
            self.held_count = len(held)

    # -- the forms: they remember, and --safe asks first ---------------------------------

    def open_invoke(self, name: str) -> None:
        """Open the form of command ``name``."""
        source = self._usable()
        if source is None:
            return
        commands = (self.inspected or {}).get("commands", ())
        entry = next((c for c in commands if c.get("name") == name), {"name": name})
        self._show_form(
            InvokeScreen(
                source,
                "command",
                entry,
                memory=self.form_memory,
                confirm=self.confirm_run,
                ran=self._ran,
            )
        )

    def _ran(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        """A form called ``name``: ``y`` on its row copies this call."""
        self.last_calls[name] = (args, kwargs)

    def open_fire(self, name: str | None) -> None:
        """Open the form to fire event ``name`` (any name when ``None`` or a pattern)."""
        source = self._usable()
        if source is None:
            return
        listeners = list((self.inspected or {}).get("listeners", ()))
        exact = sorted(
            {str(li["pattern"]) for li in listeners if not any(c in li["pattern"] for c in "*?[")}
        )
        entry = next((li for li in listeners if li.get("pattern") == name), None)
        self._show_form(
            InvokeScreen(
                source, "event", entry, name=name, event_names=exact, memory=self.form_memory
            )
        )

    def confirm_run(self, name: str, then: Callable[[], None]) -> None:
        """Run ``then`` now, or with ``--safe`` after a yes for a command not read-only."""
        entry = next(
            (c for c in (self.inspected or {}).get("commands", ()) if c.get("name") == name), None
        )
        if not self.safe or entry is None or entry.get("readonly"):
            then()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                then()
            else:
                self.notify(visible(f"not run: {name} (--safe)"), markup=False)

        question = f"{name} is not declared read-only. Run it? (--safe)"
        self.push_screen(ConfirmScreen(question), answered)


def _highlighted(app: Intervening) -> tuple[str, str | None] | None:
    """What ``h`` would hold: ``(pattern, kind)`` from the focused table or activity row."""
    focused = app.screen.focused
    if isinstance(focused, CommandsTable):
        current = focused.current()
        return (current[0], "call") if current is not None else None
    if isinstance(focused, ListenersTable):
        current = focused.current()
        return (str(current[1].get("pattern")), "event") if current is not None else None
    if isinstance(focused, DataTable) and focused is app.activity_log.table:
        record = app.activity_log.current()
        if record is None:
            return None
        kind = "call" if record.get("kind") in ("call", "return") else "event"
        return str(record.get("name")), kind
    return None


def _params_of(app: Intervening, item: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters of the handler a held item is for: its command's, or its listener's."""
    inspected = app.inspected or {}
    if item.get("kind") == "call":
        for entry in inspected.get("commands", ()):
            if entry.get("name") == item.get("name"):
                return list(entry.get("params") or [])
        return []
    for entry in inspected.get("listeners", ()):
        if entry.get("pattern") == item.get("pattern") and entry.get("owner") == item.get(
            "service"
        ):
            return list(entry.get("params") or [])
    return []
