"""What ``busctl`` prints: rich tables for people, plain JSON for scripts.

    from busctl.cli import _output
    from busctl.render.columns import COMMANDS

    _output.table(["NAME", "CALLS"], [["say_hello", "3"]], title="commands")
    _output.registry(COMMANDS, snapshot)       # the commands table every face shows
    _output.print_json({"name": "home"})       # stdout holds only JSON

Colour only when stdout is a terminal (and ``NO_COLOR`` is unset); when piped,
lines are not wrapped to a terminal width. Everything a bus sends (names,
docs, results, error messages, thread names) is printed with its control
characters made visible (``busctl.render.text.visible``) and never read as rich
markup; ``print_json`` needs neither. The tables, times and activity lines
themselves are ``busctl.render``'s, shared with the REPL and the TUI.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..render.columns import Table
from ..render.printed import grid, json_highlighted, registry_table
from ..render.text import visible, visible_json

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "console",
    "error",
    "fields",
    "print_json",
    "print_value",
    "registry",
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
    out = console()
    out.print(grid(columns, rows, colour=out.is_terminal, right=right, title=title))


def registry(spec: Table, snapshot: Mapping[str, Any]) -> None:
    """Print a registry table (``busctl.render.columns``) of an ``inspect()`` snapshot."""
    out = console()
    out.print(registry_table(spec, snapshot, colour=out.is_terminal))


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


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
