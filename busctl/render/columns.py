"""The tables of a bus's registries: which columns, in which order, and what each cell says.

    for key, entry, cells in COMMANDS.rows(snapshot):   # an ``inspect()`` snapshot
        [cell.text for cell in cells]       # ['say_hello', 'greeter', '(name: str) -> str', ...]
    [column.header for column in COMMANDS.columns]      # ['NAME', 'OWNER', 'SIGNATURE', ...]

``SERVICES``, ``COMMANDS`` and ``LISTENERS`` are written once here and drawn
by every face: ``busctl services`` and the REPL's ``services`` print them
with rich, the TUI keeps them live in Textual tables (``across(table,
snapshot)`` is the same table with a column saying which processes, for a
bus across processes seen whole over NATS). A face decides only
how a cell looks: a ``Cell`` carries its text and a ``tone`` (``bad`` for a
failure or a non-zero error count, ``warn`` for a nearly full mailbox,
``good`` for a running service, ``strong`` for a row's name), and each face
maps tones to its own styles. ``Column.numeric`` columns are right-aligned;
``Column.flex`` columns give way first when a table must fit a width (the
TUI cuts them with an ellipsis; a printed table folds them).

Cell text is visible text (``busctl.render.text.visible``): what the bus
sent is shown, never obeyed or read as markup by the face that draws it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .text import visible
from .units import latency

__all__ = [
    "ACROSS",
    "COMMANDS",
    "LISTENERS",
    "SERVICES",
    "TABLES",
    "Cell",
    "Column",
    "Table",
    "Tone",
    "across",
    "is_across",
    "service_state",
]

Tone = Literal["", "bad", "warn", "good", "strong"]

Entry = Mapping[str, Any]


@dataclass(frozen=True)
class Cell:
    """What one cell says, and how much it matters.

    Attributes:
        text: one visible line.
        tone: ``""`` (plain), ``bad``, ``warn``, ``good`` or ``strong``.
    """

    text: str
    tone: Tone = ""


@dataclass(frozen=True)
class Column:
    """One column of a registry table.

    Attributes:
        key: the column's id (stable: the TUI keys its cells by it).
        header: the heading, as the CLI prints it (``NAME``).
        cell: the cell of one ``inspect()`` entry.
        numeric: right-aligned (counts, latencies).
        flex: how much of the width left over this column takes when the
            table must fit (0: it never gives way).
        keep: which end of a cell to keep when it is cut to fit: ``start``,
            or ``end`` where the end says the most (``…/greeter``).
    """

    key: str
    header: str
    cell: Callable[[Entry], Cell]
    numeric: bool = False
    flex: int = 0
    keep: Literal["start", "end"] = "start"


@dataclass(frozen=True)
class Table:
    """A registry table: its columns, its rows' order and their identity.

    Attributes:
        name: ``services``, ``commands`` or ``listeners``, the key of the
            ``inspect()`` snapshot it shows.
        columns: the columns, left to right.
        order: the sort key of the rows, or ``None`` for the bus's order.
        identity: a row's key: unique in one snapshot, the same across them.
    """

    name: str
    columns: tuple[Column, ...]
    identity: Callable[[Entry], str]
    order: Callable[[Entry], Any] | None = None

    def entries(self, snapshot: Mapping[str, Any]) -> list[Entry]:
        """The entries of ``snapshot`` this table shows, in its order."""
        found = snapshot.get(self.name)
        # What a misbehaving bus sends instead of a list shows as no rows, not a crash.
        listed = found if isinstance(found, list | tuple) else ()
        rows = [entry for entry in listed if isinstance(entry, Mapping)]
        return sorted(rows, key=self.order) if self.order is not None else rows

    def cells(self, entry: Entry) -> tuple[Cell, ...]:
        """The cells of one entry, left to right."""
        return tuple(column.cell(entry) for column in self.columns)

    def rows(self, snapshot: Mapping[str, Any]) -> Iterator[tuple[str, Entry, tuple[Cell, ...]]]:
        """(identity, entry, cells) for each row of ``snapshot``, in order."""
        for entry in self.entries(snapshot):
            yield self.identity(entry), entry, self.cells(entry)

    def column(self, key: str) -> Column:
        """The column of key ``key``."""
        for column in self.columns:
            if column.key == key:
                return column
        raise KeyError(key)


_STATE_ERROR_WIDTH = 60  # a failed service's error in a table cell; --json has it whole


def service_state(service: Entry, *, clip: bool = True) -> str:
    """A service's state as every face says it: ``running``, ``failed (ValueError: x)``.

    A failed service (its thread died, or its ``on_start`` raised) carries
    its error, cut at 60 characters unless ``clip`` is false; a service with
    a hung handler says so.
    """
    state = str(service.get("state", "?"))
    if state == "failed":
        error = str(service.get("error") or "no error recorded")
        if clip and len(error) > _STATE_ERROR_WIDTH:
            error = error[: _STATE_ERROR_WIDTH - 1] + "…"
        return visible(f"failed ({error})")
    threads = service.get("threads") or ()
    if any(isinstance(t, Mapping) and t.get("hung") for t in threads):
        return visible(f"{state} (hung)")
    return visible(state)


def _text(key: str, tone: Tone = "") -> Callable[[Entry], Cell]:
    def cell(entry: Entry) -> Cell:
        value = entry.get(key)
        return Cell("" if value is None else visible(value), tone)

    return cell


def _count(key: str, *, alarm: bool = False) -> Callable[[Entry], Cell]:
    """A count; with ``alarm``, ``bad`` when it is not zero (errors, failures)."""

    def cell(entry: Entry) -> Cell:
        value = entry.get(key)
        if value is None:
            return Cell("-")
        return Cell(visible(value), "bad" if alarm and value else "")

    return cell


def _latency(key: str) -> Callable[[Entry], Cell]:
    return lambda entry: Cell(latency(entry.get(key)))


def _state(service: Entry) -> Cell:
    state = service.get("state")
    tone: Tone = "bad" if state == "failed" else "good" if state == "running" else ""
    text = service_state(service)
    return Cell(text, "bad" if text.endswith("(hung)") else tone)


def _threads(service: Entry) -> Cell:
    names = [t.get("name", "?") for t in service.get("threads") or () if isinstance(t, Mapping)]
    return Cell(visible(", ".join(str(name) for name in names)))


def _mailbox(service: Entry) -> Cell:
    depth, size = service.get("mailbox", 0) or 0, service.get("mailbox_size", 0) or 0
    full = isinstance(depth, int) and isinstance(size, int) and size and depth >= size * 0.8
    return Cell(visible(f"{depth}/{size}"), "warn" if full else "")


def _lost(service: Entry) -> Cell:
    rejected, dropped = service.get("rejected", 0) or 0, service.get("dropped", 0) or 0
    total = rejected + dropped if isinstance(rejected, int) and isinstance(dropped, int) else "?"
    return Cell(str(total), "bad" if total else "")


def _name(key: str) -> Callable[[Entry], Cell]:
    def cell(entry: Entry) -> Cell:
        failed = entry.get("state") == "failed"
        return Cell(visible(entry.get(key, "?")), "bad" if failed else "strong")

    return cell


def _listener_order(entry: Entry) -> Any:
    order = entry.get("order", 0)
    return order if isinstance(order, int | float) else 0


SERVICES = Table(
    name="services",
    columns=(
        Column("name", "NAME", _name("name")),
        Column("state", "STATE", _state, flex=3),
        Column("activity", "ACTIVITY", _text("activity")),
        Column("threads", "THREADS", _threads, flex=1, keep="end"),
        Column("mailbox", "MAILBOX", _mailbox, numeric=True),
        Column("handled", "HANDLED", _count("handled"), numeric=True),
        Column("failed", "FAILED", _count("failed", alarm=True), numeric=True),
        Column("dropped", "DROPPED", _lost, numeric=True),
    ),
    identity=lambda entry: str(entry.get("name")),
)
"""Each service: state, what it is doing, threads, mailbox depth, handled, failed, dropped.

``DROPPED`` counts what the service lost: commands rejected and deliveries
dropped at its full mailbox.
"""


def _command_name(entry: Entry) -> Cell:
    """A command's name; a live stub standing in for it says so, loudly."""
    name = visible(entry.get("name", "?"))
    if entry.get("stub"):
        return Cell(f"{name} [stubbed]", "warn")
    return Cell(name, "strong")


def _readonly(entry: Entry) -> Cell:
    return Cell("ro" if entry.get("readonly") else "")


COMMANDS = Table(
    name="commands",
    columns=(
        Column("name", "NAME", _command_name),
        # Owners are short; in a narrow table they give way before the numbers.
        Column("owner", "OWNER", _text("owner"), flex=1),
        Column("readonly", "RO", _readonly),
        Column("signature", "SIGNATURE", _text("signature"), flex=3),
        Column("calls", "CALLS", _count("calls"), numeric=True),
        Column("errors", "ERRORS", _count("errors", alarm=True), numeric=True),
        Column("p50", "P50", _latency("p50_ms"), numeric=True),
        Column("p99", "P99", _latency("p99_ms"), numeric=True),
    ),
    identity=lambda entry: str(entry.get("name")),
)
"""Each command: owner, read-only (``ro``), signature, calls, errors, p50 and p99 latency.

A command a live stub stands in for is named ``NAME [stubbed]``, in the
``warn`` tone, on every face.
"""

LISTENERS = Table(
    name="listeners",
    columns=(
        Column("pattern", "PATTERN", _name("pattern")),
        Column("owner", "OWNER", _text("owner")),
        Column("handler", "HANDLER", _text("handler"), flex=1),
        Column("signature", "SIGNATURE", _text("signature"), flex=1),
        Column("deliveries", "DELIVERIES", _count("deliveries"), numeric=True),
        Column("errors", "ERRORS", _count("errors", alarm=True), numeric=True),
        Column("p50", "P50", _latency("p50_ms"), numeric=True),
    ),
    identity=lambda entry: f"{entry.get('owner')}|{entry.get('pattern')}|{entry.get('order')}",
    order=_listener_order,
)
"""Each listener, in delivery order: pattern, owner, handler, deliveries, errors, p50."""

TABLES: dict[str, Table] = {table.name: table for table in (SERVICES, COMMANDS, LISTENERS)}
"""The tables by name: ``services``, ``commands``, ``listeners``."""


def _instances(entry: Entry) -> Cell:
    """The processes hosting a service or serving a command (``instances``)."""
    found = entry.get("instances")
    listed = found if isinstance(found, list | tuple) else ()
    labels = [i.get("process", "?") if isinstance(i, Mapping) else i for i in listed]
    return Cell(visible(", ".join(str(label) for label in labels)))


def _listener_place(entry: Entry) -> Any:
    return (str(entry.get("process", "")), _listener_order(entry))


def _with(table: Table, column: Column, **changes: Any) -> Table:
    """``table`` with ``column`` second, after the name."""
    first, *rest = table.columns
    return Table(
        name=changes.get("name", table.name),
        columns=(first, column, *rest),
        identity=changes.get("identity", table.identity),
        order=changes.get("order", table.order),
    )


ACROSS: dict[str, Table] = {
    "services": _with(SERVICES, Column("instances", "INSTANCES", _instances, flex=1)),
    "commands": _with(COMMANDS, Column("instances", "INSTANCES", _instances, flex=1)),
    "listeners": _with(
        LISTENERS,
        Column("process", "PROCESS", _text("process")),
        identity=lambda entry: (
            f"{entry.get('process')}|{entry.get('owner')}|{entry.get('pattern')}|"
            f"{entry.get('order')}"
        ),
        order=_listener_place,
    ),
}
"""The tables of a bus across processes: each with where its rows live.

``INSTANCES`` names the processes hosting a service or serving a command;
a listener, which belongs to one process, says which in ``PROCESS``.
"""


def is_across(snapshot: Mapping[str, Any]) -> bool:
    """Whether ``snapshot`` is of a bus across processes, merged (it lists the processes)."""
    return isinstance(snapshot.get("processes"), list | tuple)


def across(table: Table, snapshot: Mapping[str, Any]) -> Table:
    """The table to draw ``snapshot`` with: ``table``, or its ``ACROSS`` twin for a whole bus."""
    return ACROSS[table.name] if is_across(snapshot) else table
