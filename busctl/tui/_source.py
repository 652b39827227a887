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
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from bus import Bus, CommandFuture
    from busctl._cancel import CancelOutcome, Running
    from busctl._client import Client, Subscription

__all__ = ["ClientSource", "Kind", "LocalSource", "Source", "connect", "reconnector"]

ActivityCallback = Callable[[dict[str, Any]], None]
Kind = Literal["command", "event"]


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

    def cancel(self, call: Future[Any]) -> Future[CancelOutcome]:
        """Cancel a command this source started (``call``: what ``execute`` returned).

        The future holds what became of it (``busctl._cancel.CancelOutcome``):
        cancelled, a sync handler that cannot be interrupted, already finished.
        """

    def schema(self, name: str) -> Future[dict[str, Any]]:
        """The bus's JSON Schema document of command or event ``name`` (``{}``: none known)."""

    def check(self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[bool]:
        """Convert and check arguments as a call would, running nothing.

        The future holds ``True`` when they convert, ``False`` when the bus
        cannot check (an older one: the call itself is checked), or fails with
        the error the call would get (``INVALID_ARGUMENT`` naming each field).
        """

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
        self._lock = threading.Lock()
        self._running: dict[Future[Any], Running] = {}  # what cancel() needs, by call

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
        from busctl._cancel import start_execute

        running = start_execute(self.client, name, args, kwargs, timeout=30.0)
        call = _mapped(running.future, lambda r: r.get("value") if isinstance(r, dict) else r)
        with self._lock:
            self._running[call] = running
        call.add_done_callback(self._ended)
        return call

    def _ended(self, call: Future[Any]) -> None:
        with self._lock:
            self._running.pop(call, None)

    def cancel(self, call: Future[Any]) -> Future[CancelOutcome]:
        """Ask the bus to cancel ``call`` (its ``cancel``, on this connection)."""
        from busctl._cancel import request_cancel

        with self._lock:
            running = self._running.get(call)
        if running is None:  # it ended (or was never this source's)
            done: Future[CancelOutcome] = Future()
            done.set_result("finished")
            return done
        return request_cancel(self.client, running)

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name``; the future holds how many listeners it reaches."""
        params = {"name": name, "args": args, "kwargs": kwargs}
        return _mapped(
            self.client.request_async("fire", params),
            lambda r: int(r.get("listeners", 0)) if isinstance(r, dict) else 0,
        )

    def schema(self, name: str) -> Future[dict[str, Any]]:
        """The bus's ``schema`` of ``name``; ``{}`` from a bus that has none to give."""
        from bus.control.protocol import ErrorCode

        from .._remote import RemoteError

        out: Future[dict[str, Any]] = Future()

        def done(f: Future[Any]) -> None:
            error = f.exception() if not f.cancelled() else None
            if isinstance(error, RemoteError) and error.code in (
                ErrorCode.METHOD_NOT_FOUND,  # a bus older than the typed contract
                ErrorCode.INVALID_PARAMS,  # a name it does not know (yet)
            ):
                out.set_result({})
            elif f.cancelled() or error is not None:
                out.set_exception(error or ConnectionError("cancelled"))
            else:
                result = f.result()
                out.set_result(result if isinstance(result, dict) else {})

        self.client.request_async("schema", {"name": name}).add_done_callback(done)
        return out

    def check(self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[bool]:
        """Ask the bus to convert and check the arguments (``check``), running nothing."""
        from bus.control.protocol import ErrorCode

        from .._remote import RemoteError

        method = "execute" if kind == "command" else "fire"
        params = {"name": name, "args": args, "kwargs": kwargs, "check": True}
        out: Future[bool] = Future()

        def done(f: Future[Any]) -> None:
            error = f.exception() if not f.cancelled() else None
            if (
                isinstance(error, RemoteError)
                and error.code == ErrorCode.INVALID_PARAMS
                and (error.data.get("param") == "check")
            ):
                out.set_result(False)  # an older bus: the call itself is checked
            elif f.cancelled() or error is not None:
                out.set_exception(error or ConnectionError("cancelled"))
            else:
                out.set_result(True)

        self.client.request_async(method, params).add_done_callback(done)
        return out

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
        self._running: dict[Future[Any], _Placed] = {}  # what cancel() needs, by call

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
        """Run command ``name`` as the control endpoint would; the future holds its result.

        The arguments are converted to the handler's types first and the
        result written as JSON (``bus.schema``), so the form shows what it
        shows over a socket; a value that does not convert fails the future
        with the endpoint's ``INVALID_ARGUMENT`` error, and nothing runs.
        """

        placed = _Placed()

        def run() -> Any:
            from concurrent.futures import CancelledError

            from bus.control.protocol import ErrorCode
            from bus.schema import to_json

            from .._remote import RemoteError

            command: CommandFuture | None = None
            try:
                converted, named = self._converted("command", name, args, kwargs)
                command = self.bus.execute_command(name, *converted, **named)
            finally:
                asked = placed.dispatched(command, self._lock)
            assert command is not None  # else the refusal was raised
            if asked is not None:  # cancel() came while it was being dispatched
                asked.set_result(_cancel_command(command))
            try:
                value = command.result(timeout=30.0)
            except CancelledError:  # as the control endpoint answers a cancelled execute
                raise RemoteError(
                    ErrorCode.CANCELLED, "the command was cancelled", {"type": "CancelledError"}
                ) from None
            return to_json(value)[0]

        call = self._submit(run)
        with self._lock:
            self._running[call] = placed
        call.add_done_callback(self._ended)
        return call

    def _ended(self, call: Future[Any]) -> None:
        with self._lock:
            self._running.pop(call, None)

    def cancel(self, call: Future[Any]) -> Future[CancelOutcome]:
        """Cancel ``call``: a command not yet dispatched never runs; else the bus's ``cancel()``."""
        out: Future[CancelOutcome] = Future()
        with self._lock:
            placed = self._running.get(call)
            if placed is None or call.done():
                out.set_result("finished")
                return out
            command = placed.command
            if command is None:
                if call.cancel():  # still queued here: it never reaches the bus
                    out.set_result("cancelled")
                else:  # being converted and dispatched: cancelled once it is
                    placed.asked = out
                return out
        out.set_result(_cancel_command(command))
        return out

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name`` (a declared payload converted first); the future holds
        the number of matching listeners."""

        def run() -> int:
            from bus.patterns import pattern_matches

            converted, named = self._converted("event", name, args, kwargs)
            self.bus.fire_event(name, *converted, **named)
            inspected = self.bus.inspect()
            return sum(1 for li in inspected["listeners"] if pattern_matches(li["pattern"], name))

        return self._submit(run)

    def schema(self, name: str) -> Future[dict[str, Any]]:
        """The bus's JSON Schema of ``name`` (``{}`` for a name it does not describe)."""

        def read() -> dict[str, Any]:
            from bus.schema import json_schema

            try:
                return json_schema(self.bus, name)
            except LookupError:
                return {}

        return self._submit(read)

    def check(self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[bool]:
        """Convert and check the arguments as ``execute``/``fire`` would, running nothing."""

        def run() -> bool:
            if kind == "event":
                from bus.patterns import validate_name

                validate_name(name, "event name")
            self._converted(kind, name, args, kwargs)
            return True

        return self._submit(run)

    def _converted(
        self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from bus.schema import convert_call, convert_event

        from .._remote import refusal

        convert = convert_call if kind == "command" else convert_event
        try:
            return convert(self.bus, name, args, kwargs)
        except Exception as exc:  # refused as the control endpoint refuses it
            signature = next(
                (c.get("signature") for c in self.bus.inspect()["commands"] if c["name"] == name),
                None,
            )
            refused = refusal(exc, signature)
            if refused is None:
                raise
            raise refused from None

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


class _Placed:
    """A ``LocalSource`` call's command once dispatched, and a cancel asked before that."""

    def __init__(self) -> None:
        self.command: CommandFuture | None = None
        self.asked: Future[CancelOutcome] | None = None

    def dispatched(
        self, command: CommandFuture | None, lock: threading.Lock
    ) -> Future[CancelOutcome] | None:
        """Record the command (``None``: it was refused); return a cancel asked meanwhile."""
        with lock:
            self.command = command
            asked, self.asked = self.asked, None
        if asked is not None and command is None:
            asked.set_result("finished")  # refused before it ran: nothing to cancel
            return None
        return asked


def _cancel_command(command: CommandFuture) -> CancelOutcome:
    if command.cancel():
        return "cancelled"
    return "finished" if command.done() else "sync"


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
