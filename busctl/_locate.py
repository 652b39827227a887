"""Finding a bus's socket without connecting, and opening it when found.

    address, named = locate("home")      # ~/.../bus/home.sock, True
    sock = open_socket(address, timeout=5.0)
    client = connect_socket(Client, "home", timeout=5.0)   # what Client.connect("home") does

``locate`` reads addresses the way ``bus.control`` writes them (a name, a
path, ``unix:path=...``, ``$BUS_ADDRESS``) but asks no bus anything: the
client then connects once (``connect_socket``, for ``Client.connect``), and
asks discovery only when nothing answers there. ``open_socket`` checks that
the server runs as this user before a byte is sent.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bus import BusError
from bus.control.protocol import ErrorCode

from ._remote import ConnectionLost
from ._transport import SocketTransport

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["connect_socket", "locate", "open_socket", "unreachable"]


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


def unreachable(address: Path | None, exc: OSError) -> ConnectionLost:
    return ConnectionLost(f"cannot connect to {address}: {exc.strerror or exc}")


def open_socket(address: Path, timeout: float) -> socket.socket:
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
        raise unreachable(address, exc) from exc
    sock.settimeout(None)
    return sock


def connect_socket(cls: type[Client], target: str | None, timeout: float) -> Client:
    """A ``Client`` of the bus whose socket ``target`` names, its ``describe`` fetched.

    Discovery (``bus.control.resolve``) is asked only when nothing answers
    where a name (or the one socket) says.

    Raises:
        bus.control.NoBusError / AmbiguousBusError: nothing (or too much) to attach to.
        bus.control.BusFullError: the bus is up but turns clients away.
        bus.control.ForeignBusError: another user's process serves the socket.
        ConnectionLost: the socket refused or closed.
    """
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
        refusal = client.refusal
        if refusal is not None and refusal.code == ErrorCode.TOO_MANY_CLIENTS:
            limit = refusal.data.get("limit")
            raise BusFullError(
                refusal.message, address, limit if isinstance(limit, int) else None
            ) from exc
        raise
    return client
