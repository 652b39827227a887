"""The REPL's verbs that step into the bus: hold, held, release, drop, unhold, stubs, history, copy.

    home> hold lights.turn_on --calls --for 5m
    home> held
    home> release 1 brightness=40
    home> stub thermostat.read_sensor --raises 'TimeoutError: no answer' --times 3
    home> history lights.* -n 10
    home> copy python                 # the last call, as a Python snippet

The same requests as ``busctl hold`` and friends (``busctl._intervene``
reads what was typed), shown with the same tables (``busctl.render``). Every
request goes through the ``Waiter``: Ctrl-C stops the wait, errors are one
line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal, TextIO

from .._args import ArgumentError, check_text, parse_line, parse_value, split_line
from .._copy import FORMATS, copy_as, osc52
from .._intervene import edit_params, held_id, holds_of, parse_seconds, unhold_params
from ..render.intervene import HELD, HOLDS, STUBS, history_line, hold_text, stub_text
from ..render.printed import registry_table
from ..render.units import duration
from .link import Link
from .printer import Printer
from .waiting import Waiter

__all__ = ["INTERVENE_VERBS", "Intervening"]

INTERVENE_VERBS: dict[str, str] = {
    "hold": "hold PATTERN [--calls|--events] [--service S] [--for 10m]: hold calls and events",
    "held": "held: what is held, and the holds",
    "release": "release ID|all [NAME=VALUE...] [--args JSON]: let held work go, edited or not",
    "drop": "drop ID|all: drop held work (a call fails with DroppedByConsoleError)",
    "unhold": "unhold PATTERN|ID: end a hold; what it held goes on",
    "stub": "stub NAME --returns JSON | --raises 'Type: msg' [--for 10m] [--times N]",
    "unstub": "unstub NAME: the real handler back",
    "stubs": "stubs: the live stubs",
    "history": "history [PATTERN...] [-n N]: recent calls (with results) and events",
    "copy": "copy [busctl|python|json-rpc] [NAME ARG...]: a call (default the last) as text",
}


class Intervening:
    """The handlers of ``INTERVENE_VERBS``.

    Args:
        link: the REPL's hold on the bus.
        printer: where results and messages go.
        waiter: how requests are sent and waited for.
        clipboard: where ``copy`` writes the OSC 52 sequence (a terminal), or
            ``None`` to print only.
    """

    def __init__(
        self, link: Link, printer: Printer, waiter: Waiter, clipboard: TextIO | None = None
    ) -> None:
        self.link = link
        self.printer = printer
        self.waiter = waiter
        self.clipboard = clipboard if clipboard is not None else _terminal()
        #: The last call made at the prompt: ``(name, args, kwargs)``, for ``copy``,
        #: and whether it ran a command or fired an event.
        self.last_call: tuple[str, list[Any], dict[str, Any]] | None = None
        self.last_kind: Literal["command", "event"] = "command"
        self.handlers: dict[str, Callable[[str], Any]] = {
            "hold": self.hold,
            "held": self.held,
            "release": self.release,
            "drop": self.drop,
            "unhold": self.unhold,
            "stub": self.stub,
            "unstub": self.unstub,
            "stubs": self.stubs,
            "history": self.history,
            "copy": self.copy,
        }

    # -- holds -------------------------------------------------------------------------

    async def hold(self, rest: str) -> None:
        """``hold PATTERN [--calls|--events] [--service S] [--for T]``."""
        try:
            words, options = _options(
                rest, flags={"--calls", "--events"}, valued={"--service", "--for"}
            )
            if len(words) != 1:
                raise ArgumentError(
                    "usage: hold PATTERN [--calls|--events] [--service S] [--for 10m]"
                )
            params: dict[str, Any] = {"pattern": check_text(words[0])}
            params["for"] = parse_seconds(options.get("--for", "10m"))
            if "--calls" in options and "--events" in options:
                raise ArgumentError("--calls or --events, not both (neither: both)")
            if "--calls" in options:
                params["kind"] = "call"
            elif "--events" in options:
                params["kind"] = "event"
            if "--service" in options:
                params["service"] = check_text(options["--service"])
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        result = await self.waiter.request("hold", params, what="hold")
        for one in holds_of(result):
            self.printer.say(hold_text(one))

    async def held(self, rest: str) -> None:
        """``held``: the holds and what they hold."""
        result = await self.waiter.request("held", None, what="held")
        if not isinstance(result, dict):
            return
        out, colour = self.printer.console, self.printer.colour
        if not result.get("holds"):
            self.printer.say("no holds are set (hold PATTERN sets one)")
            return
        out.print(registry_table(HOLDS, result, colour=colour))
        out.print()  # as `busctl held` prints them: two tables, a line apart
        if result.get("held"):
            out.print(registry_table(HELD, result, colour=colour))
        else:
            self.printer.say("nothing is held yet")

    async def release(self, rest: str) -> None:
        """``release ID|all [NAME=VALUE...] [--args JSON]``."""
        try:
            words, options = _options(rest, valued={"--args"})
            if not words:
                raise ArgumentError("usage: release ID|all [NAME=VALUE...] [--args JSON]")
            params = _which(words[0])
            edits = edit_params(words[1:], options.get("--args"))
            if edits and "all" in params:
                raise ArgumentError("edit one item at a time: release ID NAME=VALUE")
            params.update(edits)
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        result = await self.waiter.request("release", params, what="release")
        if isinstance(result, dict):
            released = result.get("released") or []
            edited = " (edited)" if edits else ""
            self.printer.say(
                f"released {', '.join(map(str, released))}{edited}" if released else "nothing held"
            )

    async def drop(self, rest: str) -> None:
        """``drop ID|all``."""
        try:
            params = _which(rest.strip())
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        result = await self.waiter.request("drop", params, what="drop")
        if isinstance(result, dict):
            dropped = result.get("dropped") or []
            self.printer.say(
                f"dropped {', '.join(map(str, dropped))}" if dropped else "nothing held"
            )

    async def unhold(self, rest: str) -> None:
        """``unhold PATTERN|ID``."""
        if not rest.strip():
            self.printer.say("usage: unhold PATTERN|ID")
            return
        result = await self.waiter.request("unhold", unhold_params(rest), what="unhold")
        if isinstance(result, dict):
            for ended in result.get("holds") or []:
                self.printer.say(f"hold {ended.get('id')} on {ended.get('pattern')} ended")
            if result.get("released"):
                self.printer.say(f"released {', '.join(map(str, result['released']))}")

    # -- stubs -------------------------------------------------------------------------

    async def stub(self, rest: str) -> None:
        """``stub NAME --returns JSON | --raises 'Type: message' [--for T] [--times N]``."""
        try:
            words, options = _options(rest, valued={"--returns", "--raises", "--for", "--times"})
            if len(words) != 1 or (("--returns" in options) == ("--raises" in options)):
                raise ArgumentError(INTERVENE_VERBS["stub"])
            params: dict[str, Any] = {"name": check_text(words[0])}
            params["for"] = parse_seconds(options.get("--for", "10m"))
            if "--raises" in options:
                params["raises"] = options["--raises"]
            else:
                params["returns"] = parse_value(options["--returns"])
            if "--times" in options:
                times = parse_value(options["--times"])
                if not isinstance(times, int) or isinstance(times, bool) or times < 1:
                    raise ArgumentError("--times takes a whole number of calls, at least 1")
                params["times"] = times
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        result = await self.waiter.request("stub", params, what="stub")
        if isinstance(result, dict):
            self.link.mark_stale()  # the commands table shows it at the next prompt
            for made in result.get("stubs") or [result]:
                limit = f", for {made['times']} calls" if made.get("times") else ""
                self.printer.say(
                    f"stubbed {made.get('name')} on {made.get('service')}: {stub_text(made)}"
                    f"{limit}, ends in {duration(made.get('expires_in'))}"
                )

    async def unstub(self, rest: str) -> None:
        """``unstub NAME``."""
        if not rest.strip():
            self.printer.say("usage: unstub NAME")
            return
        result = await self.waiter.request("unstub", {"name": rest.strip()}, what="unstub")
        if isinstance(result, dict):
            self.link.mark_stale()
            self.printer.say(f"unstubbed {result.get('name')}: the real handler is back")

    async def stubs(self, rest: str) -> None:
        """``stubs``: the live stubs."""
        result = await self.waiter.request("stubs", None, what="stubs")
        if isinstance(result, dict):
            if result.get("stubs"):
                out = self.printer.console
                out.print(registry_table(STUBS, result, colour=self.printer.colour))
            else:
                self.printer.say("no command is stubbed")

    # -- history and copy ------------------------------------------------------------

    async def history(self, rest: str) -> None:
        """``history [PATTERN...] [-n N]``."""
        try:
            words, options = _options(rest, valued={"-n"})
            limit = parse_value(options.get("-n", "20"))
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ArgumentError("-n takes a number of entries, at least 1")
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        params: dict[str, Any] = {"limit": limit}
        if words:
            params["patterns"] = words
        result = await self.waiter.request("history", params, what="history")
        if isinstance(result, dict):
            entries = result.get("entries") or []
            if not entries:
                self.printer.say("nothing in the bus's span ring matches (is tracing on?)")
            for entry in entries:
                self.printer.console.print(
                    history_line(entry), markup=False, highlight=False, no_wrap=True,
                    overflow="ellipsis",
                )  # fmt: skip

    async def copy(self, rest: str) -> None:
        """``copy [FORMAT] [NAME ARG...]``: a call as text, to the clipboard and the screen."""
        words = rest.split(maxsplit=1)
        fmt = "busctl"
        if words and words[0] in FORMATS:
            fmt = words.pop(0)
        call, kind = self.last_call, self.last_kind
        if words:
            kind = "command"
            try:
                call = parse_line(words[0])
            except ArgumentError as exc:
                self.printer.bad_arguments(exc)
                return
        if call is None:
            self.printer.say("nothing to copy yet: make a call first, or copy NAME ARG...")
            return
        name, args, kwargs = call
        text = copy_as(fmt, name, args, kwargs, kind=kind)
        if self.clipboard is not None:
            self.clipboard.write(osc52(text))
            self.clipboard.flush()
            self.printer.say(f"copied as {fmt} (to the clipboard where the terminal allows):")
        self.printer.say(text)


def _terminal() -> TextIO | None:
    """The terminal to send OSC 52 to: stdout when it is one."""
    return sys.stdout if sys.stdout.isatty() else None


def _which(word: str) -> dict[str, Any]:
    if word in ("all", "--all"):
        return {"all": True}
    if not word:
        raise ArgumentError("which one? give an ID (held lists them) or all")
    return {"id": held_id(word)}


def _options(
    rest: str, *, flags: frozenset[str] | set[str] = frozenset(), valued: set[str]
) -> tuple[list[str], dict[str, str]]:
    """Words and ``--option [VALUE]`` of a line, quotes and brackets kept together."""
    tokens = split_line(rest)
    words: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=")
        if token in flags:
            options[token] = ""
        elif name in valued and eq:
            options[name] = _unquoted(value)
        elif token in valued:
            if i + 1 >= len(tokens):
                raise ArgumentError(f"{token} needs a value")
            options[token] = _unquoted(tokens[i + 1])
            i += 1
        elif token.startswith("--"):
            known = ", ".join(sorted([*flags, *valued]))
            raise ArgumentError(f"unknown option {token} (options: {known})")
        else:
            words.append(token)
        i += 1
    return words, options


def _unquoted(text: str) -> str:
    """An option's value as typed: quotes around it are the line's, not the value's."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text
