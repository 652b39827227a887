"""A client of the bus's control endpoint (see ``docs/protocol.md``).

    from busctl._client import Client

    with Client.connect() as client:          # the one running bus
        print(client.name, client.info["pid"])
        print(client.execute("say_hello", ["Alice"]))
        sub = client.subscribe("activity", lambda method, params: print(params))
        ...
        sub.close()

One connection carries many requests at once: a reader thread matches each
reply to its request by id and hands server notifications to the callback of
the subscription they belong to. Every public method may be called from any
thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from pathlib import Path
from typing import Any

from bus import BusError
from bus.control import protocol
from bus.control.protocol import ErrorCode

__all__ = ["Client", "ConnectionLost", "RemoteError", "Subscription", "locate"]

_log = logging.getLogger(__name__)


class _FirstOnly:
    """Logs the first of a repeated failure, and counts the rest.

    What a misbehaving server or callback does on every line must not flood
    the log: one line says what happened, ``report()`` how often.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, message: str, *args: object, exc: BaseException | None = None) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            _log.warning(message + " (the next ones are counted, not logged)", *args, exc_info=exc)

    def report(self) -> None:
        """Log how many more there were, if any (once, at the end)."""
        with self._lock:
            more, self.count = self.count - 1, 0
        if more > 0:
            _log.warning("%d more %s were not logged", more, self.what)


# Seconds added to a remote ``execute`` timeout before the client gives up on
# the reply itself: the server reports its own timeout (TIMED_OUT) first.
_REPLY_GRACE = 5.0
# Notifications for a subscription id the client does not know yet are held
# this long (count) in case the subscribe reply is still on its way.
_ORPHANS = 1000


class RemoteError(Exception):
    """The bus answered a request with a JSON-RPC error.

    Attributes:
        code: the JSON-RPC error code (see the table in ``docs/protocol.md``).
        message: the error's one-line message.
        data: the error's ``data`` object (``{}`` when absent).
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        self.code = int(code)
        self.message = message
        self.data = dict(data or {})
        super().__init__(message)

    @property
    def type(self) -> str | None:
        """The remote exception's class name (``data["type"]``), if the bus sent one."""
        value = self.data.get("type")
        return value if isinstance(value, str) else None

    @property
    def remote_traceback(self) -> str | None:
        """The handler's traceback as text (``data["traceback"]``), if the bus sent one."""
        value = self.data.get("traceback")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        if self.type and not self.message.startswith(self.type):
            return f"{self.type}: {self.message}"
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.code, self.message, self.data))


class ConnectionLost(Exception):
    """The connection to the bus is closed or broke; no reply will come."""


class Subscription:
    """One ``subscribe`` on a connection; ``close()`` ends it.

    Attributes:
        id: the server's subscription id.
        topic: ``"activity"`` or ``"spans"``.
        patterns: the name patterns it was opened with.
        dropped: notifications the server dropped for this subscription so far
            (the latest ``total`` of a ``dropped`` notification).
    """

    def __init__(
        self,
        client: Client,
        topic: str,
        patterns: tuple[str, ...],
        callback: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.id: Any = None
        self.topic = topic
        self.patterns = patterns
        self.dropped = 0
        self._client = client
        self._callback = callback
        self._closed = False

    def _deliver(self, method: str, params: dict[str, Any]) -> None:
        if self._closed:
            return
        if method == "dropped":
            total = params.get("total")
            if isinstance(total, int):
                self.dropped = total
        try:
            self._callback(method, params)
        except Exception as exc:  # one broken callback must not flood the log either
            self._client.bad_callbacks("subscription callback failed on %s", method, exc=exc)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called or the connection ended."""
        return self._closed or self._client.closed

    def close(self, timeout: float | None = 5.0) -> int:
        """Unsubscribe; return the server's final dropped count. Idempotent.

        Blocks up to ``timeout`` seconds for the server's reply. Once it
        returns, the callback is not called again.
        """
        if self._closed:
            return self.dropped
        self._closed = True
        self._client._forget(self)
        if not self._client.closed:
            with contextlib.suppress(ConnectionLost, RemoteError, TimeoutError):
                result = self._client.request(
                    "unsubscribe", {"subscription": self.id}, timeout=timeout
                )
                if isinstance(result, dict) and isinstance(result.get("dropped"), int):
                    self.dropped = result["dropped"]
        return self.dropped

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.topic} {list(self.patterns)}>"


def locate(target: str | None) -> tuple[Path | None, bool]:
    """Where ``target`` is, found without connecting to anything: ``(path, named)``.

    An explicit path (``/x.sock``, ``unix:path=...``) or ``$BUS_ADDRESS`` is
    that path. A bus name is its socket in ``socket_dir()``. ``None`` is the
    one socket in ``socket_dir()``; with none or several there, ``path`` is
    ``None``: only discovery, which asks each bus, can tell.

    ``named`` is true when the path was found by a name or by looking in
    ``socket_dir()``: if nothing answers there, discovery says why (no bus
    by that name, which ones run, a directory that will not do).

    Raises:
        ValueError: ``target`` or ``$BUS_ADDRESS`` is not a valid address.
    """
    from bus.control import default_address, parse_address, socket_dir

    if target is None:
        env = os.environ.get("BUS_ADDRESS", "").strip()
        if env:
            return parse_address(env), False
        directory = socket_dir()
        try:
            # Only a real directory: a symlink or worse is for discovery to refuse.
            if not stat.S_ISDIR(os.lstat(directory).st_mode):
                return None, True
            sockets = [entry for entry in directory.iterdir() if entry.suffix == ".sock"]
        except OSError:
            return None, True
        return (sockets[0] if len(sockets) == 1 else None), True
    if target.startswith("unix:") or os.sep in target or target.endswith(".sock"):
        return parse_address(target), False
    return default_address(target), True


def _unreachable(address: Path | None, exc: OSError) -> ConnectionLost:
    return ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}")


def _open(address: Path, timeout: float) -> socket.socket:
    """A connected socket to ``address`` whose server runs as this user.

    Raises:
        FileNotFoundError, ConnectionRefusedError: nothing listens there.
        bus.control.ForeignBusError: another user's process serves it.
        ConnectionLost: any other reason it cannot be reached.
    """
    from bus.control import check_peer

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(address))
        check_peer(sock, address)
    except (FileNotFoundError, ConnectionRefusedError, BusError):
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise _unreachable(address, exc) from exc
    sock.settimeout(None)
    return sock


class Client:
    """A connection to one bus's control endpoint.

    Build one with ``Client.connect()``. Requests may be in flight from many
    threads at once; replies can arrive in any order.

    Attributes:
        info: the bus's ``describe`` result, fetched on connect.
        name: the bus's name.
        address: the socket path.
    """

    def __init__(self, sock: socket.socket, address: Path) -> None:
        self.address = address
        self.info: dict[str, Any] = {}
        self.name = ""
        self.error: BaseException | None = None
        self._sock = sock
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._server_error: RemoteError | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._on_reply: dict[int, Callable[[Any], None]] = {}
        self._subscriptions: dict[Any, Subscription] = {}
        self._orphans: deque[tuple[str, dict[str, Any]]] = deque(maxlen=_ORPHANS)
        self._disconnect_callbacks: list[Callable[[], None]] = []
        self._closed = False
        #: What a misbehaving server or callback does on every line is logged once.
        self.bad_lines = _FirstOnly("lines that were not JSON")
        self.bad_callbacks = _FirstOnly("subscription callback failures")
        self._reader = threading.Thread(
            target=self._read_loop, name=f"busctl-client:{address.name}", daemon=True
        )
        self._reader.start()

    @classmethod
    def connect(cls, target: str | None = None, *, timeout: float = 5.0) -> Client:
        """Connect to the bus ``target`` names and fetch its ``describe``: one connection.

        The socket is found without connecting (``locate``); only when nothing
        answers there, or several buses may be meant, does discovery ask each
        bus. Before sending anything it checks, where the system says
        (``SO_PEERCRED``, Linux), that the server runs as this user: a socket
        path can point anywhere.

        Args:
            target: a bus name, a socket path, ``unix:path=...``, or ``None``
                for ``$BUS_ADDRESS`` or else the one bus running.
            timeout: seconds to wait for the connection and the first reply.

        Raises:
            bus.control.NoBusError / AmbiguousBusError: nothing (or too much)
                to attach to.
            bus.control.BusFullError: the bus is up but turns clients away
                (it has as many attached as it serves).
            bus.control.ForeignBusError: another user's process serves the socket.
            ConnectionLost: the socket refused or closed.
        """
        from bus.control import BusFullError, resolve

        address, named = locate(target)
        try:
            if address is None:
                raise FileNotFoundError(target)
            sock = _open(address, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if not named:
                raise _unreachable(address, exc) from exc
            # Nothing answers where the name (or the one socket) says: discovery
            # asks every bus, says which run, and removes what a dead one left.
            address = resolve(target)
            try:
                sock = _open(address, timeout)
            except (FileNotFoundError, ConnectionRefusedError) as again:  # it went meanwhile
                raise _unreachable(address, again) from again
        client = cls(sock, address)
        try:
            info = client.request("describe", timeout=timeout)
        except ConnectionLost as exc:
            client.close()
            refusal = client._server_error
            if refusal is not None and refusal.code == ErrorCode.TOO_MANY_CLIENTS:
                limit = refusal.data.get("limit")
                raise BusFullError(
                    refusal.message, address, limit if isinstance(limit, int) else None
                ) from exc
            raise
        except BaseException:
            client.close()
            raise
        client.info = info if isinstance(info, dict) else {}
        client.name = str(client.info.get("name", address.stem))
        return client

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
    ) -> Future[Any]:
        future: Future[Any] = Future()
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
            with self._write_lock:
                self._sock.sendall(line)
        except OSError as exc:
            with self._lock:
                self._pending.pop(request_id, None)
                self._on_reply.pop(request_id, None)
            if threading.current_thread() is not self._reader:
                # The server may have said why before it hung up (too many
                # clients, say): let the reader take that in first.
                self._reader.join(timeout=1.0)
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
    ) -> Subscription:
        """Subscribe to ``topic`` (``"activity"`` or ``"spans"``).

        ``callback(method, params)`` runs on the client's reader thread for
        every notification of this subscription (``method`` is the topic, or
        ``"dropped"`` when the server dropped some): it must be quick, for
        example append to a queue. It may be called before ``subscribe``
        returns (the subscription is registered as soon as the reply is read).

        Raises:
            RemoteError: an unknown topic or bad params; ConnectionLost.
        """
        subscription = Subscription(self, topic, tuple(patterns), callback)

        def registered(result: Any) -> None:
            # On the reader thread, before it reads the next line: so no
            # notification of this subscription can be read before it is known.
            if isinstance(result, dict):
                subscription.id = result.get("subscription")
                with self._lock:
                    self._subscriptions[subscription.id] = subscription
                    held = [n for n in self._orphans if n[1].get("subscription") == subscription.id]
                    for item in held:
                        self._orphans.remove(item)
                for method, params in held:
                    subscription._deliver(method, params)

        params = {"topic": topic, "patterns": list(subscription.patterns), "buffer": buffer}
        future = self._send("subscribe", params, on_reply=registered)
        try:
            future.result(timeout)
        except FutureTimeoutError:
            raise TimeoutError(f"no reply to subscribe within {timeout} s") from None
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        with self._lock:
            if self._subscriptions.get(subscription.id) is subscription:
                del self._subscriptions[subscription.id]

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
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5.0)

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
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
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

    def _read_loop(self) -> None:
        error: BaseException | None = ConnectionLost("the bus closed the connection")
        try:
            with self._sock.makefile("rb") as reader:
                self._read_lines(reader)
        except OSError as exc:
            error = exc
        except Exception as exc:  # a bug here must still fail the pending requests
            _log.exception("client reader failed")
            error = exc
        if self._closed:
            return
        self._shut(error)

    def _read_lines(self, reader: Iterable[bytes]) -> None:
        for line in reader:
            if not line.strip():
                continue
            try:
                message = protocol.loads(line)
            except protocol.ProtocolError:
                if self._closed:  # a line cut short by our own close()
                    return
                self.bad_lines("ignoring a line that is not JSON from %s", self.address)
                continue
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("id", 0) is None and isinstance(message.get("error"), dict):
            # Not a reply: the server's reason for what it does next (say,
            # closing a connection it has no room for).
            self._server_error = _remote_error(message["error"])
            return
        if "id" in message and ("result" in message or "error" in message):
            with self._lock:
                future = self._pending.pop(message["id"], None)
                on_reply = self._on_reply.pop(message["id"], None)
            if future is None:
                return
            error = message.get("error")
            if error is not None:
                remote = _remote_error(error)
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


def _remote_error(error: Any) -> RemoteError:
    """The ``RemoteError`` for a JSON-RPC ``error`` member, whatever shape it came in."""
    if not isinstance(error, dict):
        return RemoteError(ErrorCode.INTERNAL_ERROR, str(error))
    code = error.get("code")
    data = error.get("data")
    return RemoteError(
        code if isinstance(code, int) and not isinstance(code, bool) else ErrorCode.INTERNAL_ERROR,
        str(error.get("message", "")),
        data if isinstance(data, dict) else {},
    )
