"""The REPL's core: a loop of prompt, parse, request, print, free of any terminal.

    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keys:
        keys.send_text("say_hello Alice\\r")
        keys.close()
        out = io.StringIO()
        Repl(client, input=keys, output=DummyOutput(), stdout=out).run()

Input is never evaluated: a line is a verb of the REPL (``help``, ``emit``,
``monitor``...) or a call, parsed by ``busctl._args`` (JSON or Python
literals). Waiting for a reply or watching activity reads the keyboard
itself in raw mode, so Ctrl-C arrives as a key, not as a signal, the same
way on a terminal and through a pipe in tests: it stops the wait, never the
REPL, and never the command, which runs on in the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from rich.console import Console

from bus.control.protocol import ErrorCode

from .._args import ArgumentError, check_text, option_hint, parse_line, split_line
from .._client import Client, ConnectionLost, RemoteError
from .._exit import ExitStatus
from ..render.activity import activity_line, activity_view
from ..render.printed import activity_markup
from ..render.text import visible
from .complete import Registry, ReplCompleter
from .keys import Feed, keys_until
from .link import Link
from .views import (
    banner,
    show_command_help,
    show_error,
    show_event_help,
    show_overview,
    show_result,
    show_table,
    show_verbs,
    toolbar,
)

__all__ = ["VERBS", "Repl", "default_history_path"]

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
    "verbose": "verbose [on|off]: show the remote traceback with each error",
    "traceback": "traceback: the remote traceback of the last error",
    "reconnect": "reconnect: attach to the bus again",
    "exit": "exit: leave the REPL (also quit, Ctrl-D)",
}
_ALIASES = {"quit": "exit", "?": "help"}
_MONITOR_BACKLOG = 10_000  # activity lines held for a slow terminal; beyond, dropped and counted
_WORD = re.compile(r"[^\s(]+")


class _Lost(Exception):
    """Raised into the prompt when the connection to the bus ends."""


class _Interrupted(Exception):
    """Ctrl-C while waiting."""


def default_history_path() -> Path:
    """``$XDG_STATE_HOME/busctl/history``, else ``~/.local/state/busctl/history``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "busctl" / "history"


class Repl:
    """An interactive session with one bus, through a ``Client``.

    Args:
        client: the connection to the bus. The REPL does not close it, but
            after a reconnect uses a new one (``client``), which the caller
            closes as well.
        input: where keys come from (``None``: the terminal).
        output: where the prompt is drawn (``None``: the terminal).
        stdout: where results, tables and errors are written.
        history: the prompt's history (``None``: in memory only).
        embedded: the bus was started by this process; the banner says so.
        verbose: show remote tracebacks with errors.
        timeout: seconds the bus waits for a command before giving up.
        connect: makes a new client for ``reconnect`` (default: the same address).
        colour: colour and highlighting (``None``: when ``stdout`` is a terminal).
        learn_events: watch the bus's activity for event names to complete.

    ``run()`` blocks until the user leaves; use it from one thread only.
    """

    def __init__(
        self,
        client: Client,
        *,
        input: Input | None = None,
        output: Output | None = None,
        stdout: TextIO | None = None,
        history: History | None = None,
        embedded: bool = False,
        verbose: bool = False,
        timeout: float | None = 30.0,
        connect: Callable[[], Client] | None = None,
        colour: bool | None = None,
        learn_events: bool = True,
    ) -> None:
        self.embedded = embedded
        self.verbose = verbose
        self.timeout = timeout
        self.registry = Registry()
        self.last_error: BaseException | None = None
        self.failures = 0
        """How many lines failed (errors shown), for ``run_script``'s status."""
        stream = stdout if stdout is not None else sys.stdout
        if colour is None:
            colour = stream.isatty() and not os.environ.get("NO_COLOR")
        self.colour = colour
        self.console = Console(
            file=stream,
            force_terminal=colour,
            no_color=not colour,
            highlight=colour,
            soft_wrap=not colour,
            width=None if colour else 200,
        )
        self.link = Link(client, self.registry, connect=connect, learn_events=learn_events)
        self._pending_text = ""  # what was typed when the connection was lost
        self._keyboard = True  # whether Ctrl-C can be read during waits
        self._sigint = asyncio.Event()  # made again on each run's loop
        self.completer = ReplCompleter(self.registry, {**VERBS, "quit": "leave the REPL"})
        self._terminal = (input, output, history)

    @property
    def client(self) -> Client:
        """The connection in use (a new one after ``reconnect``)."""
        return self.link.client

    @functools.cached_property
    def session(self) -> PromptSession[str]:
        """The prompt, made on first use: a script on stdin never opens the terminal."""
        input, output, history = self._terminal
        return PromptSession(
            input=input,
            output=output,
            history=history or InMemoryHistory(),
            completer=self.completer,
            complete_while_typing=True,
            auto_suggest=AutoSuggestFromHistory(),
            bottom_toolbar=self._toolbar,
        )

    # -- the loop ---------------------------------------------------------------

    def run(self) -> int:
        """Prompt until ``exit`` or Ctrl-D; return the exit status."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> int:
        """``run()`` on the running event loop."""
        self._sigint = asyncio.Event()
        try:
            self._attach()
            self._banner()
            while True:
                if self.link.lost and not await self._offer_reconnect():
                    return ExitStatus.NO_BUS
                self.link.refresh_soon()
                text, self._pending_text = self._pending_text, ""
                try:
                    line = await self.session.prompt_async(self._prompt(), default=text)
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt: the line is dropped
                except EOFError:
                    break
                except _Lost:
                    continue
                try:
                    if not await self.handle(line):
                        break
                except ConnectionLost:
                    self.link.lost = True
            return ExitStatus.OK
        finally:
            self._release_sigint()
            self.link.close()

    def run_script(self, lines: Iterable[str]) -> int:
        """Carry out ``lines`` without prompting (stdin is not a terminal).

        Each line is echoed after the prompt, so the output reads like a
        session. Returns ``ExitStatus.ERROR`` if any line failed.
        """
        return asyncio.run(self._script(lines))

    async def _script(self, lines: Iterable[str]) -> int:
        self._keyboard = False
        self._sigint = asyncio.Event()
        try:
            self._attach(learn=False)
            if self.link.lost:
                self._say(f"the connection to bus {self._name()} is lost", error=True)
                return ExitStatus.NO_BUS
            for line in lines:
                if line.strip():
                    self._say(f"{self._prompt()}{line.rstrip()}")
                try:
                    if not await self.handle(line):
                        break
                except ConnectionLost:
                    return ExitStatus.NO_BUS
            return ExitStatus.ERROR if self.failures else ExitStatus.OK
        finally:
            self._release_sigint()
            self.link.close()

    async def handle(self, line: str) -> bool:
        """Carry out one line; return ``False`` to leave the REPL."""
        self._catch_sigint()
        self._sigint.clear()  # one that came before this line is not for it
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if text.startswith("?"):
            await self._help(text[1:].strip())
            return True
        match = _WORD.match(text)
        word = match.group() if match else text
        rest = text[len(word) :].strip()
        verb = _ALIASES.get(word, word)
        if verb not in VERBS:
            await self._call(text)
            return True
        if verb == "exit":
            return False
        handler = getattr(self, "_verb_" + verb.replace("-", "_"))
        await handler(rest)
        return True

    # -- verbs --------------------------------------------------------------------

    async def _verb_help(self, rest: str) -> None:
        await self._help(rest)

    async def _verb_call(self, rest: str) -> None:
        await self._call(rest)

    async def _verb_emit(self, rest: str) -> None:
        if not rest:
            self._say("usage: emit NAME ARG... (or emit NAME(key=value))")
            return
        try:
            name, args, kwargs = parse_line(rest)
        except ArgumentError as exc:
            self._bad_arguments(exc)
            return
        params = {"name": name, "args": args, "kwargs": kwargs}
        reply = await self._request("fire", params, what=f"emit {name}")
        if isinstance(reply, dict):
            count = reply.get("listeners", 0)
            self.registry.saw_event(name)
            self._say(f"fired {name}: {count} listener{'' if count == 1 else 's'} matched")

    async def _verb_monitor(self, rest: str) -> None:
        try:
            patterns = [check_text(pattern) for pattern in split_line(rest)] or ["*"]
        except ArgumentError as exc:
            self._bad_arguments(exc)
            return
        await self._monitor(patterns)

    async def _verb_inspect(self, rest: str) -> None:
        snapshot = await self._inspect()
        if snapshot is not None:
            show_overview(self.console, snapshot, getattr(self.client, "info", {}) or {})

    async def _verb_services(self, rest: str) -> None:
        await self._view("services")

    async def _verb_commands(self, rest: str) -> None:
        await self._view("commands")

    async def _verb_listeners(self, rest: str) -> None:
        await self._view("listeners")

    async def _verb_who_handles(self, rest: str) -> None:
        if not rest:
            self._say("usage: who-handles NAME")
            return
        try:
            check_text(rest)
        except ArgumentError as exc:
            self._bad_arguments(exc)
            return
        routing = await self._request("who_handles", {"name": rest}, what="who-handles")
        if not isinstance(routing, dict):
            return
        if routing.get("command"):
            show_command_help(self.console, routing["command"], colour=self.colour)
        if routing.get("listeners"):
            show_event_help(self.console, rest, routing)
        if not routing.get("command") and not routing.get("listeners"):
            self._nothing_named(rest, routing)

    async def _verb_verbose(self, rest: str) -> None:
        if rest in {"on", "off"}:
            self.verbose = rest == "on"
        elif rest:
            self._say("usage: verbose [on|off]")
            return
        self._say(f"verbose is {'on' if self.verbose else 'off'}")

    async def _verb_traceback(self, rest: str) -> None:
        trace = (
            self.last_error.remote_traceback if isinstance(self.last_error, RemoteError) else None
        )
        self._say(trace.rstrip() if trace else "no remote traceback: the last error had none")

    async def _verb_reconnect(self, rest: str) -> None:
        self._reconnect()

    # -- calls, help, views -----------------------------------------------------------

    async def _call(self, text: str) -> None:
        try:
            name, args, kwargs = parse_line(text)
        except ArgumentError as exc:
            self._bad_arguments(exc)
            return
        params = {"name": name, "args": args, "kwargs": kwargs, "timeout": self.timeout}
        reply = await self._request("execute", params, what=name, hint=_option_hint(text))
        if isinstance(reply, dict):
            show_result(
                self.console,
                reply.get("value"),
                colour=self.colour,
                lossy=bool(reply.get("lossy")),
            )

    async def _help(self, name: str) -> None:
        if not name:
            show_verbs(self.console, VERBS)
            return
        try:
            check_text(name)
        except ArgumentError as exc:
            self._bad_arguments(exc)
            return
        snapshot = await self._inspect()
        if snapshot is None:
            return
        entry = self.registry.commands.get(name)
        if entry is not None:
            show_command_help(self.console, entry, colour=self.colour)
            return
        if _ALIASES.get(name, name) in VERBS:
            self._say(VERBS[_ALIASES.get(name, name)])
            return
        routing = await self._request("who_handles", {"name": name}, what="help")
        if isinstance(routing, dict) and routing.get("listeners"):
            show_event_help(self.console, name, routing)
        elif isinstance(routing, dict):
            self._nothing_named(name, routing)

    def _nothing_named(self, name: str, routing: dict[str, Any]) -> None:
        suggestions = routing.get("suggestions") or []
        hint = f"; did you mean {', '.join(map(str, suggestions[:5]))}?" if suggestions else ""
        self._say(f"no command named {name}, and no listener for an event of that name{hint}")

    async def _view(self, what: str) -> None:
        snapshot = await self._inspect()
        if snapshot is not None:
            show_table(self.console, what, snapshot, colour=self.colour)

    async def _inspect(self) -> dict[str, Any] | None:
        snapshot = await self._request("inspect", None, what="inspect")
        if isinstance(snapshot, dict):
            self.registry.update(snapshot)
            self.link.mark_fresh()
            return snapshot
        return None

    # -- waiting, cancellably ---------------------------------------------------------

    async def _request(
        self, method: str, params: dict[str, Any] | None, *, what: str, hint: str | None = None
    ) -> Any:
        """Send a request and wait for it; errors and Ctrl-C are reported, giving ``None``.

        ``hint`` is added to an error saying the arguments do not bind.

        Raises:
            ConnectionLost: the connection ended (the loop offers to reconnect).
        """
        try:
            future = self.client.request_async(method, params)
            return await self._wait(future)
        except _Interrupted:
            if method == "execute":
                self._say(
                    f"stopped waiting for {what}: it runs on in the bus; its result is dropped"
                )
            else:
                self._say(f"stopped waiting for {what}")
        except ConnectionLost as exc:
            self._report_lost(exc)
            raise
        except RemoteError as exc:
            self.last_error = exc
            self.failures += 1
            if exc.code == ErrorCode.NO_SUCH_COMMAND:
                self.link.mark_stale()  # a name is missing: refresh before the next prompt
            show_error(
                self.console,
                exc,
                verbose=self.verbose,
                colour=self.colour,
                hint=hint if exc.code == ErrorCode.BAD_ARGUMENTS else None,
            )
        return None

    async def _wait(self, future: Future[Any]) -> Any:
        """The future's result, unless Ctrl-C is pressed first (``_Interrupted``).

        Keys other than Ctrl-C typed meanwhile are kept for the next prompt.
        """
        waiting = asyncio.wrap_future(future)
        interrupted = await self._keys_until(waiting)
        if interrupted:
            waiting.cancel()  # the reply, when it comes, is dropped by the client
            raise _Interrupted
        return waiting.result()

    async def _keys_until(self, *waits: asyncio.Future[Any]) -> bool:
        """Wait for one of ``waits``; ``True`` if Ctrl-C (or SIGINT) came first."""
        sigint = asyncio.ensure_future(self._sigint.wait())
        try:
            if self._keyboard:
                outcome = await keys_until(self.session.input, *waits, sigint)
                if outcome == "interrupted" or sigint.done():
                    return True
                if outcome == "done":
                    return False
                self._keyboard = False  # the input ended: wait without keys from now on
            await asyncio.wait([*waits, sigint], return_when=asyncio.FIRST_COMPLETED)
            return sigint.done()
        finally:
            sigint.cancel()

    def _catch_sigint(self) -> None:
        """From now until the next prompt, SIGINT interrupts a wait, not the REPL.

        SIGINT comes from ``kill -INT``, or from Ctrl-C when the terminal is not
        in raw mode (a script on stdin). The prompt sets its own handler and
        removes it when it returns, so this is done again for each line. Only
        possible on the main thread; elsewhere SIGINT keeps its default.
        """
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._sigint.set)

    def _release_sigint(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    # -- monitor ------------------------------------------------------------------------

    async def _monitor(self, patterns: list[str]) -> None:
        feed = Feed(asyncio.get_running_loop(), _MONITOR_BACKLOG)
        try:
            subscription = self.client.subscribe("activity", feed.put, patterns=patterns)
        except RemoteError as exc:
            show_error(self.console, exc, verbose=self.verbose, colour=self.colour)
            return
        except ConnectionLost as exc:
            self._report_lost(exc)
            raise
        self._say(f"monitoring {' '.join(patterns)} on bus {self._name()}; Ctrl-C stops")
        shown = 0
        try:
            while True:
                ready = asyncio.ensure_future(feed.ready())
                try:
                    interrupted = await self._keys_until(ready)
                finally:
                    ready.cancel()
                shown += self._show_activity(feed)
                if interrupted:
                    break
                if self.client.closed:
                    raise ConnectionLost(f"connection to bus {self._name()} lost")
        except ConnectionLost as exc:
            self._report_lost(exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                subscription.close(timeout=2.0)
        self._say(f"monitor stopped ({shown} shown)")

    def _show_activity(self, feed: Feed) -> int:
        shown = 0
        lost = feed.lost
        for method, params in feed.drain():
            if method == "dropped":
                self._say(f"... the bus dropped {params.get('count')} records (we read too slowly)")
                continue
            activity = params.get("activity")
            if not isinstance(activity, dict):
                continue
            if activity.get("kind") == "event":
                self.registry.saw_event(str(activity.get("name")))
            view = activity_view(activity)
            line = activity_markup(view) if self.colour else activity_line(view)
            # One line per record: cut at the terminal's edge rather than wrapped.
            self.console.print(
                line, markup=self.colour, highlight=False, no_wrap=True, overflow="ellipsis"
            )
            shown += 1
        if feed.lost > lost:
            self._say(f"... {feed.lost - lost} records skipped (the terminal is too slow)")
        return shown

    # -- the connection --------------------------------------------------------------------

    def _attach(self, *, learn: bool = True) -> None:
        try:
            self.link.attach(asyncio.get_running_loop(), self._on_lost, learn=learn)
        except RemoteError as exc:
            show_error(self.console, exc, verbose=self.verbose, colour=self.colour)
        except ConnectionLost:
            self.link.lost = True  # the prompt loop offers to reconnect; a script ends

    def _on_lost(self) -> None:
        """The connection ended: leave the prompt, keeping what was typed."""
        if "session" not in self.__dict__:
            return  # a script: no prompt to interrupt
        app = self.session.app
        if app.is_running:
            self._pending_text = app.current_buffer.text
            app.exit(exception=_Lost())

    def _report_lost(self, exc: BaseException) -> None:
        self.link.lost = True
        self._say(f"{exc}", error=True)

    async def _offer_reconnect(self) -> bool:
        reason = getattr(self.client, "error", None)
        self._say(
            f"the connection to bus {self._name()} is lost"
            + (f" ({reason})" if reason else "")
            + "; the REPL cannot reach it until it reconnects",
            error=True,
        )
        # A session of its own: arguments given to prompt_async would stick to ours.
        question: PromptSession[str] = PromptSession(
            input=self.session.input, output=self.session.output
        )
        while True:
            try:
                answer = await question.prompt_async("reconnect? [Y/n] ")
            except (EOFError, KeyboardInterrupt):
                answer = "n"
            if answer.strip().lower() in {"n", "no", "q", "exit", "quit"}:
                self._say("leaving: the bus is gone")
                return False
            if self._reconnect():
                return True

    def _reconnect(self) -> bool:
        try:
            client = self.link.reconnect()
        except RemoteError as exc:
            show_error(self.console, exc, verbose=self.verbose, colour=self.colour)
            return True
        except Exception as exc:
            self.link.lost = True
            self._say(f"cannot reconnect: {exc}", error=True)
            return False
        self._say(f"reconnected to bus {self._name()} at {client.address}")
        return True

    # -- small things ------------------------------------------------------------------

    def _banner(self) -> None:
        info = getattr(self.client, "info", {}) or {}
        self._say(
            banner(self._name(), self.registry.snapshot, info, self.client.address, self.embedded)
        )

    def _prompt(self) -> str:
        return f"{self._name()}> "

    def _name(self) -> str:
        return self.link.name

    def _toolbar(self) -> str:
        return toolbar(self.session.default_buffer.text, self.registry, self._name())

    def _bad_arguments(self, exc: ArgumentError) -> None:
        self.last_error = exc
        self.failures += 1
        self._say(f"bad argument: {exc}", error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        # Messages carry names, errors and tracebacks from the bus: shown, not obeyed.
        text = visible(text, multiline=not error)
        if error and self.colour:
            self.console.print(f"[bold red]error:[/] {_escape(text)}", highlight=False)
        elif error:
            self.console.print(f"error: {text}", markup=False, highlight=False)
        else:
            self.console.print(text, markup=False, highlight=False)


def _option_hint(line: str) -> str | None:
    """``option_hint`` for the arguments of a ``NAME ARG...`` line (none for ``NAME(...)``)."""
    try:
        tokens = split_line(line)
    except ArgumentError:
        return None
    return option_hint(tokens[1:])


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
