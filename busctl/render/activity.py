"""One step of a bus's activity, drawn the same way by every face.

    view = activity_view(activity)       # an ``Activity.to_json()`` dict, as the bus sends it
    view.mark, view.kind, view.name      # '→', 'call', 'say_hello'
    view.who, view.detail, view.tail     # 'cli → greeter', '("Alice")', ''
    activity_line(activity)
    # '14:03:07.215 call     say_hello              cli → greeter ("Alice")'

``activity_view`` reads the record once: what happened (``kind`` and its
``mark``), to what (``name``), where (``who``: caller → service for a call,
the service for a return or delivery, ``from`` the caller for an event),
the arguments, result or error (``detail``), and how long it took or how
many listeners it reached (``tail``). ``busctl monitor`` and the REPL's
``monitor`` print ``activity_line``; the TUI's activity log puts the same
parts in its columns; ``python -m sample_services`` prints the line too.

Every part is one line of visible text (``busctl.render.text.visible``):
a newline or an escape sequence inside an argument is shown, not obeyed.
Arguments and results are cut at ``DETAIL_WIDTH`` characters; ``--json``
keeps them whole. Nothing here imports rich or Textual: the faces style the
parts (``failed`` marks a step that raised).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .text import visible
from .units import clock, latency, number

__all__ = [
    "DETAIL_WIDTH",
    "MARKS",
    "NAME_WIDTH",
    "ActivityView",
    "activity_line",
    "activity_matches",
    "activity_view",
]

DETAIL_WIDTH = 80
"""Arguments or a result longer than this are cut, with an ellipsis."""
NAME_WIDTH = 22
"""Most command and event names fit: the columns after them line up."""
MARKS = {"call": "→", "return": "←", "event": "◆", "delivery": "↳"}
"""The mark of each kind of step, before its kind: one cell wide each, so lines align."""


@dataclass(frozen=True)
class ActivityView:
    """One activity record as text parts, each one visible line.

    A face that prints a line uses ``who`` and ``tail``; one that has a
    column per part (the TUI) may use the shorter ``place``, ``took`` and
    ``listeners`` instead.

    Attributes:
        time: local wall-clock time with milliseconds (``14:03:07.215``).
        kind: ``call``, ``return``, ``event`` or ``delivery`` (as sent).
        mark: the kind's mark (``→ ← ◆ ↳``), ``?`` for a kind not known.
        name: the command or event name.
        who: where it ran: ``caller → service``, ``service``, ``from caller``.
        place: where it ran, in one word: the service, else the caller; on a
            bus across processes, after the process it was seen in (the
            record's ``process``): ``vm:7612 lights``.
        detail: the arguments, ``= result``, ``[pattern]``, or ``!! Type: message``.
        took: how long the handler ran (``return``, ``delivery``), else ``""``.
        queued: how long it waited in the mailbox, when the bus said, else ``""``.
        listeners: ``N listeners`` for an event (``N local listeners`` on a
            bus across processes: those of the process it was fired in), else ``""``.
        failed: the step raised (``detail`` holds the error).
        trace: the first six hex digits of its trace id, or ``""``.
    """

    time: str
    kind: str
    mark: str
    name: str
    who: str
    place: str
    detail: str
    took: str
    queued: str
    listeners: str
    failed: bool
    trace: str

    @property
    def tail(self) -> str:
        """How long it took (and waited), or how many listeners an event reached."""
        if self.listeners:
            return self.listeners
        return f"{self.took} (queued {self.queued})" if self.queued else self.took


def activity_view(activity: Mapping[str, Any]) -> ActivityView:
    """The parts of one activity record (never raises, whatever the record holds)."""
    kind = str(activity.get("kind", "?"))
    name = str(activity.get("name", "?"))
    error = activity.get("error")
    service, caller = activity.get("service"), activity.get("caller")
    took = queued = listeners = ""
    if kind == "event":
        who = f"from {caller or '?'}"
        detail = _call_args(activity)
        count = activity.get("listeners")
        if count is not None:
            listeners = f"{count} listener{'s' if count != 1 else ''}"
            if activity.get("process"):
                # Only the firing process's own listeners are counted; the others'
                # deliveries show in their processes, on lines of their own.
                listeners = f"{count} local listener{'s' if count != 1 else ''}"
    elif kind == "delivery":
        who = str(service or "?")
        detail = f"[{activity.get('pattern', name)}]"
        took = latency(activity.get("duration_ms"))
    elif kind == "call":
        who = f"{caller or '?'} → {service or '?'}"
        detail = _call_args(activity)
    else:
        who = str(service or "?")
        detail = "" if error else _clip(f"= {activity.get('result', 'null')}")
        took = latency(activity.get("duration_ms"))
        if number(activity.get("queued_ms")):
            queued = latency(activity.get("queued_ms"))
    if isinstance(error, Mapping):
        detail = f"!! {error.get('type', 'Error')}: {error.get('message', '')}"
    elif error:
        detail = f"!! {error}"
    if kind == "return" and activity.get("stubbed") is True:  # a live stub answered
        detail = f"{detail}  [stubbed]" if detail else "[stubbed]"
    trace = activity.get("trace_id")
    place = str(service or caller or "")
    process = activity.get("process")
    if isinstance(process, str) and process:
        # A bus across processes: the process it was seen in first, as `monitor`
        # puts it first (a call shows in the caller's process and in the handler's).
        place = f"{process} {place}"
    return ActivityView(
        time=clock(activity.get("time")),
        kind=visible(kind),
        mark=MARKS.get(kind, "?"),
        name=visible(name),
        who=visible(who),
        place=visible(place),
        detail=visible(detail),
        took=visible(took),
        queued=visible(queued),
        listeners=visible(listeners),
        failed=bool(error),
        trace=visible(trace[:6]) if isinstance(trace, str) else "",
    )


def activity_line(
    activity: Mapping[str, Any] | ActivityView, *, trace: bool = False, process: object = None
) -> str:
    """The one plain line of an activity record (``monitor`` without colour).

    ``14:03:07.215 call     say_hello              cli → greeter ("Alice")``:
    time, kind, name, who, then the arguments, result or error, and how long
    it took. ``trace`` puts the first six hex digits of the trace id after
    the time (``python -m sample_services``: which steps belong together).
    ``process`` (a bus across processes: the process it was seen in) comes
    first, as ``docker compose logs`` names the container.
    """
    view = activity if isinstance(activity, ActivityView) else activity_view(activity)
    when = f"{view.time} {view.trace:<6}" if trace else view.time
    tail = f"  {view.tail}" if view.tail else ""
    lead = f"{visible(process)} " if isinstance(process, str) and process else ""
    return (
        f"{lead}{when} {view.kind:<8} {view.name:<{NAME_WIDTH}} {view.who} "
        f"{view.detail}{tail}".rstrip()
    )


KIND_STEPS = {"call": ("call", "return"), "event": ("event", "delivery")}
"""What ``--kind`` keeps: a command's call and its return, or an event and its deliveries."""


def activity_matches(
    activity: Mapping[str, Any],
    *,
    errors: bool = False,
    service: str | None = None,
    kind: str | None = None,
    trace: str | None = None,
) -> bool:
    """Whether an activity record passes ``monitor``'s filters (the TUI's, too).

    ``errors``: only steps that failed; ``service``: only steps handled or
    sent by it; ``kind``: ``call`` (calls and returns) or ``event`` (events
    and deliveries); ``trace``: only the trace whose id starts with it (the
    short id a line shows will do).
    """
    if errors and not activity.get("error"):
        return False
    if service and service not in (activity.get("service"), activity.get("caller")):
        return False
    if kind and activity.get("kind") not in KIND_STEPS.get(kind, (kind,)):
        return False
    if trace:
        trace_id = activity.get("trace_id")
        if not isinstance(trace_id, str) or not trace_id.startswith(trace.lower()):
            return False
    return True


def _call_args(activity: Mapping[str, Any]) -> str:
    """``("Alice", brightness=60)`` from the bounded JSON text of the arguments."""
    args = activity.get("args")
    kwargs = activity.get("kwargs")
    parts = []
    if args not in (None, "[]", "()"):
        try:
            loaded = json.loads(str(args))
        except (ValueError, RecursionError):  # bounded JSON cut short, or a repr: as sent
            parts.append(str(args))
        else:
            items = loaded if isinstance(loaded, list) else [loaded]
            parts.extend(_compact(item) for item in items)
    if kwargs not in (None, "{}"):
        try:
            loaded = json.loads(str(kwargs))
        except (ValueError, RecursionError):
            parts.append(str(kwargs))
        else:
            if isinstance(loaded, dict):
                parts.extend(f"{k}={_compact(v)}" for k, v in loaded.items())
            else:
                parts.append(str(kwargs))
    return _clip(f"({', '.join(parts)})")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _clip(text: str, limit: int = DETAIL_WIDTH) -> str:
    text = visible(text)  # before cutting: an escape is longer than its character
    return text if len(text) <= limit else text[: limit - 1] + "…"
