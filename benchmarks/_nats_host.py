"""The other process of the NATS benchmark: a bare nats-py responder and a bus host.

    python -m benchmarks._nats_host URL BUS_NAME

Serves ``bench.bare`` with nats-py alone (the reference), and hosts on bus
``BUS_NAME`` an ``echo`` command and a listener of ``bench.tick`` that counts.
Prints ``ready`` when both serve; runs until its standard input ends.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import nats

from bus import Bus, Service, command, listener


class Bench(Service):
    """What the benchmark calls and fires at."""

    name = "bench"

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    @command("bench.echo")
    def echo(self, value: Any) -> Any:
        return value

    @listener("bench.tick")
    def tick(self, i: int) -> None:
        self.ticks += 1

    @command("bench.ticks")
    def count(self) -> int:
        return self.ticks


def _bare(url: str, ready: threading.Event, stop: threading.Event) -> None:
    async def serve() -> None:
        nc = await nats.connect(url)

        async def respond(msg: Any) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("bench.bare", cb=respond)
        await nc.flush()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await nc.close()

    asyncio.run(serve())


def main() -> None:
    url, name = sys.argv[1:3]
    ready, stop = threading.Event(), threading.Event()
    bare = threading.Thread(target=_bare, args=(url, ready, stop), name="bench-bare", daemon=True)
    bare.start()
    bus = Bus(name=name, nats=url, tracing=False)
    bus.add_service(Bench())
    assert bus._nats is not None
    bus._nats.settle()
    ready.wait(10)
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    bare.join(5)
    bus.close()


if __name__ == "__main__":
    main()
