"""What every face reads when a person steps into a bus: times, ids, edits, argument files.

    parse_seconds("10m")                 # 600.0  (also "90", "90s", "1.5h")
    held_id("3")                         # 3;  held_id("3@vm:4242") -> "3@vm:4242" (over NATS)
    unhold_params("lights.*")            # {"pattern": "lights.*"};  unhold_params("2") -> {"id": 2}
    edit_params(["brightness=40"])       # {"set": {"brightness": 40}}
    read_arguments("@args.json")         # (["hall"], {"brightness": 40}) from the file

The CLI, the REPL and the TUI send the same ``hold``, ``release``,
``unhold`` and ``stub`` requests (``docs/protocol.md``); this module reads
what a person typed into their params once, with one-line errors
(``ArgumentError``) that say how to write it.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from ._args import ArgumentError, parse_args

__all__ = [
    "MAX_SECONDS",
    "edit_params",
    "held_id",
    "holds_of",
    "parse_seconds",
    "read_arguments",
    "unhold_params",
]

MAX_SECONDS = 86_400.0
"""The longest a hold or a stub may last (the bus's bound): a day."""

_SECONDS = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*\Z")
_UNIT = {None: 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_ID = re.compile(r"\d+(@\S+)?\Z")


def parse_seconds(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``1.5h``: seconds, more than 0 and at most a day.

    Raises:
        ArgumentError: not a time, or out of range.
    """
    match = _SECONDS.match(str(text))
    if match is None:
        raise ArgumentError(f"{text!r} is not a time: write seconds (90) or 90s, 10m, 1h")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ArgumentError(f"{text!r}: a time must be more than 0 and at most 24h")
    return seconds


def held_id(text: str) -> int | str:
    """A held item's (or a hold's) id as typed: ``3``, or ``3@PROCESS`` on a bus over NATS.

    Raises:
        ArgumentError: it is not an id.
    """
    text = str(text).strip()
    if not _ID.match(text) or int(text.split("@", 1)[0]) < 1:
        raise ArgumentError(f"{text!r} is not an id: `held` lists them (3, or 3@host:4242)")
    return int(text) if text.isdigit() else text


def unhold_params(text: str) -> dict[str, Any]:
    """``unhold``'s params for what was typed: a hold's id, or a pattern."""
    text = str(text).strip()
    if _ID.match(text):
        return {"id": held_id(text)}
    return {"pattern": text}


def holds_of(result: Any) -> list[dict[str, Any]]:
    """The holds a ``hold`` result stands for: one on a socket, one per process over NATS."""
    if not isinstance(result, dict):
        return []
    holds = result.get("holds")
    if isinstance(holds, list):
        return [h for h in holds if isinstance(h, dict)]
    return [result]


def edit_params(tokens: list[str], args_json: str | None = None) -> dict[str, Any]:
    """``release``'s edit params: ``name=value`` tokens, and new arguments as JSON.

    ``tokens`` are read as the REPL and ``busctl call`` read arguments, and
    each must be ``name=value``: it changes that parameter (``set``).
    ``args_json`` replaces all the arguments, read as an ``@FILE`` is
    (``read_arguments``): a JSON array, an object of keywords, or
    ``{"args": [...], "kwargs": {...}}``.

    Raises:
        ArgumentError: a token that is no ``name=value``, or JSON that is none of those.
    """
    params: dict[str, Any] = {}
    if args_json is not None:
        params["args"], params["kwargs"] = _arguments_of(args_json, "--args")
    if tokens:
        positional, changes = parse_args(tokens)
        if positional:
            raise ArgumentError(
                f"{json.dumps(positional[0])}: an edit is name=value "
                "(--args JSON replaces all the arguments)"
            )
        params["set"] = changes
    return params


def read_arguments(source: str, stdin: Any = None) -> tuple[list[Any], dict[str, Any]]:
    """The arguments in ``@FILE`` (or ``-``: standard input), which hold JSON.

    A JSON array is the positional arguments; an object is the keyword
    arguments, unless its only keys are ``args`` (an array) and ``kwargs``
    (an object), as in a copied request's params, or it is an entry of
    ``busctl history --json`` (or ``monitor --json``), whose call it repeats.

    Raises:
        ArgumentError: the file cannot be read, or is not such JSON.
    """
    where = "standard input" if source == "-" else source[1:]
    try:
        if source == "-":
            text = (stdin or sys.stdin).read()
        else:
            text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        hint = "; quote a string that starts with @ as JSON: '\"@x\"'"
        raise ArgumentError(f"cannot read arguments from {where}: {exc}{hint}") from None
    return _arguments_of(text, where)


def _arguments_of(text: str, where: str) -> tuple[list[Any], dict[str, Any]]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ArgumentError(f"the arguments in {where} are not JSON: {exc}") from None
    if isinstance(value, list):
        return value, {}
    if isinstance(value, dict):
        if _is_entry(value):  # a line of `history --json` or `monitor --json`: its call
            return list(_decoded(value.get("args"), [])), dict(_decoded(value.get("kwargs"), {}))
        keys = set(value)
        if (
            keys
            and keys <= {"args", "kwargs", "name"}
            and (
                isinstance(value.get("args", []), list)
                and isinstance(value.get("kwargs", {}), dict)
            )
            and keys & {"args", "kwargs"}
        ):
            return list(value.get("args", [])), dict(value.get("kwargs", {}))
        return [], value
    raise ArgumentError(
        f"the arguments in {where} must be a JSON array (positional) or object (keywords)"
    )


def _is_entry(value: dict[str, Any]) -> bool:
    """Whether ``value`` is an activity or history entry (it names its kind and its name)."""
    return (
        value.get("kind") in ("call", "event", "delivery")
        and isinstance(value.get("name"), str)
        and isinstance(_decoded(value.get("args"), []), list)
        and isinstance(_decoded(value.get("kwargs"), {}), dict)
    )


def _decoded(value: Any, empty: Any) -> Any:
    """An entry's arguments: JSON values, or the bus's JSON text of them."""
    if value is None:
        return empty
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
