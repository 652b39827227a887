"""Plain functions that turn bus data into cells: durations, activity lines, filters.

    ms(0.0123)                      # "12µs"
    ActivityFilter("lights.*", "automation", errors_only=False).matches(activity)
    activity_cells(activity)        # the cells of one row of the activity log

No Textual here, so the formatting is tested without an app.

Text from the bus or a file goes on screen as ``shown(...)``: a rich ``Text``
(a plain ``str`` cell, ``Static`` or ``notify`` would be read as markup, so
``[red]`` or ``list[str]`` in a name, a signature or a message would be
applied or eaten) with its control characters made visible
(``busctl.render.text.visible``: rich passes ESC through to the terminal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from rich.text import Text

from busctl.render.text import visible

__all__ = ["ActivityFilter", "activity_cells", "clip", "markup_safe", "ms", "number", "shown"]

KIND_MARK = {"call": "→", "return": "←", "event": "⚡", "delivery": "↳"}


def ms(value: float | None) -> str:
    """A duration in milliseconds, short: ``12µs``, ``3.4ms``, ``1.20s``; ``-`` for none."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}µs"
    if value < 100:
        return f"{value:.1f}ms"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.2f}s"


def number(value: Any) -> str:
    """An integer cell; ``-`` for none."""
    return "-" if value is None else str(value)


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis.

    Runs of whitespace (newlines included) become one space; any other
    control character is shown as its escape.
    """
    text = visible(" ".join(text.split()))
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def shown(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Text from the bus or a file, for the screen: never markup, controls visible."""
    return Text(visible(value, multiline=multiline), style=style)


def markup_safe(value: object) -> str:
    """For the few places that take only markup (palette help, notifications)."""
    from textual.markup import escape

    return escape(visible(value))


@dataclass(frozen=True)
class ActivityFilter:
    """Which activity the log shows.

    Attributes:
        pattern: a glob on the name (``lights.*``); empty for all. Without a
            glob character it matches as a substring.
        service: the handling or calling service; empty for all.
        errors_only: only steps that failed.
    """

    pattern: str = ""
    service: str = ""
    errors_only: bool = False

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.pattern or self.service or self.errors_only)

    def matches(self, activity: dict[str, Any]) -> bool:
        """Whether ``activity`` (an ``Activity.to_json()`` dict) passes the filter."""
        if self.errors_only and not activity.get("error"):
            return False
        if self.service and self.service not in (activity.get("service"), activity.get("caller")):
            return False
        if self.pattern:
            name = str(activity.get("name", ""))
            if any(c in self.pattern for c in "*?["):
                return fnmatchcase(name, self.pattern)
            return self.pattern in name
        return True


def clock(seconds: float | None) -> str:
    """Local wall-clock time with milliseconds: ``14:03:07.123``."""
    if seconds is None:
        return "--:--:--"
    whole = time.localtime(seconds)
    return time.strftime("%H:%M:%S", whole) + f".{int(seconds % 1 * 1000):03d}"


def activity_detail(activity: dict[str, Any]) -> str:
    """The interesting part of one step: arguments, result or error."""
    error = activity.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', 'Error')}: {error.get('message', '')}"
    if error:
        return str(error)
    kind = activity.get("kind")
    if kind == "return":
        return f"= {activity.get('result', '')}"
    if kind == "delivery":
        return f"[{activity.get('pattern', '')}]"
    args = activity.get("args") or ""
    kwargs = activity.get("kwargs") or ""
    if args in ("[]", "") and kwargs:
        return kwargs
    if kwargs:
        return f"{args} {kwargs}"
    text = args if args != "[]" else ""
    if kind == "event":
        text = f"{text} ({activity.get('listeners', 0)} listeners)".strip()
    return text


def activity_cells(activity: dict[str, Any], compact: bool = False) -> tuple[str | Text, ...]:
    """The cells of one activity-log row: time, kind, name, service, took, detail.

    ``compact`` (narrow terminals): the time without milliseconds and the kind
    as its mark only, leaving room for the detail.
    """
    kind = str(activity.get("kind", "?"))
    failed = bool(activity.get("error"))
    style = "bold red" if failed else ("cyan" if kind in ("event", "delivery") else "")
    who = activity.get("service") or activity.get("caller") or ""
    took = activity.get("duration_ms")
    mark = KIND_MARK.get(kind, "?")
    return (
        clock(_seconds(activity.get("time")))[: 8 if compact else None],
        shown(mark if compact else f"{mark} {kind}", style),
        shown(activity.get("name", ""), style or "bold"),
        shown(who),
        ms(took) if isinstance(took, int | float) else "",
        Text(clip(activity_detail(activity), 120), style="red" if failed else "dim"),
    )


def _seconds(value: Any) -> float | None:
    # A time from the bus: anything but a plausible number shows as unknown.
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 2.5e11:
        return float(value)
    return None
