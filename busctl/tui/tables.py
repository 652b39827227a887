"""The live tables: services, commands and listeners, updated in place.

    table = ServicesTable(id="services")
    table.show(inspect_result)      # on every poll: only changed cells are redrawn

Rows are keyed by name, so an update changes cells where they differ, adds
and removes rows at the edges, and leaves the cursor on the row it was on: no
flicker, no jumping.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from ._format import clip, ms, number, shown

__all__ = ["CommandsTable", "ListenersTable", "LiveTable", "ServicesTable"]

Cells = tuple[Any, ...]


class LiveTable(DataTable[Any]):
    """A ``DataTable`` whose rows are replaced by key, keeping the cursor.

    Subclasses set ``COLUMNS`` (key, label) and implement ``table_rows(inspected)``.
    """

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()

    @dataclass
    class Chosen(Message):
        """A row was chosen (Enter or a click on the highlighted row)."""

        table: LiveTable
        key: str
        item: dict[str, Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, Cells] = {}
        self.items: dict[str, dict[str, Any]] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def table_rows(self, inspected: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], Cells]]:
        """(row key, the inspect entry, the cells) for each row."""
        raise NotImplementedError

    def show(self, inspected: dict[str, Any]) -> None:
        """Bring the table in line with ``inspected``, touching only what changed."""
        seen: set[str] = set()
        for key, item, cells in self.table_rows(inspected):
            seen.add(key)
            self.items[key] = item
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for (column, _), new, before in zip(self.COLUMNS, cells, old, strict=True):
                    if new != before:
                        self.update_cell(key, column, new, update_width=True)
            self._cells[key] = cells
        for key in [k for k in self._cells if k not in seen]:
            del self._cells[key]
            self.items.pop(key, None)
            with contextlib.suppress(RowDoesNotExist):
                self.remove_row(key)

    def current(self) -> tuple[str, dict[str, Any]] | None:
        """The key and entry of the row under the cursor."""
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None
        if key is None or key not in self.items:
            return None
        return key, self.items[key]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None and key in self.items:
            self.post_message(self.Chosen(self, key, self.items[key]))


def _count(value: int, bad: bool = False) -> Text:
    return Text(str(value), style="bold red" if bad and value else "")


class ServicesTable(LiveTable):
    """Each service: state, threads, mailbox depth, handled, failed."""

    COLUMNS = (
        ("name", "service"),
        ("state", "state"),
        ("activity", "doing"),
        ("thread", "thread(s)"),
        ("mailbox", "mailbox"),
        ("handled", "handled"),
        ("failed", "failed"),
    )

    def table_rows(self, inspected: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], Cells]]:
        for service in inspected.get("services", ()):
            threads = service.get("threads") or []
            names = [str(t.get("name", "")).rsplit("/", 1)[-1] for t in threads]
            thread = names[0] if len(names) == 1 else f"{len(names)}: {', '.join(names)}"
            hung = any(t.get("hung") for t in threads)
            state = str(service.get("state", "?"))
            state_style = (
                "green" if state == "running" else "bold red" if service.get("error") else ""
            )
            activity = "HUNG" if hung else str(service.get("activity", ""))
            mailbox = int(service.get("mailbox", 0) or 0)
            size = int(service.get("mailbox_size", 0) or 0)
            full = size and mailbox >= size * 0.8
            cells: Cells = (
                shown(service.get("name", "?"), "bold"),
                shown(state, state_style),
                Text(clip(activity, 24), style="bold red" if hung else ""),
                Text(clip(thread, 28)),
                Text(f"{mailbox}", style="bold yellow" if full else ""),
                number(service.get("handled")),
                _count(int(service.get("failed", 0) or 0), bad=True),
            )
            yield str(service.get("name")), service, cells


class CommandsTable(LiveTable):
    """Each command: owner, signature, calls, errors, p50/p99 latency."""

    COLUMNS = (
        ("name", "command"),
        ("owner", "owner"),
        ("signature", "signature"),
        ("calls", "calls"),
        ("errors", "errors"),
        ("p50", "p50"),
        ("p99", "p99"),
    )

    def table_rows(self, inspected: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], Cells]]:
        for command in inspected.get("commands", ()):
            cells: Cells = (
                shown(command.get("name", "?"), "bold"),
                shown(command.get("owner", "")),
                Text(clip(str(command.get("signature", "")), 40)),  # list[str] is not markup
                number(command.get("calls")),
                _count(int(command.get("errors", 0) or 0), bad=True),
                ms(command.get("p50_ms")),
                ms(command.get("p99_ms")),
            )
            yield str(command.get("name")), command, cells


class ListenersTable(LiveTable):
    """Each listener: pattern, owner, handler, deliveries, errors."""

    COLUMNS = (
        ("pattern", "pattern"),
        ("owner", "owner"),
        ("handler", "handler"),
        ("deliveries", "deliveries"),
        ("errors", "errors"),
        ("p50", "p50"),
    )

    def table_rows(self, inspected: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], Cells]]:
        for listener in inspected.get("listeners", ()):
            key = f"{listener.get('owner')}|{listener.get('pattern')}|{listener.get('order')}"
            cells: Cells = (
                shown(listener.get("pattern", "?"), "bold"),
                shown(listener.get("owner", "")),
                Text(clip(str(listener.get("handler", "")), 30)),
                number(listener.get("deliveries")),
                _count(int(listener.get("errors", 0) or 0), bad=True),
                ms(listener.get("p50_ms")),
            )
            yield key, listener, cells
