"""A nats-py connection on an asyncio loop of its own thread, for the console.

    connection = NatsConnection("nats://127.0.0.1:4222", "busctl home")
    connection.run(connection.nc.flush(), timeout=2)      # from any other thread
    connection.close(); connection.join(5)

A server that is not there is one line (``bus.TransportError``) in well
under a second; one that goes away is waited for ``RECONNECT_FOR`` seconds,
then whoever listens on ``lost`` is told. ``busctl._nats`` builds the control
client's transport on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bus import TransportError

__all__ = ["CONNECT_TIMEOUT", "NatsConnection"]

T = TypeVar("T")

#: Seconds one attempt to reach the server may take (as the library's).
CONNECT_TIMEOUT = 2.0
#: Seconds of attempts to reach a server that went away before giving up on it.
RECONNECT_FOR = 5.0
_RECONNECT_WAIT = 0.5


def _server_url(url: str) -> str:
    return url if "://" in url else f"nats://{url}"


class NatsConnection:
    """A nats-py connection on an asyncio loop of its own thread.

    Args:
        url: the server.
        name: how the connection is named to the server (``busctl NAME``).
        timeout: seconds connecting may take at most.

    Raises:
        bus.TransportError: no server answers there, or nats-py is missing (one line).
    """

    def __init__(self, url: str, name: str, timeout: float = 5.0) -> None:
        try:
            import nats  # noqa: F401  (the console's --nats needs it; the socket does not)
        except ImportError:
            raise TransportError(
                "--nats needs nats-py, which is not installed: pip install 'bus[nats]'"
            ) from None
        from nats.aio.client import Client as Nats

        self.url = _server_url(url)
        self.loop = asyncio.new_event_loop()
        self.nc = Nats()
        self.lost: list[
            Callable[[], None]
        ] = []  # called on the loop when the server is gone for good
        self._closing = False
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="busctl-nats", daemon=True
        )
        self.thread.start()
        ready.wait()
        try:
            self.run(self._connect(name), max(timeout, CONNECT_TIMEOUT * 2 + 1))
        except BaseException as exc:
            self.close()
            self.join(5.0)
            why = str(exc) or type(exc).__name__
            if isinstance(exc, OSError | TimeoutError) or type(exc).__name__ == "NoServersError":
                why = "no server answered"
            raise TransportError(f"cannot join NATS at {self.url}: {why}") from None

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _connect(self, name: str) -> None:
        await self.nc.connect(
            self.url,
            name=name,
            error_cb=self._error,
            closed_cb=self._closed,
            connect_timeout=CONNECT_TIMEOUT,  # type: ignore[arg-type]
            reconnect_time_wait=_RECONNECT_WAIT,  # type: ignore[arg-type]
            # One retry at start, so that a missing server is one line in
            # well under a second, not minutes of attempts with a traceback each...
            max_reconnect_attempts=1,
            skip_subject_validation=True,
        )
        # ...then ride out a server restart for a while.
        self.nc.options["max_reconnect_attempts"] = int(RECONNECT_FOR / _RECONNECT_WAIT)

    async def _error(self, error: Exception) -> None:
        # nats-py's default prints a traceback per failed attempt; a console
        # says once, when it gives up (``_closed``), what became of the server.
        return

    async def _closed(self) -> None:
        if self._closing:
            return
        for callback in list(self.lost):
            callback()

    @property
    def on_loop(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return threading.current_thread() is self.thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result (never from the loop)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def soon(self, fn: Any, *args: Any) -> None:
        """Call ``fn(*args)`` on the loop, soon; never blocks. Ignored once closed."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to do
            self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        """Close the connection and stop the loop; never blocks. Idempotent."""
        if self._closing:
            return
        self._closing = True

        async def shut() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 2.0)
            self.loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shut(), self.loop)

    def join(self, timeout: float) -> None:
        """Wait for the loop's thread to end (not from it)."""
        if not self.on_loop:
            self.thread.join(timeout)
