"""A client of the bus's control endpoint (see ``docs/protocol.md``).

    from busctl._client import Client

    with Client.connect() as client:          # the one running bus
        print(client.name, client.info["pid"])
        print(client.execute("say_hello", ["Alice"]))
        sub = client.subscribe("activity", lambda method, params: print(params))
        ...
        sub.close()

One connection carries many requests at once: the client matches each reply
to its request by id and hands server notifications to the callback of the
subscription they belong to. How the lines travel is its ``Transport``
(``busctl._transport``): a Unix socket, or NATS for a bus across processes
(``Client.connect("home", nats="nats://host:4222")``, ``busctl._nats``),
with everything above it the same. Every public method may be called from
any thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import Any

from bus.control import protocol
from bus.control.protocol import ErrorCode

from ._locate import locate, open_socket, unreachable
from ._remote import ConnectionLost, FirstOnly, RemoteError, remote_error
from ._subscription import Subscription
from ._transport import SocketTransport, Transport

__all__ = ["Client", "ConnectionLost", "RemoteError", "Subscription", "locate"]

_log = logging.getLogger(__name__)


# Seconds added to a remote ``execute`` timeout before the client gives up on
# the reply itself: the server reports its own timeout (TIMED_OUT) first.
_REPLY_GRACE = 5.0
# Notifications for a subscription id the client does not know yet are held
# this long (count) in case the subscribe reply is still on its way.
_ORPHANS = 1000


class Client:
    """A connection to one bus's control endpoint.

    Build one with ``Client.connect()``. Requests may be in flight from many
    threads at once; replies can arrive in any order.

    Attributes:
        info: the bus's ``describe`` result, fetched on connect.
        name: the bus's name.
        address: where the bus is: its socket path, or ``nats://HOST:PORT bus NAME``.
        transport: how the lines travel (``busctl._transport``).
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.address = transport.address
        self.info: dict[str, Any] = {}
        self.name = ""
        self.error: BaseException | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server_error: RemoteError | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._on_reply: dict[int, Callable[[Any], None]] = {}
        self._subscriptions: dict[Any, Subscription] = {}
        self._orphans: deque[tuple[str, dict[str, Any]]] = deque(maxlen=_ORPHANS)
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._closed = False
        self._again: Callable[[], Client] | None = None
        #: What a misbehaving server or callback does on every line is logged once.
        self.bad_lines = FirstOnly("lines that were not JSON")
        self.bad_callbacks = FirstOnly("subscription callback failures")
        transport.start(self)

    @classmethod
    def connect(
        cls, target: str | None = None, *, nats: str | None = None, timeout: float = 5.0
    ) -> Client:
        """Connect to the bus ``target`` names and fetch its ``describe``: one connection.

        The socket is found without connecting (``locate``); only when nothing
        answers there, or several buses may be meant, does discovery ask each
        bus. Before sending anything it checks, where the system says
        (``SO_PEERCRED``, Linux), that the server runs as this user: a socket
        path can point anywhere.

        With ``nats``, the bus is the one named ``target`` on that NATS server,
        seen whole (every process of it; ``busctl._nats``); ``target=None``
        is the one bus there.

        Args:
            target: a bus name, a socket path, ``unix:path=...``, or ``None``
                for ``$BUS_ADDRESS`` or else the one bus running.
            nats: a NATS server's URL (``None`` or ``""``: a local socket).
            timeout: seconds to wait for the connection and the first reply.

        Raises:
            bus.control.NoBusError / AmbiguousBusError: nothing (or too much)
                to attach to.
            bus.control.BusFullError: the bus is up but turns clients away
                (it has as many attached as it serves).
            bus.control.ForeignBusError: another user's process serves the socket.
            bus.TransportError: no NATS server answers at ``nats``.
            ConnectionLost: the socket refused or closed.
        """
        if nats:
            from ._nats import connect_nats

            client = connect_nats(cls, nats, target, timeout)
            name = client.name
            client._again = lambda: cls.connect(name, nats=nats, timeout=timeout)
            return client
        return cls._connect_socket(target, timeout)

    @classmethod
    def _connect_socket(cls, target: str | None, timeout: float) -> Client:
        from bus.control import BusFullError, resolve

        address, named = locate(target)
        try:
            if address is None:
                raise FileNotFoundError(target)
            sock = open_socket(address, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not named:
                raise unreachable(address, exc) from exc
            # Nothing answers where the name (or the one socket) says: discovery
            # asks every bus, says which run, and removes what a dead one left.
            address = resolve(target)
            try:
                sock = open_socket(address, timeout)
            except (FileNotFoundError, ConnectionRefusedError) as again:  # it went meanwhile
                raise unreachable(address, again) from again
        client = cls(SocketTransport(sock, address))
        try:
            client.describe_first(timeout)
        except ConnectionLost as exc:
            refusal = client._server_error
            if refusal is not None and refusal.code == ErrorCode.TOO_MANY_CLIENTS:
                limit = refusal.data.get("limit")
                raise BusFullError(
                    refusal.message, address, limit if isinstance(limit, int) else None
                ) from exc
            raise
        found = str(address)
        client._again = lambda: cls.connect(found, timeout=timeout)
        return client

    def describe_first(self, timeout: float) -> None:
        """Ask ``describe`` and keep it as ``info`` and ``name`` (closes the client on failure)."""
        try:
            info = self.request("describe", timeout=timeout)
        except BaseException:
            self.close()
            raise
        self.info = info if isinstance(info, dict) else {}
        fallback = self.address.stem if isinstance(self.address, Path) else str(self.address)
        self.name = str(self.info.get("name", fallback))

    def connect_again(self) -> Client:
        """A new connection to the bus this client attached to (the same socket or NATS bus).

        Raises:
            whatever ``Client.connect`` raises.
        """
        if self._again is None:
            return Client.connect(str(self.address))
        return self._again()

    # -- requests ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by ``close()`` or by the bus)."""
        return self._closed

    def request_async(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Send a request; return a future of its result (or ``RemoteError``).

        Raises:
            ConnectionLost: the connection is closed.
        """
        return self._send(method, params)

    def request_with_id(
        self, method: str, params: dict[str, Any] | None = None
    ) -> tuple[int, Future[Any]]:
        """Send a request; return its id (what ``cancel`` names) and the future of its result.

        Raises:
            ConnectionLost: the connection is closed.
        """
        request_id = next(self._ids)
        return request_id, self._send(method, params, request_id=request_id)

    def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Send a request and wait up to ``timeout`` seconds for its result.

        Raises:
            RemoteError: the bus answered with an error.
            ConnectionLost: the connection closed before the reply came.
            TimeoutError: no reply within ``timeout``.
        """
        future = self._send(method, params)
        try:
            return future.result(timeout)
        except FutureTimeoutError:
            future.cancel()
            raise TimeoutError(f"no reply to {method} within {timeout} s") from None

    def _send(
        self,
        method: str,
        params: dict[str, Any] | None,
        on_reply: Callable[[Any], None] | None = None,
        request_id: int | None = None,
    ) -> Future[Any]:
        future: Future[Any] = Future()
        if request_id is None:
            request_id = next(self._ids)  # itertools.count: atomic under the GIL
        # Framed before it is registered: params that are not JSON raise here
        # (TypeError, ValueError) and leave nothing pending.
        line = protocol.dumps(protocol.request(request_id, method, params))
        with self._lock:
            if self._closed:
                raise ConnectionLost(self._lost_message())
            self._pending[request_id] = future
            if on_reply is not None:
                self._on_reply[request_id] = on_reply
        try:
            self.transport.send(request_id, method, params, line)
        except (OSError, ConnectionLost) as exc:
            with self._lock:
                self._pending.pop(request_id, None)
                self._on_reply.pop(request_id, None)
            self._shut(exc)
            raise ConnectionLost(self._lost_message()) from exc
        return future

    # -- the protocol's methods --------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The bus's identity: name, pid, started_at, version, address, methods."""
        result: dict[str, Any] = self.request("describe")
        return result

    def inspect(self) -> dict[str, Any]:
        """The bus's ``inspect()`` snapshot: services, commands, listeners, totals..."""
        result: dict[str, Any] = self.request("inspect")
        return result

    def execute(
        self,
        name: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        timeout: float | None = 30.0,
    ) -> Any:
        """Execute command ``name`` on the bus and return its result.

        Args:
            timeout: seconds the bus waits for the handler (``None``: no limit).

        Raises:
            RemoteError: the command is unknown (``ErrorCode.NO_SUCH_COMMAND``),
                the arguments do not bind (``BAD_ARGUMENTS``: the bus checks
                them, the client only parses and sends), the handler raised
                (``HANDLER_ERROR``, with the remote traceback), or it timed
                out (``TIMED_OUT``)...
        """
        params = {
            "name": name,
            "args": list(args),
            "kwargs": dict(kwargs or {}),
            "timeout": timeout,
        }
        wait = None if timeout is None else timeout + _REPLY_GRACE
        result = self.request("execute", params, timeout=wait)
        return result.get("value") if isinstance(result, dict) else result

    def fire(
        self, name: str, args: Iterable[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> int:
        """Fire event ``name``; return how many listeners' patterns match it."""
        params = {"name": name, "args": list(args), "kwargs": dict(kwargs or {})}
        result = self.request("fire", params)
        return int(result.get("listeners", 0)) if isinstance(result, dict) else 0

    def who_handles(self, name: str) -> dict[str, Any]:
        """The routing of ``name``: its command (or ``None``) and listeners in delivery order."""
        result: dict[str, Any] = self.request("who_handles", {"name": name})
        return result

    def traces(self, limit: int = 20, trace_id: str | None = None) -> dict[str, Any]:
        """Recent traces from the bus's ring, as one OTLP ``TracesData`` object."""
        params: dict[str, Any] = {"trace_id": trace_id} if trace_id else {"limit": limit}
        result: dict[str, Any] = self.request("traces", params)
        return result

    def subscribe(
        self,
        topic: str,
        callback: Callable[[str, dict[str, Any]], None],
        patterns: Iterable[str] = ("*",),
        buffer: int = 10_000,
        timeout: float | None = 10.0,
        *,
        lossless: bool = False,
    ) -> Subscription:
        """Subscribe to ``topic`` (``"activity"`` or ``"spans"``).

        ``lossless`` (spans only): the bus waits rather than drop spans while
        the subscription is open (``docs/protocol.md``).

        ``callback(method, params)`` runs on the client's reader thread for
        every notification of this subscription (``method`` is the topic, or
        ``"dropped"`` when the server dropped some): it must be quick, for
        example append to a queue. It may be called before ``subscribe``
        returns (the subscription is registered as soon as the reply is read).

        Raises:
            RemoteError: an unknown topic or bad params; ConnectionLost.
        """
        subscription = Subscription(self, topic, tuple(patterns), callback)
        asked: dict[str, Any] = {
            "topic": topic,
            "patterns": list(subscription.patterns),
            "buffer": buffer,
        }
        if lossless:
            asked["lossless"] = True
        # The transport may add to them (over NATS: the feed's id, whose
        # subject it listens on before the bus can publish there).
        subscription.params = params = self.transport.feed(asked)

        def registered(result: Any) -> None:
            # On the reader thread, before it reads the next line: so no
            # notification of this subscription can be read before it is known.
            if isinstance(result, dict):
                subscription.id = result.get("subscription")
                self.transport.feed_opened(params)
                with self._lock:
                    self._subscriptions[subscription.id] = subscription
                    held = [n for n in self._orphans if n[1].get("subscription") == subscription.id]
                    for item in held:
                        self._orphans.remove(item)
                for method, note in held:
                    subscription._deliver(method, note)

        try:
            future = self._send("subscribe", params, on_reply=registered)
            try:
                future.result(timeout)
            except FutureTimeoutError:
                raise TimeoutError(f"no reply to subscribe within {timeout} s") from None
        except BaseException:
            self.transport.feed_closed(params)
            raise
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        with self._lock:
            if self._subscriptions.get(subscription.id) is subscription:
                del self._subscriptions[subscription.id]
        self.transport.feed_closed(subscription.params)

    # -- lifetime ------------------------------------------------------------

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no arguments) once when the connection ends.

        It runs on the reader thread, or at once if the connection has already
        ended. ``client.error`` then holds why (``None`` after ``close()``).
        """
        with self._lock:
            if not self._closed:
                self._disconnect_callbacks.append(callback)
                return
        callback()

    def close(self) -> None:
        """Close the connection; pending requests fail with ``ConnectionLost``. Idempotent."""
        self._shut(None)
        self.transport.join(timeout=5.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Client {self.name or '?'} at {self.address} ({state})>"

    def _lost_message(self) -> str:
        if self._server_error is not None:
            return f"bus {self.name or self.address} closed the connection: {self._server_error}"
        if self.error is not None:
            return f"connection to bus {self.name or self.address} lost: {self.error}"
        return f"connection to bus {self.name or self.address} is closed"

    def _shut(self, error: BaseException | None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.error = error
            pending = list(self._pending.values())
            self._pending.clear()
            self._on_reply.clear()
            callbacks = self._disconnect_callbacks[:]
            self._disconnect_callbacks.clear()
            subscriptions = list(self._subscriptions.values())
            self._subscriptions.clear()
        for subscription in subscriptions:
            subscription._closed = True
        self.bad_lines.report()
        self.bad_callbacks.report()
        self.transport.close()
        lost = ConnectionLost(self._lost_message())
        for future in pending:
            if not future.done():
                with contextlib.suppress(Exception):
                    future.set_exception(lost)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("on_disconnect callback failed")

    # -- what the transport hands over (its thread) ---------------------------------

    def received(self, message: dict[str, Any]) -> None:
        """A message arrived (``Receiver``): a reply, a notification, or the server's last word."""
        self._dispatch(message)

    def refused(self, request_id: int, error: BaseException) -> None:
        """Request ``request_id`` will get no reply (``Receiver``): it fails with ``error``."""
        with self._lock:
            future = self._pending.pop(request_id, None)
            self._on_reply.pop(request_id, None)
        if future is not None and not future.done():
            with contextlib.suppress(Exception):
                future.set_exception(error)

    def ended(self, error: BaseException | None) -> None:
        """The transport is gone (``Receiver``): every pending request fails."""
        self._shut(error)

    def bad_line(self, where: object) -> None:
        """A message that was not JSON (``Receiver``): logged once, then counted."""
        self.bad_lines("ignoring a line that is not JSON from %s", where)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("id", 0) is None and isinstance(message.get("error"), dict):
            # Not a reply: the server's reason for what it does next (say,
            # closing a connection it has no room for).
            self._server_error = remote_error(message["error"])
            return
        if "id" in message and ("result" in message or "error" in message):
            with self._lock:
                future = self._pending.pop(message["id"], None)
                on_reply = self._on_reply.pop(message["id"], None)
            if future is None:
                return
            error = message.get("error")
            if error is not None:
                remote = remote_error(error)
                if not future.done():
                    with contextlib.suppress(Exception):
                        future.set_exception(remote)
                return
            result = message.get("result")
            if on_reply is not None:
                on_reply(result)
            if not future.done():  # a caller may have given up and cancelled it
                with contextlib.suppress(Exception):
                    future.set_result(result)
            return
        method = message.get("method")
        params = message.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            return
        with self._lock:
            subscription = self._subscriptions.get(params.get("subscription"))
            if subscription is None:
                self._orphans.append((method, params))
                return
        subscription._deliver(method, params)
