"""Attach to a running bus, or start the embedded sample bus when none runs.

    from busctl._embedded import connect_or_embed

    client, bus = connect_or_embed(None)
    try:
        if bus is not None:
            print("no bus running: started the sample services in this process")
        print(client.execute("say_hello", ["Alice"]))
    finally:
        client.close()
        if bus is not None:
            bus.close()

This is the out-of-the-box experience of ``busctl repl`` and ``busctl tui``
(DESIGN.md section 5): the console always has something to show.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from ._client import Client

if TYPE_CHECKING:
    from bus import Bus

__all__ = ["EMBEDDED_NAME", "connect_or_embed", "embed_sample"]

EMBEDDED_NAME = "sample"
"""The name of the embedded bus."""


def connect_or_embed(
    target: str | None, *, nats: str | None = None, timeout: float = 5.0
) -> tuple[Client, Bus | None]:
    """Connect to the bus ``target`` names, or embed the sample bus.

    With ``target`` or ``nats`` given, only that bus will do: errors
    propagate. With neither and no bus running (nor ``$BUS_ADDRESS``), start
    ``Bus(name="sample")`` with the sample services in this process, its
    control endpoint on a private socket in a fresh temporary directory (so
    ``busctl list`` elsewhere does not see it), and connect to that.

    Returns:
        ``(client, bus)``: ``bus`` is the embedded bus, or ``None`` when the
        client attached to a bus in another process. The caller closes the
        client, then the bus.

    Raises:
        bus.control.NoBusError: ``target`` names no running bus.
        bus.control.AmbiguousBusError: several buses run and ``target`` is None.
        ConnectionLost: the bus's socket refused the connection.
    """
    from bus.control import NoBusError

    if nats:
        return Client.connect(target, nats=nats, timeout=timeout), None
    try:
        return Client.connect(target, timeout=timeout), None
    except NoBusError:
        if target is not None:
            raise
    return _embed(timeout)


def embed_sample(*, timeout: float = 5.0) -> tuple[Client, Bus]:
    """Start the embedded sample bus whether or not another runs, and connect to it.

    What ``connect_or_embed`` falls back to, for a verb asked for it by name
    (``busctl schema --embedded``). The caller closes the client, then the bus.
    """
    return _embed(timeout)


def _embed(timeout: float) -> tuple[Client, Bus]:
    import sample_services
    from bus import Bus

    directory = Path(tempfile.mkdtemp(prefix="busctl-"))
    # nats="": the demo stays in this process even when BUS_NATS_URL names a server.
    bus = Bus(name=EMBEDDED_NAME, control=directory / f"{EMBEDDED_NAME}.sock", nats="")
    # The directory goes when the bus object does (or at exit): close() removes
    # the socket, and nothing else is ever put there.
    weakref.finalize(bus, shutil.rmtree, directory, ignore_errors=True)
    try:
        sample_services.start(bus, first_tick=0.2)  # activity on screen at once
        client = Client.connect(
            str(bus.address or directory / f"{EMBEDDED_NAME}.sock"), timeout=timeout
        )
    except BaseException:
        with contextlib.suppress(Exception):
            bus.close()
        raise
    return client, bus
