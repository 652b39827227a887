"""The control endpoint: where a bus listens for consoles, and how to find it.

    from bus import Bus
    from bus.control import discover, resolve

    with Bus(name="home", control=True) as bus:   # listens on default_address("home")
        print(bus.address)                        # /run/user/1000/bus/home.sock
        print([b["name"] for b in discover()])    # ['home']
        print(resolve(None))                      # the one running bus's socket

A bus built with ``control=True`` (or a socket path) serves the JSON-RPC 2.0
line protocol of ``docs/protocol.md`` on a Unix socket: the socket is ``0600``
in a ``0700`` directory owned by the user, and every peer's uid is checked.
This module holds the addressing rules (``socket_dir``, ``default_address``,
``parse_address``), discovery of the buses running (``discover``,
``resolve``) and the server (``ControlServer``). It re-exports names from
private modules and defines nothing itself.
"""

from __future__ import annotations

from ._control_addr import (
    AddressInUseError,
    AmbiguousBusError,
    NoBusError,
    default_address,
    discover,
    parse_address,
    resolve,
    socket_dir,
)
from ._control_server import ControlServer

__all__ = [
    "AddressInUseError",
    "AmbiguousBusError",
    "ControlServer",
    "NoBusError",
    "default_address",
    "discover",
    "parse_address",
    "resolve",
    "socket_dir",
]
