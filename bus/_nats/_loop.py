"""The NATS connection and the one asyncio loop thread it lives on.

The rest of the bus never touches the loop: threads hand it work with
``call_soon`` (a callable) or ``publish`` (a message), both non-blocking,
and wait for a result with ``run`` when they must (connecting, closing).
Messages to publish go through one queue that a single task drains, so a
burst of sends from many threads costs one wake-up of the loop, not one
each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.errors import SlowConsumerError

from .._core._errors import TransportError
from .._core._ratelog import RateLimitedLog
from .._core._threads import start_thread

__all__ = ["Loop", "Outgoing"]

log = logging.getLogger("bus.nats")

T = TypeVar("T")

#: Seconds one attempt to reach the server may take.
CONNECT_TIMEOUT = 2.0
#: Seconds between attempts to reach a server that went away.
RECONNECT_WAIT = 0.25

#: One message to publish: subject, payload, reply subject, headers, and what
#: to call (on the loop) if it could not be handed to the connection.
Outgoing = tuple[str, bytes, str, dict[str, str] | None, Callable[[BaseException], None] | None]


class Loop:
    """One process's connection to NATS, on its own loop thread.

    Args:
        thread_name: the loop thread's name (``bus:NAME/nats``).
        on_state: called on the loop with ``"disconnected"`` or
            ``"reconnected"`` as the connection changes.
        on_slow: called on the loop with the subscription that dropped a
            message because this process did not keep up.
    """

    def __init__(
        self,
        thread_name: str,
        on_state: Callable[[str], None],
        on_slow: Callable[[Any], None],
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.nc: Client = Client()
        self.url = ""
        self.server_address = ""
        self.server_port = 0
        self.connected = False
        self.disconnects = 0
        self.reconnects = 0
        self.send_failures = 0
        self._on_state = on_state
        self._on_slow = on_slow
        self._queue: deque[Outgoing] = deque()
        self._scheduled = False
        self._wake: asyncio.Event | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._closing = False
        self._error_log = RateLimitedLog(log)
        self._ready = threading.Event()
        self.thread = start_thread(thread_name, self._run)
        self._ready.wait()

    # -- the loop thread --------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self._finish_tasks()
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def _finish_tasks(self, timeout: float = 1.0) -> None:
        """Cancel the tasks left on the stopped loop and let them end, as
        ``asyncio.run`` does. nats-py cancels its subscriptions' tasks when it
        closes without running them to their end (always so after the server
        went away), and a loop closed under them prints "Task was destroyed"
        and a traceback per subscription."""
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))

    # -- any thread -------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result (not from the loop).

        Raises:
            TimeoutError: it did not finish in time (it is cancelled).
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the loop, soon; never blocks. Ignored once closed."""
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(fn, *args)

    def publish(
        self,
        subject: str,
        payload: bytes,
        reply: str = "",
        headers: dict[str, str] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue a message; never blocks. ``failed(error)`` runs on the loop if it is lost."""
        self._queue.append((subject, payload, reply, headers, failed))
        # Appended before the flag is read, and the drainer clears the flag
        # before it drains: a message is either seen by a drain under way
        # or wakes the next one.
        if not self._scheduled:
            self._scheduled = True
            self.call_soon(self._wake_drainer)

    # -- connecting and closing ----------------------------------------------------------

    def connect(self, url: str, name: str) -> None:
        """Join the server at ``url`` (blocks a few seconds at most).

        Raises:
            TransportError: the server is not there or refused us (one line).
        """
        self.url = url
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        self.server_address = parts.hostname or ""
        try:
            self.server_port = parts.port or 4222
        except ValueError as exc:
            self.stop()
            raise TransportError(f"cannot join NATS at {url!r}: {exc}") from None
        try:
            self.run(self._connect(url, name), CONNECT_TIMEOUT * 3 + 2)
        except BaseException as exc:
            self.stop()
            if isinstance(exc, TransportError):
                raise
            why = str(exc) or type(exc).__name__
            if isinstance(exc, nats.errors.NoServersError | TimeoutError | OSError):
                why = "no server answered"
            raise TransportError(f"cannot join NATS at {url}: {why}") from None

    async def _connect(self, url: str, name: str) -> None:
        self._wake = asyncio.Event()
        await self.nc.connect(
            url,
            name=name,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            connect_timeout=CONNECT_TIMEOUT,  # type: ignore[arg-type]
            reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]
            # One retry at start, so that a missing server is reported in
            # well under a second instead of after minutes of attempts...
            max_reconnect_attempts=1,
            # ...and this process never hears its own messages: what it
            # sends to itself is delivered without the network.
            no_echo=True,
            skip_subject_validation=True,
        )
        # ...then reconnect for as long as the bus runs.
        self.nc.options["max_reconnect_attempts"] = -1
        self.connected = True
        self._drainer = self.loop.create_task(self._drain())

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection, stop the loop and join its thread. Idempotent."""
        if self._closed:
            return
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            with contextlib.suppress(Exception):
                self.run(self._close(), timeout)
        self._closed = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    async def _close(self) -> None:
        self._closing = True  # what follows is no loss of the server
        # What is queued still goes: replies and goodbyes sent while closing.
        await self._send_queued()
        if self._drainer is not None:
            self._drainer.cancel()
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=1)
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.connected = False

    # -- on the loop -----------------------------------------------------------------

    def _wake_drainer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _drain(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            self._scheduled = False
            await self._send_queued()

    async def _send_queued(self) -> None:
        queue = self._queue
        publish = self.nc.publish
        while queue:
            subject, payload, reply, headers, failed = queue.popleft()
            try:
                await publish(subject, payload, reply=reply, headers=headers)
            except Exception as exc:
                self.send_failures += 1
                if failed is not None:
                    failed(exc)

    async def subscribe(
        self,
        subject: str,
        cb: Callable[[Any], Awaitable[None]],
        queue: str = "",
        pending: int = 65536,
    ) -> Any:
        """Subscribe on the loop; returns the subscription."""
        return await self.nc.subscribe(subject, queue=queue, cb=cb, pending_msgs_limit=pending)

    async def _error(self, error: Exception) -> None:
        # nats-py's default prints a traceback for every failed attempt and
        # every message a slow consumer dropped; the bus counts instead.
        if isinstance(error, SlowConsumerError):
            self._on_slow(error.sub)
            return
        if self._closing or self._closed or self._drainer is None:
            # Closing, or still joining: a server not there at start is the
            # one line of connect()'s TransportError, not a warning per attempt.
            return
        self._error_log.warning("NATS %s: %s", self.url, error or type(error).__name__)

    async def _disconnected(self) -> None:
        if self._closing or self._closed:
            self.connected = False
            return
        if self.connected:
            self.connected = False
            self.disconnects += 1
            log.warning("lost the NATS server at %s; reconnecting", self.url)
            self._on_state("disconnected")

    async def _reconnected(self) -> None:
        self.connected = True
        self.reconnects += 1
        log.info("reconnected to the NATS server at %s", self.url)
        self._on_state("reconnected")
