"""“Copy as”: a call (or an event) as a ``busctl`` line, a Python snippet, or a JSON-RPC line.

    copy_as("busctl", "lights.turn_on", ["hall"], {"brightness": 40})
    # "busctl call lights.turn_on hall brightness=40"
    copy_as("python", "lights.turn_on", ["hall"], {"brightness": 40})
    # 'bus.execute_command("lights.turn_on", "hall", brightness=40).result(timeout=30)'
    copy_as("json-rpc", "lights.turn_on", ["hall"], {"brightness": 40})
    # the execute request, one line of JSON-RPC 2.0 (id 1)
    osc52("text")     # the escape sequence that puts "text" on the terminal's clipboard

The TUI's ``y`` and the REPL's ``copy`` use these. A ``busctl`` line reads
back (``busctl._args``) to the same arguments: a string is written bare only
when it would be read back as that string, and every token is quoted for a
POSIX shell. The JSON-RPC line is built with ``bus.control.protocol``, as
every request is.
"""

from __future__ import annotations

import base64
import json
import shlex
from typing import Any, Literal

from bus.control import protocol

from ._args import ArgumentError, parse_args

__all__ = ["FORMATS", "copy_as", "osc52"]

Format = Literal["busctl", "python", "json-rpc"]
FORMATS: tuple[Format, ...] = ("busctl", "python", "json-rpc")
"""What a call can be copied as."""


def copy_as(
    fmt: str,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    kind: Literal["command", "event"] = "command",
    timeout: float = 30.0,
) -> str:
    """The call of ``name`` with these arguments as text of format ``fmt``.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "busctl":
        verb = "call" if kind == "command" else "emit"
        tokens = [_token(value) for value in args]
        tokens += [f"{key}={_token(value)}" for key, value in kwargs.items()]
        line = " ".join(["busctl", verb, shlex.quote(name), *(shlex.quote(t) for t in tokens)])
        return line if _reads_back(tokens, args, kwargs) else _json_line(verb, name, args, kwargs)
    if fmt == "python":
        parts = [_python(name), *map(_python, args)]
        parts += [f"{key}={_python(value)}" for key, value in kwargs.items()]
        if kind == "event":
            return f"bus.fire_event({', '.join(parts)})"
        return f"bus.execute_command({', '.join(parts)}).result(timeout={timeout:g})"
    if fmt == "json-rpc":
        method = "execute" if kind == "command" else "fire"
        params: dict[str, Any] = {"name": name, "args": list(args), "kwargs": dict(kwargs)}
        return protocol.dumps(protocol.request(1, method, params)).decode().rstrip("\n")
    raise ValueError(f"copy as {fmt!r}? one of: {', '.join(FORMATS)}")


def _token(value: Any) -> str:
    """How ``value`` is typed: a bare word when it reads back as that string, else JSON."""
    if isinstance(value, str) and value and value.strip() == value and " " not in value:
        try:
            args, kwargs = parse_args([value])
        except ArgumentError:
            pass
        else:
            if args == [value] and not kwargs:
                return value
    return json.dumps(value, ensure_ascii=False)


def _reads_back(tokens: list[str], args: list[Any], kwargs: dict[str, Any]) -> bool:
    try:
        return parse_args(tokens) == (list(args), dict(kwargs))
    except ArgumentError:
        return False


def _json_line(verb: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """A line with the arguments as one JSON file on stdin: for what tokens cannot say."""
    data = json.dumps({"args": list(args), "kwargs": dict(kwargs)}, ensure_ascii=False)
    return f"echo {shlex.quote(data)} | busctl {verb} {shlex.quote(name)} -"


def _python(value: Any) -> str:
    """A Python literal of a JSON value (``true`` is ``True``; text in double quotes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def osc52(text: str) -> str:
    """The OSC 52 sequence that asks the terminal to put ``text`` on the clipboard."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"\x1b]52;c;{payload}\x07"
