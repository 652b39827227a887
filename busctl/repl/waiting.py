"""Waiting in the REPL: Ctrl-C read as a key, and activity handed over from the reader thread.

    waiter = Waiter(link, printer, keys=lambda: session.input)
    reply = await waiter.request("execute", params, what="say_hello")   # None: reported

    outcome = await keys_until(session.input, asyncio.wrap_future(future))
    if outcome == "interrupted":
        ...  # Ctrl-C: stop waiting, leave the call running

Ctrl-C while a command runs asks whether to cancel it: ``y`` cancels it
(the bus's ``cancel``: an async handler is interrupted, a sync one cannot
be, and the REPL says so), ``n`` keeps waiting, a second Ctrl-C stops
waiting and leaves it running. A script on stdin has nobody to ask: there
Ctrl-C (SIGINT) stops waiting.

While the REPL waits, the terminal is in raw mode and the keyboard is read
here, so Ctrl-C arrives as a key rather than as SIGINT: the same on a
terminal and through a test's pipe, and never a ``KeyboardInterrupt`` in the
middle of the event loop. Other keys are kept for the next prompt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, Literal

from prompt_toolkit.input import Input
from prompt_toolkit.input.typeahead import store_typeahead
from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

from bus.control.protocol import ErrorCode

from .._cancel import Running, can_cancel, cancel_execute, describe
from .._remote import ConnectionLost, RemoteError
from .link import Link
from .printer import Printer

__all__ = ["Feed", "Interrupted", "Outcome", "Waiter", "ask_key", "keys_until"]

Outcome = Literal["done", "interrupted", "ended"]


async def keys_until(keys: Input, *waits: Awaitable[Any]) -> Outcome:
    """Read keys until one of ``waits`` is done or Ctrl-C is pressed.

    Returns:
        ``"done"`` when a wait finished, ``"interrupted"`` on Ctrl-C, and
        ``"ended"`` when the input ended (a closed pipe) first: then nobody
        is left to press Ctrl-C and the caller should wait without keys.
    """
    loop = asyncio.get_running_loop()
    interrupted: asyncio.Future[None] = loop.create_future()
    ended: asyncio.Future[None] = loop.create_future()
    typeahead: list[KeyPress] = []

    def on_keys() -> None:
        for key in keys.read_keys():
            if key.key == Keys.ControlC:
                if not interrupted.done():
                    interrupted.set_result(None)
            else:
                typeahead.append(key)
        if keys.closed and not ended.done():
            ended.set_result(None)

    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        with keys.raw_mode(), keys.attach(on_keys):
            await asyncio.wait([interrupted, ended, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if typeahead:
            store_typeahead(keys, typeahead)
    if interrupted.done():
        return "interrupted"
    interrupted.cancel()
    ended_first = ended.done() and not any(task.done() for task in tasks)
    ended.cancel()
    return "ended" if ended_first else "done"


async def ask_key(keys: Input, answers: str, *waits: Awaitable[Any]) -> str:
    """Read keys until one of ``answers`` (case-insensitive) or Ctrl-C, or a wait is done.

    Returns:
        The answer (lower case), ``"ctrl-c"``, ``"done"`` when a wait finished
        first, or ``"ended"`` when the input ended. Other keys are dropped.
    """
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[str] = loop.create_future()

    def on_keys() -> None:
        for key in keys.read_keys():
            if answered.done():
                break
            if key.key == Keys.ControlC:
                answered.set_result("ctrl-c")
            elif key.data.lower() in answers.lower() and len(key.data) == 1:
                answered.set_result(key.data.lower())
        if keys.closed and not answered.done():
            answered.set_result("ended")

    tasks = [asyncio.ensure_future(wait) for wait in waits]
    with keys.raw_mode(), keys.attach(on_keys):
        await asyncio.wait([answered, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if answered.done():
        return answered.result()
    answered.cancel()
    return "done"


class Feed:
    """Notifications of a subscription, handed from the client's thread to the loop.

    ``put`` runs on the client's reader thread and returns at once; the loop
    awaits ``ready()`` and then ``drain()``s. At most ``limit`` items are held:
    beyond that the oldest go and are counted in ``lost``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.lost = 0
        self._loop = loop
        self._items: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._limit = limit
        self._lock = threading.Lock()
        self._wake = asyncio.Event()

    def put(self, method: str, params: dict[str, Any]) -> None:
        """Hold one notification (any thread)."""
        with self._lock:
            if len(self._items) >= self._limit:
                self._items.popleft()
                self.lost += 1
            self._items.append((method, params))
        with contextlib.suppress(RuntimeError):  # the loop is gone: the REPL ended
            self._loop.call_soon_threadsafe(self._wake.set)

    async def ready(self) -> None:
        """Wait until something is held."""
        await self._wake.wait()

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything held, oldest first (on the loop)."""
        self._wake.clear()
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items


class Interrupted(Exception):
    """Ctrl-C (or SIGINT) while waiting."""


class Waiter:
    """Requests to the bus that Ctrl-C can stop waiting for, and what it says when they fail.

    Args:
        link: the REPL's hold on the bus (its client, and whether it is lost).
        printer: where failures and interruptions are reported.
        keys: the prompt's input, read for Ctrl-C while waiting (asked for
            only when a key may be read: a script never opens the terminal).

    Attributes:
        keyboard: whether Ctrl-C can be read as a key during waits (off for a
            script on stdin, or once the input has ended).

    Everything runs on the REPL's event loop; ``start()`` on each run's loop.
    """

    def __init__(self, link: Link, printer: Printer, keys: Callable[[], Input]) -> None:
        self.link = link
        self.printer = printer
        self.keyboard = True
        self._keys = keys
        self._sigint = asyncio.Event()

    def start(self, *, keyboard: bool) -> None:
        """Begin a run on the running loop."""
        self.keyboard = keyboard
        self._sigint = asyncio.Event()

    def line_begins(self) -> None:
        """From now until the next prompt, SIGINT interrupts a wait, not the REPL.

        SIGINT comes from ``kill -INT``, or from Ctrl-C when the terminal is not
        in raw mode (a script on stdin). The prompt sets its own handler and
        removes it when it returns, so this is done again for each line. Only
        possible on the main thread; elsewhere SIGINT keeps its default. One
        that came before this line is not for it.
        """
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._sigint.set)
        self._sigint.clear()

    def stop(self) -> None:
        """The run ends: SIGINT is the REPL's no more."""
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    async def request(
        self, method: str, params: dict[str, Any] | None, *, what: str, hint: str | None = None
    ) -> Any:
        """Send a request and wait for it; errors and Ctrl-C are reported, giving ``None``.

        ``hint`` is added to an error saying the arguments do not bind.

        Raises:
            ConnectionLost: the connection ended (the loop offers to reconnect).
        """
        try:
            client = self.link.client
            if method == "execute" and hasattr(client, "request_with_id") and can_cancel(client):
                request_id, future = client.request_with_id(method, params)
                return await self.wait_execute(Running(request_id, future), what)
            future = client.request_async(method, params)
            return await self.wait(future)
        except Interrupted:
            if method == "execute":
                self.printer.say(
                    f"stopped waiting for {what}: it runs on in the bus; its result is dropped"
                )
            else:
                self.printer.say(f"stopped waiting for {what}")
        except ConnectionLost as exc:
            self.lost(exc)
            raise
        except RemoteError as exc:
            if exc.code == ErrorCode.NO_SUCH_COMMAND:
                self.link.mark_stale()  # a name is missing: refresh before the next prompt
            self.printer.failed(exc, hint=hint if exc.code == ErrorCode.BAD_ARGUMENTS else None)
        return None

    async def wait(self, future: Future[Any]) -> Any:
        """The future's result, unless Ctrl-C is pressed first (``Interrupted``).

        Keys other than Ctrl-C typed meanwhile are kept for the next prompt.
        """
        waiting = asyncio.wrap_future(future)
        if await self.keys_until(waiting):
            waiting.cancel()  # the reply, when it comes, is dropped by the client
            raise Interrupted
        return waiting.result()

    async def wait_execute(self, running: Running, what: str) -> Any:
        """The reply of a command, unless Ctrl-C stops the wait; offers to cancel it.

        Returns:
            The reply, or ``None`` when the user cancelled the command (said).

        Raises:
            Interrupted: the wait was stopped, the command left running.
            ConnectionLost: the connection ended.
        """
        waiting = asyncio.wrap_future(running.future)
        may_ask = True  # until a cancel was tried: then Ctrl-C just stops waiting
        while True:
            if not await self.keys_until(waiting):
                return waiting.result()
            if not (self.keyboard and may_ask):
                waiting.cancel()  # the reply, when it comes, is dropped by the client
                raise Interrupted
            self.printer.say(
                f"cancel {what}? y cancels it, n keeps waiting, "
                "Ctrl-C again stops waiting and leaves it running"
            )
            answer = await ask_key(self._keys(), "yn", waiting)
            if answer == "done":
                continue  # it ended while we asked: its reply is shown
            if answer == "n":
                self.printer.say(f"waiting for {what} again")
                continue
            if answer != "y":  # Ctrl-C, or the input ended
                waiting.cancel()
                raise Interrupted
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    None, cancel_execute, self.link.client, running
                )
            except ConnectionLost:
                raise
            except Exception as exc:  # no answer, or a refusal: say it, keep waiting
                self.printer.say(f"could not cancel {what}: {exc}", error=True)
                may_ask = False
                continue
            if outcome == "cancelled":
                waiting.cancel()  # its reply says it was cancelled: nothing more to show
                self.printer.say(describe(outcome, what))
                return None
            # Finished (its reply is shown next), or nothing can cancel it: keep waiting.
            said = describe(outcome, what, still_waiting=True)
            self.printer.say(said if outcome == "finished" else said + " (Ctrl-C stops waiting)")
            may_ask = False

    async def keys_until(self, *waits: asyncio.Future[Any]) -> bool:
        """Wait for one of ``waits``; ``True`` if Ctrl-C (or SIGINT) came first."""
        sigint = asyncio.ensure_future(self._sigint.wait())
        try:
            if self.keyboard:
                outcome = await keys_until(self._keys(), *waits, sigint)
                if outcome == "interrupted" or sigint.done():
                    return True
                if outcome == "done":
                    return False
                self.keyboard = False  # the input ended: wait without keys from now on
            await asyncio.wait([*waits, sigint], return_when=asyncio.FIRST_COMPLETED)
            return sigint.done()
        finally:
            sigint.cancel()

    def lost(self, exc: BaseException) -> None:
        """The connection ended under a request: say so; the loop offers to reconnect."""
        self.link.lost = True
        self.printer.say(f"{exc}", error=True)
