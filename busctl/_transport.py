"""The seam of the control client: how its requests reach a bus and the answers come back.

    transport = SocketTransport(sock, Path("/run/user/1000/bus/home.sock"))
    client = Client(transport)                 # starts it: answers flow to the client

``Client`` (``busctl._client``) frames requests, matches replies to them and
hands notifications to their subscription; a ``Transport`` only carries the
framed lines. Two implement it: ``SocketTransport`` here (one Unix socket,
one JSON line per message, a reader thread) and ``NatsTransport``
(``busctl._nats``: NATS request/reply to ``bus.NAME.control``, feeds on
their own subjects). Every face above the client works the same over either.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from bus.control import protocol

from ._remote import ConnectionLost

__all__ = ["Receiver", "SocketTransport", "Transport"]


class Receiver(Protocol):
    """What a transport hands its traffic to (the ``Client``).

    Its methods are called on the transport's own thread (a socket's reader,
    NATS's loop), one message at a time, in the order they arrived.
    """

    @property
    def closed(self) -> bool:
        """Whether the client is closed (a transport then reports nothing more)."""

    def received(self, message: dict[str, Any]) -> None:
        """A JSON-RPC message arrived: a reply, or a notification."""

    def refused(self, request_id: int, error: BaseException) -> None:
        """Request ``request_id`` will get no reply: fail it with ``error``."""

    def ended(self, error: BaseException | None) -> None:
        """The transport is gone for good (``error``: why; ``None``: closed by us)."""

    def bad_line(self, where: object) -> None:
        """A message that is not JSON arrived (counted, logged once)."""


class Transport(Protocol):
    """Carries one client's requests to a bus and its answers back.

    Attributes:
        address: where the bus is, as the console shows it (a socket path,
            or ``nats://HOST:PORT bus NAME``).
    """

    address: Path | str

    def start(self, receiver: Receiver) -> None:
        """Begin delivering what arrives to ``receiver``."""

    def send(
        self, request_id: int, method: str, params: dict[str, Any] | None, line: bytes
    ) -> None:
        """Send one framed request (any thread; may block briefly).

        Raises:
            OSError or ConnectionLost: it cannot be sent (the client then ends).
        """

    def feed(self, params: dict[str, Any]) -> dict[str, Any]:
        """Get ready for a ``subscribe`` with ``params``; return the params to send."""

    def feed_opened(self, params: dict[str, Any]) -> None:
        """The bus accepted the ``subscribe`` sent with ``params`` (``feed``'s)."""

    def feed_closed(self, params: dict[str, Any]) -> None:
        """That subscription ended, or the bus refused it: forget it. Idempotent."""

    def close(self) -> None:
        """Stop: nothing more is sent or received. Idempotent, never blocks long."""

    def join(self, timeout: float) -> None:
        """Wait for the transport's thread to end (not from that thread)."""


class SocketTransport:
    """One Unix socket to one bus: JSON lines both ways, read by a thread of its own.

    Args:
        sock: a connected socket whose peer was checked (``_locate.open_socket``).
        address: its path.
    """

    def __init__(self, sock: socket.socket, address: Path) -> None:
        self.address: Path | str = address
        self._path = address
        self._sock = sock
        self._write_lock = threading.Lock()
        self._receiver: Receiver | None = None
        self._reader = threading.Thread(
            target=self._read_loop, name=f"busctl-client:{address.name}", daemon=True
        )

    def start(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._reader.start()

    def send(
        self, request_id: int, method: str, params: dict[str, Any] | None, line: bytes
    ) -> None:
        try:
            with self._write_lock:
                self._sock.sendall(line)
        except OSError:
            if threading.current_thread() is not self._reader:
                # The server may have said why before it hung up (too many
                # clients, say): let the reader take that in first.
                self._reader.join(timeout=1.0)
            raise

    def feed(self, params: dict[str, Any]) -> dict[str, Any]:
        return params  # notifications come on this very connection

    def feed_opened(self, params: dict[str, Any]) -> None:
        pass

    def feed_closed(self, params: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    def join(self, timeout: float) -> None:
        if self._reader.is_alive() and threading.current_thread() is not self._reader:
            self._reader.join(timeout)

    def _read_loop(self) -> None:
        receiver = self._receiver
        assert receiver is not None
        error: BaseException | None = ConnectionLost("the bus closed the connection")
        try:
            with self._sock.makefile("rb") as reader:
                self._read_lines(reader, receiver)
        except OSError as exc:
            error = exc
        except Exception as exc:  # a bug here must still fail the pending requests
            import logging

            logging.getLogger("busctl._client").exception("client reader failed")
            error = exc
        if receiver.closed:
            return
        receiver.ended(error)

    def _read_lines(self, reader: Iterable[bytes], receiver: Receiver) -> None:
        for line in reader:
            if not line.strip():
                continue
            try:
                message = protocol.loads(line)
            except protocol.ProtocolError:
                if receiver.closed:  # a line cut short by our own close()
                    return
                receiver.bad_line(self._path)
                continue
            receiver.received(message)
