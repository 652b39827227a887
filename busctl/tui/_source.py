"""Where the TUI's data comes from: a bus over its control socket, or one in this process.

    source = connect(None)                  # the one running bus, else the embedded sample
    future = source.inspect()               # never blocks: a concurrent.futures.Future
    source.subscribe(feed.append)           # callback on a client/bus thread: keep it quick
    source.close()

Every request returns a ``Future`` at once, so the UI awaits it with
``asyncio.wrap_future`` and never blocks on the bus. Subscription callbacks
and ``on_disconnect`` callbacks run on the client's reader thread (or a bus
thread for ``LocalSource``): they must only append to a buffer or set a flag,
never call into Textual (``call_from_thread`` would block that thread until the
UI runs, and the UI may be waiting on the bus: a deadlock).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bus import Bus
    from busctl._client import Client, Subscription

__all__ = ["ClientSource", "LocalSource", "Source", "connect", "reconnector"]

ActivityCallback = Callable[[dict[str, Any]], None]


class Source(Protocol):
    """What the TUI needs from a bus. Every method may be called from any thread."""

    name: str
    embedded: bool
    address: str

    @property
    def closed(self) -> bool:
        """Whether the connection is gone."""

    def inspect(self) -> Future[dict[str, Any]]:
        """The bus's ``inspect()`` snapshot."""

    def traces(self, trace_id: str) -> Future[dict[str, Any]]:
        """One trace as an OTLP ``TracesData`` object."""

    def execute(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[Any]:
        """Run command ``name``; the future holds its result or its error."""

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name``; the future holds how many listeners it reaches."""

    def request(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Any other method of the control protocol (``hold``, ``held``, ``history``...).

        The future holds its result, or a ``busctl._client.RemoteError``.
        """

    @property
    def dropped(self) -> int:
        """Activity the bus dropped for this subscriber because it read too slowly."""

    def subscribe(self, callback: ActivityCallback) -> None:
        """Call ``callback(activity_json)`` for every activity. Blocks until subscribed."""

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once, on some other thread, when the bus goes away."""

    def close(self) -> None:
        """Close the connection (and an embedded bus). Idempotent; may block briefly."""


def _mapped(future: Future[Any], fn: Callable[[Any], Any]) -> Future[Any]:
    out: Future[Any] = Future()

    def done(f: Future[Any]) -> None:
        if f.cancelled():
            out.cancel()
            return
        error = f.exception()
        if error is not None:
            out.set_exception(error)
            return
        try:
            out.set_result(fn(f.result()))
        except Exception as exc:
            out.set_exception(exc)

    future.add_done_callback(done)
    return out


class ClientSource:
    """A bus reached through its control endpoint (``busctl._client.Client``).

    Args:
        client: a connected client.
        bus: the embedded bus the client is attached to, closed with the source.
    """

    def __init__(self, client: Client, bus: Bus | None = None) -> None:
        self.client = client
        self.bus = bus
        self.name = client.name
        self.embedded = bus is not None
        self.address = str(client.address)
        self._subscription: Subscription | None = None

    @property
    def closed(self) -> bool:
        """Whether the connection is gone."""
        return self.client.closed

    def inspect(self) -> Future[dict[str, Any]]:
        """The bus's ``inspect()`` snapshot."""
        return self.client.request_async("inspect")

    def traces(self, trace_id: str) -> Future[dict[str, Any]]:
        """One trace as an OTLP ``TracesData`` object."""
        return self.client.request_async("traces", {"trace_id": trace_id})

    def execute(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[Any]:
        """Run command ``name``; the future holds its result or a ``RemoteError``."""
        params = {"name": name, "args": args, "kwargs": kwargs, "timeout": 30.0}
        return _mapped(
            self.client.request_async("execute", params),
            lambda r: r.get("value") if isinstance(r, dict) else r,
        )

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name``; the future holds how many listeners it reaches."""
        params = {"name": name, "args": args, "kwargs": kwargs}
        return _mapped(
            self.client.request_async("fire", params),
            lambda r: int(r.get("listeners", 0)) if isinstance(r, dict) else 0,
        )

    def request(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Any other method of the control protocol, sent as it is."""
        return self.client.request_async(method, params)

    @property
    def dropped(self) -> int:
        """Activity the server dropped because this client read too slowly."""
        return self._subscription.dropped if self._subscription is not None else 0

    def subscribe(self, callback: ActivityCallback) -> None:
        """Subscribe to the ``activity`` topic. Blocks until the bus replies."""

        def deliver(method: str, params: dict[str, Any]) -> None:
            activity = params.get("activity")
            if method == "activity" and isinstance(activity, dict):
                process = params.get("process")  # over NATS: the process it happened in
                callback({**activity, "process": process} if isinstance(process, str) else activity)

        self._subscription = self.client.subscribe("activity", deliver)

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the reader thread when the connection ends."""
        self.client.on_disconnect(callback)

    def close(self) -> None:
        """Close the client, then the embedded bus if there is one."""
        self.client.close()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.close()


class LocalSource:
    """A bus in this process, read directly (tests, and buses without a control endpoint).

    Args:
        bus: the bus; closed with the source only when ``owned``.
        owned: whether ``close()`` closes the bus.
    """

    def __init__(self, bus: Bus, *, owned: bool = False) -> None:
        self.bus = bus
        self.name = bus.name
        self.embedded = owned
        self.address = "(in this process)"
        self._owned = owned
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="busctl-tui")
        self._unwatch: Any = None
        self._lost: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the source or the bus is closed."""
        return self._closed or self.bus.closed

    def inspect(self) -> Future[dict[str, Any]]:
        """The bus's ``inspect()`` snapshot, taken on a worker thread."""
        return self._submit(self.bus.inspect)

    def traces(self, trace_id: str) -> Future[dict[str, Any]]:
        """One trace from the bus's span ring, OTLP-encoded on a worker thread."""

        def read() -> dict[str, Any]:
            from bus.otlp import encode_spans

            self.bus.flush_traces(timeout=2.0)
            return encode_spans(self.bus.spans.trace(int(trace_id, 16)))

        return self._submit(read)

    def execute(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[Any]:
        """Run command ``name``; the future holds its result or the handler's exception."""

        def run() -> Any:
            return self.bus.execute_command(name, *args, **kwargs).result(timeout=30.0)

        return self._submit(run)

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name``; the future holds the number of matching listeners."""

        def run() -> int:
            self.bus.fire_event(name, *args, **kwargs)
            inspected = self.bus.inspect()
            from fnmatch import fnmatchcase

            return sum(1 for li in inspected["listeners"] if fnmatchcase(name, li["pattern"]))

        return self._submit(run)

    def request(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Any other method, answered in process as the bus's server would (``answer``)."""

        def run() -> Any:
            from bus.control import RequestError, answer
            from busctl._remote import RemoteError

            try:
                return answer(self.bus, method, params)
            except RequestError as exc:
                raise RemoteError(exc.code, exc.message, exc.data) from None

        return self._submit(run)

    @property
    def dropped(self) -> int:
        """Always 0: watching in-process drops nothing (the feed may)."""
        return 0

    def subscribe(self, callback: ActivityCallback) -> None:
        """Watch the bus's activity; ``callback`` runs on bus threads."""
        self._unwatch = self.bus.watch(lambda activity: callback(activity.to_json()))

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the source is closed (the bus's close is not observed)."""
        with self._lock:
            if not self._closed:
                self._lost.append(callback)
                return
        callback()

    def close(self) -> None:
        """Stop watching; close the bus when owned. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            callbacks, self._lost = self._lost, []
        if self._unwatch is not None:
            with contextlib.suppress(Exception):
                self._unwatch.dispose()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owned:
            with contextlib.suppress(Exception):
                self.bus.close()
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    def _submit(self, fn: Callable[[], Any]) -> Future[Any]:
        try:
            return self._pool.submit(fn)
        except RuntimeError as exc:  # the pool is shut down: the source is closed
            from busctl._client import ConnectionLost

            failed: Future[Any] = Future()
            failed.set_exception(ConnectionLost(f"bus {self.name} is closed ({exc})"))
            return failed


def connect(target: str | None, nats: str | None = None) -> ClientSource:
    """Attach to the bus ``target`` names, or embed the sample bus (blocks: use a thread).

    With ``nats``, the bus of that name on that NATS server, seen whole.

    Raises:
        bus.BusError (NoBusError, AmbiguousBusError, TransportError), ConnectionLost:
            nothing to attach to.
    """
    from busctl._embedded import connect_or_embed

    client, bus = connect_or_embed(target, nats=nats)
    return ClientSource(client, bus)


def reconnector(source: Source) -> Callable[[], Source] | None:
    """How to attach again to the bus ``source`` was attached to, if it can be.

    A bus in another process comes back at the same address (or, over NATS,
    by the same name on the same server): attach to that one, not to whatever
    else runs (nor to an embedded sample). A bus in this process, or the
    embedded one, cannot come back.
    """
    if isinstance(source, ClientSource) and not source.embedded:
        client = source.client
        return lambda: ClientSource(client.connect_again())
    return None
