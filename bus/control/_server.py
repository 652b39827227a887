"""The control server: the listening socket, its safety checks, its connections.

One accept thread; per connection a reader and a writer thread (see
``_control_conn``); and one sweep on the server's timer thread that closes
connections that say nothing, stop halfway through a line, sit idle or stop
reading. Nothing here touches the bus's hot path: until a client
subscribes, the bus runs exactly as it would without a server.

Every limit is an attribute of ``ControlServer`` (``docs/protocol.md`` lists
them): clients at once, subscriptions per client, bytes waiting to be sent
per client and in all, and the times after which a connection is closed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._core._ratelog import RateLimitedLog
from .._core._threads import Timers, start_thread
from . import protocol
from ._addr import (
    AddressInUseError,
    SocketDirError,
    check_private_dir,
    default_address,
    ensure_socket_dir,
    peer_uid,
    probe,
    refusing_message,
)
from ._conn import Connection
from ._subs import span_cost
from .protocol import ErrorCode

if TYPE_CHECKING:
    from .._observe._records import Flat
    from ._served import ServedBus

__all__ = ["ControlServer", "peer_uid"]

log = logging.getLogger("bus.control")

#: The longest path ``AF_UNIX`` takes (``sun_path`` is 108 bytes on Linux).
MAX_PATH = 107


class ControlServer:
    """Serves the control protocol (``docs/protocol.md``) for one bus.

    Built by ``Bus(control=...)``, which also closes it; using it directly is
    rarely needed. Binding checks the address first: a live bus there raises
    ``AddressInUseError``, a socket left by a dead one is replaced.

    Args:
        bus: the bus to serve.
        address: the socket path; ``None`` for ``default_address(bus.name)``
            in the private ``socket_dir()`` (created ``0700`` if missing). The
            directory of an explicit path is created ``0700`` if missing, and
            must be the user's own and writable by no one else.

    Raises:
        AddressInUseError: a live bus listens there, or the path is taken
            by something that is not a socket.
        SocketDirError: the socket's directory is not the user's own, or is
            open to others (a ``BusError``).
        ValueError: the path is too long for a Unix socket.
    """

    max_connections = 64
    """Clients attached at once; one more is told so (``-32008``) and closed at once."""

    max_subscriptions = 32
    """Subscriptions open at once on one connection; one more is ``-32009``."""

    max_queued_bytes = 16 << 20
    """Bytes (estimated) of notifications waiting to be written to one client,
    beyond which more are dropped and counted; and bytes of replies, beyond
    which the client's next request waits."""

    max_total_bytes = 64 << 20
    """Bytes (estimated) waiting to be written to all clients together;
    notifications beyond it are dropped and counted."""

    hello_timeout = 10.0
    """Seconds a new connection has to send its first request."""

    line_timeout = 10.0
    """Seconds a request line may take to arrive once its first byte has."""

    idle_timeout = 300.0
    """Seconds a connection may sit idle: no request, no subscription, no
    command running and nothing to send."""

    stall_timeout = 60.0
    """Seconds the server waits for a client to read anything of what is
    waiting for it (a subscriber that stopped reading) before it hangs up."""

    def __init__(self, bus: ServedBus, address: str | os.PathLike[str] | None = None) -> None:
        self.bus = bus
        if address is None:
            ensure_socket_dir()
            path = default_address(bus.name)
        else:
            path = Path(address).expanduser().absolute()
            _ensure_explicit_dir(path.parent)
        if len(os.fsencode(path)) > MAX_PATH:
            raise ValueError(
                f"socket path {path} is {len(os.fsencode(path))} bytes, longer than a Unix "
                f"socket allows ({MAX_PATH}): choose a shorter one"
            )
        self.address = path
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._closed = False
        self._listening = True
        self._bytes_lock = threading.Lock()
        self._batch_costs: tuple[list[Flat], list[int]] | None = None
        self.queued_bytes = 0
        """Bytes (estimated) waiting to be written to all clients now."""
        self.refused = 0
        """Connections closed at once because they came from another user."""
        self.turned_away = 0
        """Connections refused (``-32008``) because ``max_connections`` were attached."""
        self.expired = 0
        """Connections closed for saying nothing, a line left half-sent, or idleness."""
        self.stalled = 0
        """Connections closed because the client stopped reading."""
        # One rate-limited log per kind of trouble, so that a flood of one
        # kind neither floods the log nor hides another kind.
        self.log_refused = RateLimitedLog(log)
        self.log_full = RateLimitedLog(log)
        self.log_closed = RateLimitedLog(log)
        self.log_failed = RateLimitedLog(log)
        self._listener, self._identity = self._bind(path)
        self.timers = Timers(f"bus:{bus.name}/control-timers")
        self.timers.schedule(self._tick(), self._sweep)
        self._accepter = start_thread(f"bus:{bus.name}/control", self._accept_loop)

    def _bind(self, path: Path) -> tuple[socket.socket, tuple[int, int]]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise AddressInUseError(
                    f"{path} exists and is not a socket: refusing to replace it"
                )
            try:
                info = probe(path)
            except FileNotFoundError:
                info = None
            except (OSError, ValueError) as exc:
                raise AddressInUseError(
                    f"{path} is in use by a process that does not answer ({exc})"
                ) from None
            if info is not None:
                raise AddressInUseError(
                    f"a bus named {info.get('name', self.bus.name)} is already running "
                    f"(pid {info.get('pid', '?')}, {path}): stop it, or choose another name"
                )
            log.info("removed the stale socket %s of a bus that died", path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bound but not yet listening, nobody can connect: the mode is
            # fixed before the socket accepts anything.
            listener.bind(os.fspath(path))
            os.chmod(path, 0o600)
            listener.listen(64)
            st = os.lstat(path)
        except OSError as exc:
            listener.close()
            if isinstance(exc, OSError) and exc.errno == 98:  # EADDRINUSE: lost a race
                raise AddressInUseError(f"{path} was taken while starting: {exc}") from None
            raise
        return listener, (st.st_ino, st.st_dev)

    # -- accept thread -------------------------------------------------------------

    def _accept_loop(self) -> None:
        uid = os.getuid()
        while self._listening:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                if not self._listening:
                    return
                continue
            try:
                peer = peer_uid(sock)
            except OSError:
                peer = -1
            if peer is not None and peer != uid:
                self.refused += 1
                self.log_refused.warning("refused a control connection from uid %s", peer)
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                # Refused at once: waiting here for a slot would hold up every
                # client behind this one in the listen queue.
                full = len(self._connections) >= self.max_connections
                if not full:
                    conn = Connection(self, sock, next(self._numbers))
                    self._connections.add(conn)
            if full:
                self._turn_away(sock)

    def _turn_away(self, sock: socket.socket) -> None:
        """Tell a client beyond ``max_connections`` why, and close it, without waiting."""
        self.turned_away += 1
        limit = self.max_connections
        message = refusing_message(self.bus.name, limit)
        self.log_full.warning("turned away a control client: %s", message)
        data = protocol.dumps(
            protocol.error(None, ErrorCode.TOO_MANY_CLIENTS, message, {"limit": limit})
        )
        with contextlib.suppress(OSError):
            # A new socket's buffer is empty: the line fits, and a client that
            # is gone already must not cost the accept thread any time.
            sock.setblocking(False)
            sock.send(data)
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.close()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- the sweep (timer thread) ------------------------------------------------------

    def _tick(self) -> float:
        shortest = min(self.hello_timeout, self.line_timeout, self.idle_timeout, self.stall_timeout)
        return min(1.0, max(0.02, shortest / 4))

    def _sweep(self) -> None:
        """Close the connections past one of their time limits, then come again."""
        with self._lock:
            if self._closed:
                return
            connections = list(self._connections)
        now = time.monotonic()
        for conn in connections:
            try:
                conn.check(now)
            except Exception as exc:
                self.log_failed.error(
                    "control connection %d: the sweep failed", conn.number, exc=exc
                )
        self.timers.schedule(self._tick(), self._sweep)

    # -- what waits to be written (any thread) -------------------------------------------

    def reserve(self, cost: int) -> bool:
        """Count ``cost`` bytes of a notification as waiting, unless over ``max_total_bytes``."""
        with self._bytes_lock:
            if self.queued_bytes and self.queued_bytes + cost > self.max_total_bytes:
                return False
            self.queued_bytes += cost
            return True

    def charge(self, size: int) -> None:
        """Count ``size`` bytes of a reply as waiting (replies wait; they are never dropped)."""
        with self._bytes_lock:
            self.queued_bytes += size

    def release(self, size: int) -> None:
        """``size`` bytes counted as waiting were written or thrown away."""
        if size:
            with self._bytes_lock:
                self.queued_bytes -= size

    def over_budget(self) -> bool:
        """Whether more than ``max_total_bytes`` wait to be written to all clients."""
        return self.queued_bytes > self.max_total_bytes

    def batch_costs(self, batch: list[Flat]) -> list[int]:
        """The estimated size of the spans of each record of ``batch`` (trace thread).

        Every connection is handed the same batch in turn: the sizes are
        worked out once, for the first.
        """
        known = self._batch_costs
        if known is not None and known[0] is batch:
            return known[1]
        costs = [span_cost(record) for record in batch]
        self._batch_costs = (batch, costs)
        return costs

    # -- lifetime -----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """How many clients are attached now."""
        with self._lock:
            return len(self._connections)

    def stop_listening(self) -> None:
        """Stop accepting, and remove the socket file if it is still ours. Idempotent."""
        if not self._listening:
            return
        self._listening = False
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(OSError):
            st = os.lstat(self.address)
            if (st.st_ino, st.st_dev) == self._identity:
                os.unlink(self.address)
        if self._accepter is not threading.current_thread():
            self._accepter.join(5.0)
            if self._accepter.is_alive():
                log.warning("the control accept thread of %r did not stop", self.bus.name)

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening, close every connection and join their threads. Idempotent.

        Blocks up to about ``timeout`` seconds.
        """
        self.stop_listening()
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            conn.join(timeout / max(1, len(connections)) + 0.1)
        self.timers.stop()
        self._batch_costs = None

    def __repr__(self) -> str:
        return f"<ControlServer {self.bus.name!r} at {self.address}, {self.connections} clients>"


def _ensure_explicit_dir(directory: Path) -> None:
    """Create ``directory`` (``0700``) if missing, then check it as the default one is.

    Raises:
        SocketDirError: see ``check_private_dir(explicit=True)``.
    """
    try:
        os.lstat(directory)
    except FileNotFoundError:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask
        except OSError as exc:
            raise SocketDirError(
                f"cannot create {directory}: {exc.strerror or exc}; choose another directory"
            ) from None
    except OSError:
        pass  # check_private_dir says what is wrong with it
    check_private_dir(directory, explicit=True)
