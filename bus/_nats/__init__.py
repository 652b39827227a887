"""One bus across processes and machines, on NATS (``Bus(nats=URL)``).

    from bus import Bus

    with Bus(name="home", nats="nats://127.0.0.1:4222") as bus:
        bus.add_service(Lights())          # served to every process on bus "home"
        bus.wait_for_command("thermostat.set")
        bus.execute_command("thermostat.set", 21).result(timeout=5)

The floor above ``bus.control``: it may import every floor below it, and
only ``bus._bus`` imports it, lazily, when a bus is given a server, so a
bus of one process never loads it (nor nats-py). ``docs/distributed.md``
describes the semantics; the modules:

- ``_link``: ``NatsLink``, one process's membership, assembled;
- ``_loop``: the connection on its own asyncio loop thread;
- ``_subjects``: where everything lives on NATS;
- ``_wire``: bodies, headers, errors and signatures on the wire;
- ``_registry``: who is on the bus and what each process serves;
- ``_calls``: calls to other processes (``RemoteService``, replies, deadlines);
- ``_serve``: calls, listeners and events this process serves;
- ``_cycles``: wait cycles through several processes;
- ``_micro``: NATS micro discovery (``$SRV.PING|INFO|STATS``);
- ``_control`` and ``_merge``: the control protocol over NATS.
"""

from __future__ import annotations

from ._link import NatsLink

__all__ = ["NatsLink"]
