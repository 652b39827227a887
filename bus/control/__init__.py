"""The control endpoint: where a bus listens for consoles, and how to find it.

    from bus import Bus
    from bus.control import discover, resolve

    with Bus(name="home", control=True) as bus:   # listens on default_address("home")
        print(bus.address)                        # /run/user/1000/bus/home.sock
        print([b["name"] for b in discover()])    # ['home']
        print(resolve(None))                      # the one running bus's socket

A bus built with ``control=True`` (or a socket path) serves the JSON-RPC 2.0
line protocol of ``docs/protocol.md`` on a Unix socket: the socket is ``0600``
in a directory owned by the user that no one else may write to (``0700`` for
the default one), and every peer's uid is checked, by the server and by the
client. A bus that is full says so (``BusFullError``), and ``discover``
lists it as refusing rather than leaving it out.
This module holds the addressing rules (``socket_dir``, ``default_address``,
``parse_address``), discovery of the buses running (``discover``,
``resolve``), the server (``ControlServer``), and ``answer``, which answers
a request in process for a console that holds the bus itself. It
re-exports names from private modules and defines nothing itself.
"""

from __future__ import annotations

from . import protocol
from ._addr import (
    AddressInUseError,
    AmbiguousBusError,
    BusFullError,
    ForeignBusError,
    NoBusError,
    SocketDirError,
    check_peer,
    default_address,
    discover,
    parse_address,
    resolve,
    socket_dir,
)
from ._local import RequestError, answer
from ._server import ControlServer

__all__ = [
    "AddressInUseError",
    "AmbiguousBusError",
    "BusFullError",
    "ControlServer",
    "ForeignBusError",
    "NoBusError",
    "RequestError",
    "SocketDirError",
    "answer",
    "check_peer",
    "default_address",
    "discover",
    "parse_address",
    "protocol",
    "resolve",
    "socket_dir",
]
