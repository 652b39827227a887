"""Finding a wait cycle that runs through several processes.

Each call sent by a handler carries its *chain* (``Bus-Chain``): the calls,
each sent by one ``service@process`` while handling the one before, that
led to it, as ``[node, process id, call token]``. When a call reaches a
service that is in its own chain, a cycle is possible: that service sent
the chain's earlier call and may be blocked on it. It is a deadlock when

1. that service is stuck (all its threads wait, or for an async service
   every ``concurrency`` slot awaits) and one of them waits on the call it
   put in the chain, and
2. every later link waits on the call it sent: checked here for this
   process's links, and by asking each other process (``proc.ID.probe``)
   for theirs.

Then the call that came back is failed with ``DeadlockError`` naming the
cycle (``b@host:2 -> a@host:1 -> b@host:2``): its waiter, the last link,
raises it, as a local waiter would. A call that merely *might* close a
cycle (a link not waiting yet) is looked at again every ``RECHECK`` seconds
while it waits in the mailbox, so a cycle is found within seconds of
closing, and a call whose sender never waits on it is never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from . import _wire as wire

if TYPE_CHECKING:
    from .._core._future import CommandFuture
    from .._core._router import Handler
    from ._link import NatsLink

__all__ = ["RECHECK", "Cycles", "waits_of"]

#: Seconds between two looks at a call that may close a cycle.
RECHECK = 0.2
#: Seconds a process has to say which of its calls are waited on.
PROBE_TIMEOUT = 1.0


def waits_of(runtime: Any) -> tuple[list[CommandFuture], bool]:
    """What a service's threads and async tasks wait on, and whether nothing is free.

    A thread blocked in ``result()`` holds itself; an async handler's task
    awaiting a command holds one of the service's ``concurrency`` slots, and
    a loop thread blocked in ``result()`` stops every slot of its service
    (as the in-process ``WaitGraph`` counts them).
    """
    waiting: list[CommandFuture] = []
    whole = False
    for worker in list(runtime.workers):
        if worker.waiting is not None:
            waiting.append(worker.waiting)
            whole = whole or worker.tasks is not None
        for run in list(worker.tasks or ()):
            if run.waiting is not None:
                waiting.append(run.waiting)
    return waiting, whole or len(waiting) >= runtime.concurrency


class Cycles:
    """The calls of this process that may close a cycle through other processes."""

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.found = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, future: CommandFuture, handler: Handler, chain: list[Any]) -> None:
        """Look after a call from another process whose chain runs through here (the loop)."""
        me = f"{handler.destination.name}@{self.link.label}"
        pid = self.link.process_id
        indexes = [i for i, (node, proc, _) in enumerate(chain) if node == me and proc == pid]
        if not indexes:
            return
        task = self.link.loop.loop.create_task(self._follow(future, handler, chain, indexes[-1]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _follow(
        self, future: CommandFuture, handler: Handler, chain: list[Any], index: int
    ) -> None:
        give_up = time.monotonic() + self.link.remote_timeout
        while not future.done() and not future.running() and time.monotonic() < give_up:
            cycle = await self._cycle(handler, chain, index)
            if cycle is not None:
                if future.done() or future.running():
                    return
                future.deadlock = cycle  # type: ignore[attr-defined]
                if future.cancel():
                    self.found += 1
                return
            await asyncio.sleep(RECHECK)

    async def _cycle(self, handler: Handler, chain: list[Any], index: int) -> list[str] | None:
        link = self.link
        runtime: Any = handler.destination
        waiting, stuck = waits_of(runtime)
        if not stuck:
            return None  # a thread or slot is free: the call will run
        call = link.calls.pending.get(chain[index][2])
        if call is None or not any(f is call.future for f in waiting):
            return None
        asks: dict[str, list[str]] = {}
        for _, process, token in chain[index + 1 :]:
            if process == link.process_id:
                if not link.calls.waited_on(token):
                    return None
            else:
                asks.setdefault(process, []).append(token)
        for process, tokens in asks.items():
            if not await self._waited_on(process, tokens):
                return None
        return [chain[-1][0], *(node for node, _, _ in chain[index:])]

    async def _waited_on(self, process: str, tokens: list[str]) -> bool:
        subject = self.link.subjects.of_process(process, "probe")
        try:
            msg = await self.link.loop.nc.request(
                subject, wire.encode({"tokens": tokens}), timeout=PROBE_TIMEOUT
            )
            answer = wire.decode(msg.data)
        except Exception:
            return False
        waiting = answer.get("waiting") if isinstance(answer, dict) else None
        return isinstance(waiting, list) and len(waiting) == len(tokens) and all(waiting)

    async def on_probe(self, msg: Any) -> None:
        """Another process asks which of our calls a thread waits on."""
        if not msg.reply:
            return
        try:
            tokens = wire.decode(msg.data)["tokens"]
            answer = [self.link.calls.waited_on(str(t)) for t in tokens[:64]]
        except (ValueError, TypeError, KeyError):
            answer = []
        with contextlib.suppress(Exception):
            await self.link.loop.nc.publish(msg.reply, wire.encode({"waiting": answer}))
