"""The REPL's hold on a bus: the client, a registry kept fresh, word of a lost connection.

    link = Link(client, Registry())
    link.attach(loop, on_lost=lambda: print("lost"))   # fills the registry
    link.refresh_soon()                                 # before each prompt
    link.reconnect()                                    # after a loss

Everything runs on the REPL's event loop except the client's callbacks,
which only hand over to the loop (``call_soon_threadsafe``) and return.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._client import Client, ConnectionLost, RemoteError, Subscription
from .complete import Registry

__all__ = ["Link"]

_REFRESH_EVERY = 1.0  # seconds: at most one background inspect() per this
_LEARN_BUFFER = 1000  # the bus's buffer for the subscription that learns event names


class Link:
    """One bus as the REPL sees it.

    Args:
        client: the connection; ``reconnect`` replaces it (the old one is closed).
        registry: filled by ``attach`` and kept fresh by ``refresh_soon``.
        connect: makes a new client for ``reconnect`` (default: the same address).
        learn_events: subscribe to the activity to learn event names for completion.

    Attributes:
        lost: the connection ended and has not been replaced yet.
    """

    def __init__(
        self,
        client: Client,
        registry: Registry,
        *,
        connect: Callable[[], Client] | None = None,
        learn_events: bool = True,
    ) -> None:
        self.client = client
        self.registry = registry
        self.lost = False
        self._connect = connect or (lambda: self.client.connect_again())
        self._learn_events = learn_events
        self._learner: Subscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_lost: Callable[[], None] = lambda: None
        self._closing = False
        self._refreshing = False
        self._schema_asked = False
        self._refreshed_at = float("-inf")

    @property
    def name(self) -> str:
        """The bus's name, as the client was told."""
        return str(getattr(self.client, "name", None) or "bus")

    def attach(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None], *, learn: bool = True
    ) -> None:
        """Watch for the end of the connection, fill the registry, learn event names.

        ``on_lost()`` is called on ``loop`` once when the connection ends.

        Raises:
            RemoteError: ``inspect`` failed (the link is attached all the same).
            ConnectionLost: the connection is already gone.
        """
        self._loop, self._on_lost = loop, on_lost
        client = self.client

        def gone() -> None:  # on the client's reader thread
            if self._closing or client is not self.client:
                return
            with contextlib.suppress(RuntimeError):  # the loop is closed: the REPL ended
                loop.call_soon_threadsafe(self._gone)

        client.on_disconnect(gone)
        self._refreshed_at = loop.time()
        self.registry.update(client.inspect())
        try:
            schema = client.request_async("schema").result(timeout=30.0)
        except RemoteError:  # a bus older than the typed contract: no choices to offer
            schema = None
        self.registry.update_schema(_schema(schema))
        if learn and self._learn_events:
            self._learner = client.subscribe(
                "activity", self._learn, patterns=("*",), buffer=_LEARN_BUFFER
            )

    def _learn(self, method: str, params: dict[str, Any]) -> None:
        activity = params.get("activity")
        if isinstance(activity, dict) and activity.get("kind") == "event":
            self.registry.saw_event(str(activity.get("name")))

    def _gone(self) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost()

    def reconnect(self) -> Client:
        """Replace the client with a new connection; return it.

        Raises:
            Exception: whatever ``connect`` raises (``NoBusError``, ``ConnectionLost``...).
        """
        if self._loop is None:
            raise RuntimeError("attach() first")
        client = self._connect()
        old, self.client = self.client, client
        self.lost = False
        self._learner = None
        with contextlib.suppress(Exception):
            old.close()
        self.attach(self._loop, self._on_lost)
        return client

    def mark_stale(self) -> None:
        """The registry may be out of date (a name was not found): refresh at the next prompt."""
        self._refreshed_at = float("-inf")

    def mark_fresh(self) -> None:
        """The registry was just updated from an ``inspect`` reply."""
        if self._loop is not None:
            self._refreshed_at = self._loop.time()

    def refresh_soon(self) -> None:
        """Ask for a fresh ``inspect()`` without waiting, at most once a second.

        The schema too, when the last snapshot changed a name or a signature.
        """
        loop = self._loop
        if loop is None or self._refreshing or self.lost:
            return
        if self.registry.schema_stale:
            self._refresh_schema()
        if loop.time() - self._refreshed_at < _REFRESH_EVERY:
            return
        try:
            future = self.client.request_async("inspect")
        except ConnectionLost:
            return
        self._refreshing = True

        def done(result: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._refreshed, result)

        future.add_done_callback(done)

    def _refreshed(self, future: Future[Any]) -> None:
        self._refreshing = False
        self.mark_fresh()
        if not future.cancelled() and future.exception() is None:
            snapshot = future.result()
            if isinstance(snapshot, dict):
                self.registry.update(snapshot)
        if self.registry.schema_stale:
            self._refresh_schema()

    def _refresh_schema(self) -> None:
        """Ask for the bus's schema again (a name or a signature changed), without waiting."""
        loop = self._loop
        if loop is None or self._schema_asked or self.lost:
            return
        try:
            future = self.client.request_async("schema")
        except ConnectionLost:
            return
        self._schema_asked = True

        def done(result: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._schema_came, result)

        future.add_done_callback(done)

    def _schema_came(self, future: Future[Any]) -> None:
        self._schema_asked = False
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.registry.update_schema(_schema(future.result()))
        elif isinstance(error, RemoteError):  # an older bus: no schema to complete from
            self.registry.update_schema(None)

    def close(self) -> None:
        """Stop learning and stop reporting losses (the client is the caller's to close)."""
        self._closing = True
        if self._learner is not None:
            with contextlib.suppress(Exception):
                self._learner.close(timeout=1.0)
            self._learner = None


def _schema(document: Any) -> dict[str, Any] | None:
    return document if isinstance(document, dict) else None
