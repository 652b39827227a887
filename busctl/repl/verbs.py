"""The REPL's verbs: what each one says it does, and what it does.

    verbs = Verbs(link, printer, waiter, timeout=30.0)
    await verbs.run("who-handles", "lights.changed")
    await verbs.call("lights.turn_on kitchen brightness=60")   # a line that is no verb

``VERBS`` is the table ``help`` prints and Tab completes. A line that is
not a verb is a call (``NAME ARG...`` or ``NAME(key=value)``). Arguments are
read by ``busctl._args`` and sent as they are: whether they bind is the
bus's to say. Every request goes through the ``Waiter``, so Ctrl-C stops the
wait and never the command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .._args import ArgumentError, check_text, option_hint, parse_line, split_line
from .._remote import ConnectionLost, RemoteError
from ..render.activity import activity_line, activity_view
from ..render.printed import activity_markup
from .intervene import INTERVENE_VERBS, Intervening
from .link import Link
from .printer import Printer
from .views import (
    show_command_help,
    show_event_help,
    show_overview,
    show_result,
    show_table,
    show_verbs,
)
from .waiting import Feed, Waiter

__all__ = ["ALIASES", "VERBS", "Verbs"]

VERBS: dict[str, str] = {
    "help": "help [NAME]: these verbs, or a command's signature, doc and stats (also ?NAME)",
    "call": "call NAME ARG...: run a command (the same as NAME ARG... or NAME(key=value))",
    "emit": "emit NAME ARG...: fire an event (also emit NAME(key=value))",
    "monitor": "monitor [PATTERN...]: show live activity until Ctrl-C",
    "inspect": "inspect: the bus at a glance: state, uptime, totals",
    "services": "services: the services, their state and counts",
    "commands": "commands: the commands and their signatures",
    "listeners": "listeners: the listeners in delivery order",
    "who-handles": "who-handles NAME: exactly which handlers a name reaches",
    **INTERVENE_VERBS,
    "verbose": "verbose [on|off]: show the remote traceback with each error",
    "traceback": "traceback: the remote traceback of the last error",
    "reconnect": "reconnect: attach to the bus again",
    "exit": "exit: leave the REPL (also quit, Ctrl-D)",
}
ALIASES = {"quit": "exit", "?": "help"}

_MONITOR_BACKLOG = 10_000  # activity lines held for a slow terminal; beyond, dropped and counted


class Verbs:
    """The handlers of ``VERBS`` (but ``exit``, which the loop keeps), and calls.

    Args:
        link: the REPL's hold on the bus.
        printer: where results and messages go.
        waiter: how requests are sent and waited for.
        timeout: seconds the bus waits for a command before giving up.
    """

    def __init__(
        self,
        link: Link,
        printer: Printer,
        waiter: Waiter,
        *,
        timeout: float | None,
        confirm: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.link = link
        self.printer = printer
        self.waiter = waiter
        self.timeout = timeout
        #: ``--safe``: asked before a command not declared read-only runs.
        self.confirm = confirm
        self.intervening = Intervening(link, printer, waiter)
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "help": self.help,
            "call": self.call,
            "emit": self.emit,
            "monitor": self.monitor,
            "inspect": self.inspect,
            "services": self.services,
            "commands": self.commands,
            "listeners": self.listeners,
            "who-handles": self.who_handles,
            "verbose": self.verbose,
            "traceback": self.traceback,
            "reconnect": self.reconnect,
            **self.intervening.handlers,
        }

    async def run(self, verb: str, rest: str) -> None:
        """Carry out ``verb`` (a key of ``VERBS`` other than ``exit``) on ``rest``."""
        await self._handlers[verb](rest)

    # -- calls and events ------------------------------------------------------------

    async def call(self, text: str) -> None:
        """``NAME ARG...`` or ``NAME(key=value)``: execute it, show the result."""
        try:
            name, args, kwargs = parse_line(text)
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        self.intervening.last_call, self.intervening.last_kind = (name, args, kwargs), "command"
        if not await self._safe_to_run(name):
            return
        params = {"name": name, "args": args, "kwargs": kwargs, "timeout": self.timeout}
        reply = await self.waiter.request("execute", params, what=name, hint=_option_hint(text))
        if isinstance(reply, dict):
            show_result(
                self.printer.console,
                reply.get("value"),
                colour=self.printer.colour,
                lossy=bool(reply.get("lossy")),
            )

    async def _safe_to_run(self, name: str) -> bool:
        """With ``--safe``: whether the person says yes to a command not declared read-only."""
        if self.confirm is None:
            return True
        entry = self.link.registry.commands.get(name)
        if entry is None or entry.get("readonly"):
            return True  # read-only, or unknown: the bus says which
        if await self.confirm(f"{name} is not declared read-only: run it? [y/N] "):
            return True
        self.printer.say(f"not run: {name} (--safe)")
        return False

    async def emit(self, rest: str) -> None:
        """``emit NAME ARG...``: fire it, say how many listeners matched."""
        if not rest:
            self.printer.say("usage: emit NAME ARG... (or emit NAME(key=value))")
            return
        try:
            name, args, kwargs = parse_line(rest)
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        self.intervening.last_call, self.intervening.last_kind = (name, args, kwargs), "event"
        params = {"name": name, "args": args, "kwargs": kwargs}
        reply = await self.waiter.request("fire", params, what=f"emit {name}")
        if isinstance(reply, dict):
            count = reply.get("listeners", 0)
            self.link.registry.saw_event(name)
            self.printer.say(f"fired {name}: {count} listener{'' if count == 1 else 's'} matched")

    # -- help and the views ----------------------------------------------------------

    async def help(self, name: str) -> None:
        """``help``: the verbs; ``help NAME``: a command, a verb or an event."""
        out = self.printer.console
        if not name:
            show_verbs(out, VERBS)
            return
        if not self._readable(name):
            return
        snapshot = await self._inspect()
        if snapshot is None:
            return
        entry = self.link.registry.commands.get(name)
        if entry is not None:
            show_command_help(out, entry, colour=self.printer.colour)
            return
        if ALIASES.get(name, name) in VERBS:
            self.printer.say(VERBS[ALIASES.get(name, name)])
            return
        routing = await self.waiter.request("who_handles", {"name": name}, what="help")
        if isinstance(routing, dict) and routing.get("listeners"):
            show_event_help(out, name, routing)
        elif isinstance(routing, dict):
            self._nothing_named(name, routing)

    async def who_handles(self, rest: str) -> None:
        """``who-handles NAME``: the command and the listeners a name reaches."""
        if not rest:
            self.printer.say("usage: who-handles NAME")
            return
        if not self._readable(rest):
            return
        routing = await self.waiter.request("who_handles", {"name": rest}, what="who-handles")
        if not isinstance(routing, dict):
            return
        if routing.get("command"):
            show_command_help(self.printer.console, routing["command"], colour=self.printer.colour)
        if routing.get("listeners"):
            show_event_help(self.printer.console, rest, routing)
        if not routing.get("command") and not routing.get("listeners"):
            self._nothing_named(rest, routing)

    async def inspect(self, rest: str) -> None:
        """``inspect``: the bus at a glance."""
        snapshot = await self._inspect()
        if snapshot is not None:
            info = getattr(self.link.client, "info", {}) or {}
            show_overview(self.printer.console, snapshot, info)

    async def services(self, rest: str) -> None:
        """``services``: the table ``busctl services`` prints."""
        await self._view("services")

    async def commands(self, rest: str) -> None:
        """``commands``: the table ``busctl commands`` prints."""
        await self._view("commands")

    async def listeners(self, rest: str) -> None:
        """``listeners``: the table ``busctl listeners`` prints."""
        await self._view("listeners")

    # -- the session's own settings ----------------------------------------------------

    async def verbose(self, rest: str) -> None:
        """``verbose [on|off]``: remote tracebacks with errors, or not."""
        if rest in {"on", "off"}:
            self.printer.verbose = rest == "on"
        elif rest:
            self.printer.say("usage: verbose [on|off]")
            return
        self.printer.say(f"verbose is {'on' if self.printer.verbose else 'off'}")

    async def traceback(self, rest: str) -> None:
        """``traceback``: the remote traceback of the last error."""
        last = self.printer.last_error
        trace = last.remote_traceback if isinstance(last, RemoteError) else None
        self.printer.say(
            trace.rstrip() if trace else "no remote traceback: the last error had none"
        )

    async def reconnect(self, rest: str = "") -> None:
        """``reconnect``: attach to the bus again."""
        self.attach_again()

    def attach_again(self) -> bool:
        """Replace the connection; ``False`` if the bus cannot be reached."""
        try:
            client = self.link.reconnect()
        except RemoteError as exc:
            self.printer.failed(exc, counted=False)
            return True
        except Exception as exc:
            self.link.lost = True
            self.printer.say(f"cannot reconnect: {exc}", error=True)
            return False
        self.printer.say(f"reconnected to bus {self.link.name} at {client.address}")
        return True

    # -- monitor ---------------------------------------------------------------------

    async def monitor(self, rest: str) -> None:
        """``monitor [PATTERN...]``: activity lines until Ctrl-C."""
        try:
            patterns = [check_text(pattern) for pattern in split_line(rest)] or ["*"]
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return
        feed = Feed(asyncio.get_running_loop(), _MONITOR_BACKLOG)
        client = self.link.client
        try:
            subscription = client.subscribe("activity", feed.put, patterns=patterns)
        except RemoteError as exc:
            self.printer.failed(exc, counted=False)
            return
        except ConnectionLost as exc:
            self.waiter.lost(exc)
            raise
        self.printer.say(f"monitoring {' '.join(patterns)} on bus {self.link.name}; Ctrl-C stops")
        shown = 0
        try:
            while True:
                ready = asyncio.ensure_future(feed.ready())
                try:
                    interrupted = await self.waiter.keys_until(ready)
                finally:
                    ready.cancel()
                shown += self._show_activity(feed)
                if interrupted:
                    break
                if client.closed:
                    raise ConnectionLost(f"connection to bus {self.link.name} lost")
        except ConnectionLost as exc:
            self.waiter.lost(exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                subscription.close(timeout=2.0)
        self.printer.say(f"monitor stopped ({shown} shown)")

    def _show_activity(self, feed: Feed) -> int:
        shown = 0
        lost = feed.lost
        colour = self.printer.colour
        for method, params in feed.drain():
            if method == "dropped":
                count = params.get("count")
                self.printer.say(f"... the bus dropped {count} records (we read too slowly)")
                continue
            activity = params.get("activity")
            if not isinstance(activity, dict):
                continue
            if activity.get("kind") == "event":
                self.link.registry.saw_event(str(activity.get("name")))
            process = params.get("process")  # over NATS: the process it was seen in
            view = activity_view(
                {**activity, "process": process} if isinstance(process, str) else activity
            )
            line = (
                activity_markup(view, process=process)
                if colour
                else activity_line(view, process=process)
            )
            # One line per record: cut at the terminal's edge rather than wrapped.
            self.printer.console.print(
                line, markup=colour, highlight=False, no_wrap=True, overflow="ellipsis"
            )
            shown += 1
        if feed.lost > lost:
            self.printer.say(f"... {feed.lost - lost} records skipped (the terminal is too slow)")
        return shown

    # -- small things ----------------------------------------------------------------

    def _readable(self, name: str) -> bool:
        """Whether ``name`` can be sent (valid Unicode); says why not."""
        try:
            check_text(name)
        except ArgumentError as exc:
            self.printer.bad_arguments(exc)
            return False
        return True

    def _nothing_named(self, name: str, routing: dict[str, Any]) -> None:
        suggestions = routing.get("suggestions") or []
        hint = f"; did you mean {', '.join(map(str, suggestions[:5]))}?" if suggestions else ""
        self.printer.say(
            f"no command named {name}, and no listener for an event of that name{hint}"
        )

    async def _view(self, what: str) -> None:
        snapshot = await self._inspect()
        if snapshot is not None:
            show_table(self.printer.console, what, snapshot, colour=self.printer.colour)

    async def _inspect(self) -> dict[str, Any] | None:
        snapshot = await self.waiter.request("inspect", None, what="inspect")
        if isinstance(snapshot, dict):
            self.link.registry.update(snapshot)
            self.link.mark_fresh()
            return snapshot
        return None


def _option_hint(line: str) -> str | None:
    """``option_hint`` for the arguments of a ``NAME ARG...`` line (none for ``NAME(...)``)."""
    try:
        tokens = split_line(line)
    except ArgumentError:
        return None
    return option_hint(tokens[1:])
