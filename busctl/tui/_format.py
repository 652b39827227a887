"""The TUI's look for what ``busctl.render`` draws for every face, and its activity filter.

    activity_cells(activity)        # the cells of one row of the activity log
    styled(cell)                    # a render.columns Cell as rich Text, in the TUI's colours
    ActivityFilter("lights.*", "automation", errors_only=False).matches(activity)
    describe_error(exc)             # a failed call, with the bus's traceback, for a form

The words and numbers are ``busctl.render``'s, the same as ``busctl monitor``
and ``busctl commands`` print; only their look is the TUI's. No Textual
widgets here, so the formatting is tested without an app.

Text from the bus or a file goes on screen as ``shown(...)``: a rich ``Text``
(a plain ``str`` cell, ``Static`` or ``notify`` would be read as markup, so
``[red]`` or ``list[str]`` in a name, a signature or a message would be
applied or eaten) with its control characters made visible
(``busctl.render.text.visible``: rich passes ESC through to the terminal).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from rich.console import Group
from rich.text import Text

from busctl.render.activity import activity_view
from busctl.render.columns import Cell, Tone
from busctl.render.text import visible

__all__ = [
    "TONE_STYLES",
    "ActivityFilter",
    "activity_cells",
    "clip",
    "describe_error",
    "markup_safe",
    "shown",
    "styled",
]

TONE_STYLES: dict[Tone, str] = {
    "": "",
    "bad": "bold red",
    "warn": "bold yellow",
    "good": "green",
    "strong": "bold",
}
"""How a table cell of each tone looks in the TUI."""


def styled(cell: Cell) -> Text:
    """A table cell (``busctl.render.columns``) as rich ``Text`` in the TUI's colours."""
    return Text(cell.text, style=TONE_STYLES[cell.tone])


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


def activity_cells(activity: dict[str, Any], compact: bool = False) -> tuple[str | Text, ...]:
    """The cells of one activity-log row: time, kind, name, service, took, detail.

    The parts of ``busctl.render.activity.activity_view``, the words ``busctl
    monitor`` prints, in columns: where it ran is one word (``place``) and an
    event's listener count follows its arguments. ``compact`` (narrow
    terminals): the time without milliseconds and the kind as its mark only,
    leaving room for the detail.
    """
    view = activity_view(activity)
    style = "bold red" if view.failed else ("cyan" if view.kind in ("event", "delivery") else "")
    detail = f"{view.detail}  {view.listeners}" if view.listeners else view.detail
    return (
        view.time[: 8 if compact else None],
        Text(view.mark if compact else f"{view.mark} {view.kind}", style=style),
        Text(view.name, style=style or "bold"),
        Text(view.place),
        view.took,
        Text(detail, style="red" if view.failed else "dim"),
    )


def describe_error(error: BaseException) -> Group:
    """An error from the bus (or from reading the form), with its traceback."""
    from busctl._args import ArgumentError
    from busctl._remote import RemoteError

    # Messages and tracebacks come from the bus: control characters made visible.
    parts: list[Any] = []
    if isinstance(error, RemoteError):
        parts.append(shown(error, "bold red"))
        parts.append(shown(f"(error {error.code})", "dim"))
        signature = error.data.get("signature")
        if signature:
            parts.append(shown(f"signature: {signature}"))
        suggestions = error.data.get("suggestions")
        if suggestions:
            parts.append(shown(f"did you mean: {', '.join(map(str, suggestions))}"))
        if error.remote_traceback:
            parts.append(shown(error.remote_traceback.rstrip(), "red", multiline=True))
    elif isinstance(error, ArgumentError):
        parts.append(shown(f"cannot read the arguments: {error}", "bold red"))
    else:
        parts.append(shown(f"{type(error).__name__}: {error}", "bold red"))
        if error.__traceback__ is not None:
            text = "".join(traceback.format_exception(error)).rstrip()
            parts.append(shown(text, "red", multiline=True))
    return Group(*parts)
