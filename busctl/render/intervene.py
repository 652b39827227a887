"""What a console that steps into a bus shows: held work, holds, stubs, history.

    for key, entry, cells in HELD.rows(held_result):     # the ``held`` method's result
        [cell.text for cell in cells]   # ['3', 'call', 'lights.turn_on', 'lights', '("hall")', ...]
    history_line(entry)                                   # one line of ``busctl history``
    arguments(["hall"], {"brightness": 80})               # '("hall", brightness=80)'

``HELD``, ``HOLDS`` and ``STUBS`` are ``busctl.render.columns`` tables, drawn
by every face as the registries are: ``busctl held`` and the REPL print
them, the TUI's Holds panel keeps them live. A history entry has the
fields of an activity record (``bus.control``'s ``history`` method), so its
line is an activity line whose call shows its result too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from .activity import ActivityView, activity_line, activity_view
from .columns import Cell, Column, Table, Tone
from .text import visible
from .units import duration, latency

__all__ = [
    "HELD",
    "HOLDS",
    "STUBS",
    "activity_records",
    "arguments",
    "history_line",
    "history_view",
    "hold_text",
    "stub_text",
]

Entry = Mapping[str, Any]

_ARGS_WIDTH = 60


def arguments(args: Any, kwargs: Any, *, width: int | None = _ARGS_WIDTH) -> str:
    """``("hall", brightness=80)`` from arguments as JSON values; cut at ``width``."""
    parts: list[str] = []
    if isinstance(args, list):
        parts.extend(_compact(value) for value in args)
    elif args is not None:
        parts.append(_compact(args))
    if isinstance(kwargs, Mapping):
        parts.extend(f"{key}={_compact(value)}" for key, value in kwargs.items())
    text = visible(f"({', '.join(parts)})")
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=repr)


def _text(key: str, tone: Tone = "") -> Any:
    def cell(entry: Entry) -> Cell:
        value = entry.get(key)
        return Cell("" if value is None else visible(value), tone)

    return cell


def _item_args(entry: Entry) -> Cell:
    text = arguments(entry.get("args"), entry.get("kwargs"))
    return Cell(text + (" (lossy)" if entry.get("lossy") else ""))


def _item_target(entry: Entry) -> Cell:
    where = str(entry.get("service") or "?")
    if entry.get("kind") == "event":
        where += f" [{entry.get('pattern', '?')}]"
    return Cell(visible(where))


def _item_kind(entry: Entry) -> Cell:
    if entry.get("cancelled"):
        return Cell("call (cancelled)", "warn")
    return Cell(visible(entry.get("kind", "?")))


def _waited(entry: Entry) -> Cell:
    waited = entry.get("waited")
    return Cell(duration(waited), "warn" if isinstance(waited, int | float) and waited > 60 else "")


def _expires(entry: Entry) -> Cell:
    return Cell(duration(entry.get("expires_in")))


def _hold_kind(entry: Entry) -> Cell:
    kind = entry.get("kind")
    return Cell({"call": "calls", "event": "events"}.get(str(kind), "calls, events"))


def _stub_does(entry: Entry) -> Cell:
    return Cell(stub_text(entry), "warn")


def _stub_times(entry: Entry) -> Cell:
    times = entry.get("times")
    calls = entry.get("calls", 0)
    return Cell(visible(f"{calls}/{times}" if times is not None else f"{calls}"))


def _process_key(entry: Entry) -> str:
    return f"{entry.get('id')}"


HELD = Table(
    name="held",
    columns=(
        Column("id", "ID", _text("id", "strong"), numeric=True),
        Column("kind", "KIND", _item_kind),
        Column("name", "NAME", _text("name", "strong")),
        Column("target", "TO", _item_target, flex=1),
        Column("args", "ARGUMENTS", _item_args, flex=3),
        Column("waited", "WAITED", _waited, numeric=True),
        Column("hold", "HOLD", _text("hold"), numeric=True),
    ),
    identity=_process_key,
)
"""What is held: id, kind, name, where it was going, its arguments, how long it has waited."""

HOLDS = Table(
    name="holds",
    columns=(
        Column("id", "ID", _text("id", "strong"), numeric=True),
        Column("pattern", "PATTERN", _text("pattern", "strong")),
        Column("kind", "HOLDS", _hold_kind),
        Column("service", "SERVICE", lambda e: Cell(visible(e.get("service") or "any"))),
        Column("held", "HELD", _text("held"), numeric=True),
        Column("caught", "CAUGHT", _text("caught"), numeric=True),
        Column("expires", "ENDS IN", _expires, numeric=True),
    ),
    identity=_process_key,
)
"""The holds: pattern, what they catch, where, how much, and when they end."""

STUBS = Table(
    name="stubs",
    columns=(
        Column("name", "COMMAND", _text("name", "strong")),
        Column("service", "SERVICE", _text("service")),
        Column("does", "STUB", _stub_does, flex=1),
        Column("calls", "CALLS", _stub_times, numeric=True),
        Column("expires", "ENDS IN", _expires, numeric=True),
    ),
    identity=lambda entry: f"{entry.get('process', '')}|{entry.get('name')}",
)
"""The live stubs: which command, what it does instead, its calls, when it ends."""


def stub_text(stub: Entry) -> str:
    """What a stub does: ``returns 21.5`` or ``raises TimeoutError: no answer``."""
    if stub.get("raises"):
        return visible(f"raises {stub['raises']}")
    return visible(f"returns {stub.get('returns', 'null')}")


def hold_text(hold: Entry) -> str:
    """One line saying what a hold does: ``hold 1: lights.turn_on (calls), for 10 min``."""
    kind = _hold_kind(hold).text
    where = f" of {hold['service']}" if hold.get("service") else ""
    process = f" in {hold['process']}" if hold.get("process") else ""
    return visible(
        f"hold {hold.get('id')}: {hold.get('pattern')} ({kind}{where}){process}, "
        f"ends in {duration(hold.get('expires_in'))}"
    )


def history_view(entry: Entry) -> ActivityView:
    """The parts of one history entry: an activity view whose call shows its outcome."""
    view = activity_view(entry)
    if entry.get("kind") == "call":  # the arguments, then the outcome
        view = dataclasses.replace(activity_view({**entry, "error": None}), failed=view.failed)
    marks = []
    if entry.get("stubbed"):
        marks.append("stubbed")
    if entry.get("held_ms") is not None:
        held = f"held {latency(entry.get('held_ms'))}"
        marks.append(held + (", edited" if entry.get("edited") else ""))
    note = f"  [{'; '.join(marks)}]" if marks else ""
    if entry.get("kind") != "call":
        return dataclasses.replace(view, detail=view.detail + visible(note))
    error = entry.get("error")
    if isinstance(error, Mapping):
        outcome = f"!! {error.get('type', 'Error')}: {error.get('message', '')}"
    else:
        outcome = f"= {entry.get('result', 'null')}"
    detail = f"{view.detail} {outcome}"
    if len(detail) > 100:
        detail = detail[:99] + "…"
    return dataclasses.replace(
        view,
        detail=visible(detail + note),
        took=latency(entry.get("duration_ms")),
        queued="",
    )


def history_line(entry: Entry) -> str:
    """One plain line of ``busctl history``, with the short trace id."""
    line = activity_line(history_view(entry), trace=True)
    process = entry.get("process")
    return f"{line}  @{visible(process)}" if process else line


def activity_records(entry: Entry) -> list[dict[str, Any]]:
    """A history entry as the activity records that told of it: a call is its call and return.

    So an activity log can be filled from history (the TUI does, when it
    opens) and show it as it shows what comes live.
    """
    record = {k: v for k, v in entry.items() if v is not None}
    if record.get("kind") != "call":
        return [record]
    call = {
        k: v
        for k, v in record.items()
        if k in ("name", "time", "service", "caller", "args", "kwargs", "trace_id", "span_id")
    }
    ended = dict(record)
    ended["kind"] = "return"
    waited = (record.get("queued_ms") or 0) + (record.get("duration_ms") or 0)
    if isinstance(record.get("time"), int | float) and isinstance(waited, int | float):
        ended["time"] = record["time"] + waited / 1000
    for key in ("args", "kwargs", "caller"):
        ended.pop(key, None)
    return [{"kind": "call", **call}, ended]
