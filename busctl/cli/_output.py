"""What ``busctl`` prints: rich tables for people, plain JSON for scripts.

    from busctl import _output

    _output.table(["NAME", "CALLS"], [["say_hello", "3"]], title="commands")
    _output.print_json({"name": "home"})       # stdout holds only JSON
    _output.duration(3725.0)                   # '1 h 2 min'
    _output.latency(0.42)                      # '420 µs'

Colour only when stdout is a terminal (and ``NO_COLOR`` is unset); when piped,
lines are not wrapped to a terminal width. Everything a bus sends (names,
docs, results, error messages, thread names) is printed with its control
characters made visible (``busctl.render.text.visible``) and never read as rich
markup; ``print_json`` needs neither.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..render.text import visible, visible_json

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "activity_line",
    "clock",
    "console",
    "duration",
    "error",
    "fields",
    "json_highlighted",
    "latency",
    "print_json",
    "print_value",
    "service_state",
    "table",
]

_WIDE = 200  # width when not a terminal: tables do not wrap in pipes or files


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): colour only on a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(
        file=stream,
        force_terminal=None,
        no_color=bool(os.environ.get("NO_COLOR")) or not tty,
        width=None if tty else int(os.environ.get("COLUMNS", _WIDE)),
        highlight=tty,
        soft_wrap=not tty,
    )


def print_json(data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` to stdout as JSON and nothing else (for ``--json``)."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=repr)
    sys.stdout.write(visible_json(text) + "\n")  # DEL, C1, bidi... as \u escapes
    sys.stdout.flush()


def print_value(value: Any) -> None:
    """Pretty-print a command's result for a person: JSON, highlighted on a terminal."""
    out = console()
    # json.dumps escapes C0 controls in strings, not DEL, C1 (\x9b is a CSI)
    # or bidi overrides: visible_json spells those as \u escapes too.
    text = visible_json(json.dumps(value, indent=2, ensure_ascii=False, default=repr))
    if out.is_terminal and not out.no_color:
        out.print(json_highlighted(text))
    else:
        out.print(text, markup=False, highlight=False)


def json_highlighted(text: str) -> Any:
    """JSON text coloured as rich's ``JSON`` does, without parsing and dumping it again.

    (``rich.json.JSON`` re-dumps the data, which would undo ``visible_json``.)
    """
    from rich.highlighter import JSONHighlighter
    from rich.text import Text

    return JSONHighlighter()(Text(text))


def error(message: str) -> None:
    """Print a one-line error to stderr (``busctl: error: ...``)."""
    out = console(stderr=True)
    message = visible(message)
    if out.is_terminal:
        out.print(f"[bold red]error:[/] {_escape(message)}", highlight=False)
    else:
        out.print(f"error: {message}", markup=False, highlight=False)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    right: Iterable[str] = (),
) -> None:
    """Print a table; ``right`` names the columns to right-align (numbers)."""
    from rich import box
    from rich.table import Table

    out = console()
    aligned = set(right)
    grid = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD if out.is_terminal else None,
        header_style="bold" if out.is_terminal else "",
        pad_edge=False,
        show_edge=False,
    )
    for name in columns:
        grid.add_column(name, justify="right" if name in aligned else "left", overflow="fold")
    for row in rows:
        grid.add_row(*("" if cell is None else _escape(visible(cell)) for cell in row))
    out.print(grid)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``name: value`` lines, names aligned (``status``, ``introspect``)."""
    items = [(k, "" if v is None else visible(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    out = console()
    for key, value in items:
        label = f"{key + ':':<{width + 1}}"
        if out.is_terminal:
            out.print(f"[bold]{_escape(label)}[/] {_escape(value)}", highlight=False)
        else:
            out.print(f"{label} {value}", markup=False, highlight=False)


_STATE_ERROR_WIDTH = 60  # a failed service's error in a table cell; --json has it whole


def service_state(service: dict[str, Any], *, clip: bool = True) -> str:
    """A service's state as every face shows it: ``running``, ``failed (ValueError: x)``.

    A failed service (its thread died, or its ``on_start`` raised) carries
    its error; a service with a hung handler says so.
    """
    state = str(service.get("state", "?"))
    if state == "failed":
        error = str(service.get("error") or "no error recorded")
        if clip and len(error) > _STATE_ERROR_WIDTH:
            error = error[: _STATE_ERROR_WIDTH - 1] + "…"
        return f"failed ({error})"
    if any(thread.get("hung") for thread in service.get("threads", ())):
        return f"{state} (hung)"
    return state


def duration(seconds: float | None) -> str:
    """A span of time as a person says it: ``42 s``, ``3 min 5 s``, ``2 h 1 min``, ``3 d 4 h``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1:
        return latency(seconds * 1000)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def latency(ms: float | None) -> str:
    """A latency given in milliseconds: ``850 ns``, ``420 µs``, ``3.2 ms``, ``1.25 s``."""
    if ms is None:
        return "-"
    if ms < 0.001:
        return f"{ms * 1e6:.0f} ns"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"
    return duration(ms / 1000) if ms >= 60_000 else f"{ms / 1000:.2f} s"


def clock(epoch: float) -> str:
    """Local wall-clock time with milliseconds: ``14:03:07.215``."""
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


_DETAIL_WIDTH = 80  # arguments or a result longer than this are cut, with an ellipsis
_NAME_WIDTH = 22  # most command and event names fit: the columns after line up
_KIND_STYLE = {"call": "cyan", "return": "green", "event": "magenta", "delivery": "blue"}
_ARROW = {"call": "→", "return": "←", "event": "◆", "delivery": "·"}


def activity_line(activity: dict[str, Any], *, colour: bool) -> str:
    """One ``monitor`` line for an activity record (rich markup when ``colour``).

    ``14:03:07.215 call     say_hello       greeter  ("Alice")`` and the like:
    time, kind, name, who (service, or caller for events), then arguments,
    result or error, and how long it took.
    """
    kind = visible(activity.get("kind", "?"))
    name = visible(activity.get("name", "?"))
    when = clock(_seconds(activity.get("time")))
    error_info = activity.get("error")
    if kind == "event":
        who = f"from {activity.get('caller') or '?'}"
        listeners = activity.get("listeners")
        detail = _call_args(activity)
        tail = "" if listeners is None else f"{listeners} listener{'s' if listeners != 1 else ''}"
    elif kind == "delivery":
        who = str(activity.get("service") or "?")
        detail = f"[{activity.get('pattern', name)}]"
        tail = latency(_number(activity.get("duration_ms")))
    elif kind == "call":
        who = f"{activity.get('caller') or '?'} → {activity.get('service') or '?'}"
        detail = _call_args(activity)
        tail = ""
    else:
        who = str(activity.get("service") or "?")
        detail = "" if error_info else _clip(f"= {activity.get('result', 'null')}")
        tail = latency(_number(activity.get("duration_ms")))
        queued = _number(activity.get("queued_ms"))
        if queued:
            tail += f" (queued {latency(queued)})"
    if isinstance(error_info, dict):
        detail = f"!! {error_info.get('type', 'Error')}: {error_info.get('message', '')}"
    # One record, one line: a newline or an escape inside an argument is shown.
    who, detail, tail = visible(who), visible(detail), visible(tail)
    text_tail = f"  {tail}" if tail else ""
    if not colour:
        return f"{when} {kind:<8} {name:<{_NAME_WIDTH}} {who} {detail}{text_tail}".rstrip()
    style = "red" if error_info else _KIND_STYLE.get(kind, "white")
    arrow = _ARROW.get(kind, " ")
    detail_markup = f"[red]{_escape(detail)}[/]" if error_info else _escape(detail)
    return (
        f"[dim]{when}[/] [{style}]{arrow} {_escape(kind):<8}[/] "
        f"[bold]{_escape(name):<{_NAME_WIDTH}}[/] "
        f"[dim]{_escape(who)}[/] {detail_markup}[dim]{_escape(text_tail)}[/]"
    ).rstrip()


def _number(value: Any) -> float | None:
    """A number the bus sent, or ``None`` for anything else (never a crash)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _seconds(value: Any) -> float:
    number = _number(value)
    # time.localtime takes years 1..9999 or so; a stranger time shows as the epoch.
    return number if number is not None and 0 <= number < 253_402_300_800 else 0.0


def _call_args(activity: dict[str, Any]) -> str:
    args = activity.get("args")
    kwargs = activity.get("kwargs")
    parts = []
    if args not in (None, "[]", "()"):
        try:
            loaded = json.loads(str(args))
        except ValueError:  # bounded JSON cut short, or a repr: show it as sent
            parts.append(str(args))
        else:
            items = loaded if isinstance(loaded, list) else [loaded]
            parts.extend(_compact(item) for item in items)
    if kwargs not in (None, "{}"):
        try:
            loaded = json.loads(str(kwargs))
        except ValueError:
            parts.append(str(kwargs))
        else:
            if isinstance(loaded, dict):
                parts.extend(f"{k}={_compact(v)}" for k, v in loaded.items())
            else:
                parts.append(str(kwargs))
    return _clip(f"({', '.join(parts)})")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _clip(text: str, limit: int = _DETAIL_WIDTH) -> str:
    """Keep monitor lines to one screen line or so; ``--json`` has everything."""
    text = visible(text)  # before cutting: an escape is longer than its character
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
