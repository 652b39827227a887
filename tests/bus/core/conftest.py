"""Fixtures for the core's tests: a gate that async handlers await."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest


class Gate:
    """Opened once from any thread; awaited by coroutines on any loop.

    A ``threading.Event`` cannot be awaited without blocking the handler's
    loop, and an ``asyncio.Event`` cannot be set from the test's thread: a
    gate is both sides, ``open()`` from anywhere, ``await gate.wait()`` in a
    handler.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def open(self) -> None:
        """Let every waiter through, now and later."""
        with self._lock:
            self._opened = True
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        """Return once ``open()`` has been called; never blocks the loop."""
        event = asyncio.Event()
        with self._lock:
            if self._opened:
                return
            self._waiters.append((asyncio.get_running_loop(), event))
        await event.wait()


@pytest.fixture
def gate() -> Iterator[Callable[[], Gate]]:
    """``gate()``: a new ``Gate``, opened at the end of the test so nothing waits on."""
    made: list[Gate] = []

    def make() -> Gate:
        made.append(Gate())
        return made[-1]

    yield make
    for g in made:
        g.open()
