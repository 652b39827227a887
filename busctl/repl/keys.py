"""Waiting in the REPL: Ctrl-C read as a key, and activity handed over from the reader thread.

    outcome = await keys_until(session.input, asyncio.wrap_future(future))
    if outcome == "interrupted":
        ...  # Ctrl-C: stop waiting, leave the call running

While the REPL waits, the terminal is in raw mode and the keyboard is read
here, so Ctrl-C arrives as a key rather than as SIGINT: the same on a
terminal and through a test's pipe, and never a ``KeyboardInterrupt`` in the
middle of the event loop. Other keys are kept for the next prompt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Awaitable
from typing import Any, Literal

from prompt_toolkit.input import Input
from prompt_toolkit.input.typeahead import store_typeahead
from prompt_toolkit.key_binding import KeyPress
from prompt_toolkit.keys import Keys

__all__ = ["Feed", "Outcome", "keys_until"]

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
