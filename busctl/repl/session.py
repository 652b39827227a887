"""The REPL's loop: prompt, read a line, hand it to its verb, until Ctrl-D; free of any terminal.

    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keys:
        keys.send_text("say_hello Alice\\r")
        keys.close()
        out = io.StringIO()
        Repl(client, input=keys, output=DummyOutput(), stdout=out).run()

Input is never evaluated: a line is a verb of the REPL (``help``, ``emit``,
``monitor``...: ``busctl.repl.verbs``) or a call, parsed by ``busctl._args``
(JSON or Python literals). Waiting for a reply or watching activity reads
the keyboard itself in raw mode (``busctl.repl.waiting``), so Ctrl-C arrives
as a key, not as a signal, the same way on a terminal and through a pipe in
tests: it stops the wait, never the REPL, and never the command, which runs
on in the bus.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output

from .._client import Client
from .._exit import ExitStatus
from .._remote import ConnectionLost, RemoteError
from .complete import Registry, ReplCompleter
from .link import Link
from .printer import Printer
from .verbs import ALIASES, VERBS, Verbs
from .views import banner, toolbar
from .waiting import Waiter

__all__ = ["Repl", "default_history_path"]

_WORD = re.compile(r"[^\s(]+")


class _Lost(Exception):
    """Raised into the prompt when the connection to the bus ends."""


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
        safe: ask before running a command not declared read-only (a script,
            which cannot be asked, does not run it).

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
        safe: bool = False,
    ) -> None:
        self.embedded = embedded
        self.registry = Registry()
        self.printer = Printer(stdout or sys.stdout, colour=colour, verbose=verbose)
        self.link = Link(client, self.registry, connect=connect, learn_events=learn_events)
        self.waiter = Waiter(self.link, self.printer, keys=lambda: self.session.input)
        self.scripted = False
        self.verbs = Verbs(
            self.link,
            self.printer,
            self.waiter,
            timeout=timeout,
            confirm=self._confirm if safe else None,
        )
        self.completer = ReplCompleter(self.registry, {**VERBS, "quit": "leave the REPL"})
        self._pending_text = ""  # what was typed when the connection was lost
        self._terminal = (input, output, history)
        self._session: PromptSession[str] | None = None
        self._session_lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The connection in use (a new one after ``reconnect``)."""
        return self.link.client

    @property
    def failures(self) -> int:
        """How many lines failed (errors shown), for ``run_script``'s status."""
        return self.printer.failures

    @property
    def session(self) -> PromptSession[str]:
        """The prompt, made on first use: a script on stdin never opens the terminal.

        Any thread may ask for it; all get the one the REPL reads keys with.
        """
        # Locked by hand: functools.cached_property stopped locking in Python
        # 3.12, and a thread asking while the REPL's thread made the prompt got
        # a second prompt, which no key ever reached.
        with self._session_lock:
            if self._session is None:
                input, output, history = self._terminal
                self._session = PromptSession(
                    input=input,
                    output=output,
                    history=history or InMemoryHistory(),
                    completer=self.completer,
                    complete_while_typing=True,
                    auto_suggest=AutoSuggestFromHistory(),
                    bottom_toolbar=self._toolbar,
                )
            return self._session

    # -- the loop ---------------------------------------------------------------

    def run(self) -> int:
        """Prompt until ``exit`` or Ctrl-D; return the exit status."""
        return asyncio.run(self.run_async())

    async def run_async(self) -> int:
        """``run()`` on the running event loop."""
        self.waiter.start(keyboard=True)
        try:
            self._attach()
            self.printer.say(self._banner())
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
            self.waiter.stop()
            self.link.close()

    def run_script(self, lines: Iterable[str]) -> int:
        """Carry out ``lines`` without prompting (stdin is not a terminal).

        Each line is echoed after the prompt, so the output reads like a
        session. Returns ``ExitStatus.ERROR`` if any line failed.
        """
        return asyncio.run(self._script(lines))

    async def _script(self, lines: Iterable[str]) -> int:
        self.scripted = True
        self.waiter.start(keyboard=False)
        try:
            self._attach(learn=False)
            if self.link.lost:
                self.printer.say(f"the connection to bus {self.link.name} is lost", error=True)
                return ExitStatus.NO_BUS
            for line in lines:
                if line.strip():
                    self.printer.say(f"{self._prompt()}{line.rstrip()}")
                try:
                    if not await self.handle(line):
                        break
                except ConnectionLost:
                    return ExitStatus.NO_BUS
            return ExitStatus.ERROR if self.failures else ExitStatus.OK
        finally:
            self.waiter.stop()
            self.link.close()

    async def handle(self, line: str) -> bool:
        """Carry out one line; return ``False`` to leave the REPL."""
        self.waiter.line_begins()
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if text.startswith("?"):
            await self.verbs.help(text[1:].strip())
            return True
        match = _WORD.match(text)
        word = match.group() if match else text
        verb = ALIASES.get(word, word)
        if verb not in VERBS:
            await self.verbs.call(text)
            return True
        if verb == "exit":
            return False
        await self.verbs.run(verb, text[len(word) :].strip())
        return True

    # -- the connection ---------------------------------------------------------------

    def _attach(self, *, learn: bool = True) -> None:
        try:
            self.link.attach(asyncio.get_running_loop(), self._on_lost, learn=learn)
        except RemoteError as exc:
            self.printer.failed(exc, counted=False)
        except ConnectionLost:
            self.link.lost = True  # the prompt loop offers to reconnect; a script ends

    def _on_lost(self) -> None:
        """The connection ended: leave the prompt, keeping what was typed."""
        if self._session is None:
            return  # a script: no prompt to interrupt
        app = self._session.app
        if app.is_running:
            self._pending_text = app.current_buffer.text
            app.exit(exception=_Lost())

    async def _confirm(self, question: str) -> bool:
        """``--safe``: ask ``question``; yes only for y or yes. A script is never asked."""
        if self.scripted:
            self.printer.say("--safe: a script cannot be asked, so the command is not run")
            return False
        # A session of its own: arguments given to prompt_async would stick to ours.
        asking: PromptSession[str] = PromptSession(
            input=self.session.input, output=self.session.output
        )
        try:
            answer = await asking.prompt_async(question)
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in {"y", "yes"}

    async def _offer_reconnect(self) -> bool:
        reason = getattr(self.client, "error", None)
        self.printer.say(
            f"the connection to bus {self.link.name} is lost"
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
                self.printer.say("leaving: the bus is gone")
                return False
            if self.verbs.attach_again():
                return True

    # -- what the prompt shows ----------------------------------------------------------

    def _banner(self) -> str:
        info = getattr(self.client, "info", {}) or {}
        return banner(
            self.link.name, self.registry.snapshot, info, self.client.address, self.embedded
        )

    def _prompt(self) -> str:
        return f"{self.link.name}> "

    def _toolbar(self) -> str:
        return toolbar(self.session.default_buffer.text, self.registry, self.link.name)
