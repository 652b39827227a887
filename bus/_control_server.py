"""The control server: the listening socket, its safety checks, its connections.

One accept thread; per connection a reader and a writer thread (see
``_control_conn``). Nothing here touches the bus's hot path: until a client
subscribes, the bus runs exactly as it would without a server.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import stat
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ._control_addr import (
    AddressInUseError,
    default_address,
    ensure_socket_dir,
    probe,
)
from ._control_conn import Connection
from ._control_methods import TOO_MANY_CLIENTS
from ._threads import Timers, start_thread

if TYPE_CHECKING:
    from ._bus import Bus

__all__ = ["ControlServer", "peer_uid"]

log = logging.getLogger("bus.control")

#: The longest path ``AF_UNIX`` takes (``sun_path`` is 108 bytes on Linux).
MAX_PATH = 107


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end, ``None`` where it cannot be known.

    Linux reports it with ``SO_PEERCRED``. Elsewhere the socket's ``0600``
    mode and its ``0700`` directory are the only guard.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serves the control protocol (``docs/protocol.md``) for one bus.

    Built by ``Bus(control=...)``, which also closes it; using it directly is
    rarely needed. Binding checks the address first: a live bus there raises
    ``AddressInUseError``, a socket left by a dead one is replaced.

    Args:
        bus: the bus to serve.
        address: the socket path; ``None`` for ``default_address(bus.name)``
            in the private ``socket_dir()`` (created ``0700`` if missing).

    Raises:
        AddressInUseError: a live bus listens there, or the path is taken
            by something that is not a socket.
        BusError: the socket directory is not private to the user.
        ValueError: the path is too long for a Unix socket.
    """

    max_connections = 64
    """Clients attached at once; one more is told so (``-32008``) and closed."""

    def __init__(self, bus: Bus, address: str | os.PathLike[str] | None = None) -> None:
        self.bus = bus
        if address is None:
            ensure_socket_dir()
            path = default_address(bus.name)
        else:
            path = Path(address).expanduser().absolute()
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True)
        if len(os.fsencode(path)) > MAX_PATH:
            raise ValueError(
                f"socket path {path} is {len(os.fsencode(path))} bytes, longer than a Unix "
                f"socket allows ({MAX_PATH}): choose a shorter one"
            )
        self.address = path
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when a client leaves
        self._connections: set[Connection] = set()
        self._numbers = itertools.count(1)
        self._closed = False
        self._listening = True
        self.refused = 0  # connections from other users
        self.turned_away = 0  # connections beyond max_connections
        self._listener, self._identity = self._bind(path)
        self.timers = Timers(f"bus:{bus.name}/control-timers")
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
                log.warning("refused a control connection from uid %s", peer)
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                # A client that just hung up (a discovery probe, say) may not
                # be forgotten yet: give it a moment before turning anyone away.
                full = not self._room.wait_for(
                    lambda: len(self._connections) < self.max_connections or self._closed,
                    timeout=0.25,
                )
                if self._closed:
                    sock.close()
                    return
                if not full:
                    conn = Connection(self, sock, next(self._numbers))
                    self._connections.add(conn)
            if full:
                self._turn_away(sock)

    def _turn_away(self, sock: socket.socket) -> None:
        """Tell a client beyond ``max_connections`` why, and close it."""
        self.turned_away += 1
        limit = self.max_connections
        log.warning("turned away a control client: %d are attached already", limit)
        error = {
            "code": TOO_MANY_CLIENTS,
            "message": f"too many clients: {limit} are attached to bus {self.bus.name!r} already",
            "data": {"limit": limit},
        }
        line = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}) + "\n"
        with contextlib.suppress(OSError):
            sock.settimeout(1.0)
            sock.sendall(line.encode())
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.close()

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
            self._room.notify_all()

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

    def __repr__(self) -> str:
        return f"<ControlServer {self.bus.name!r} at {self.address}, {self.connections} clients>"
