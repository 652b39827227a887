"""``NatsLink``: one process's membership of a bus on NATS, assembled.

``Bus(nats=URL)`` makes one. It connects (or raises ``TransportError``),
subscribes to the registry, asks the processes already there for their
records, then serves this process's commands, listeners and ``$SRV``
answers and announces them, and does so again whenever the router's local
tables change. It plugs into the core through its two seams only: the
router's table of remote commands (``Router.set_remote``) and the event
outlet (``BusCore.outlet``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.nuid import NUID

from .._core._router import Handler
from .._core._runtime import Runtime
from . import _wire as wire
from ._calls import SWEEP, Calls
from ._cycles import Cycles
from ._loop import Loop
from ._micro import Micro
from ._registry import Registry, beat_interval
from ._serve import Listening, Serving
from ._subjects import POOL, QUEUE, Subjects, subject_for, token

if TYPE_CHECKING:
    from .._observe._hub import Hub
    from ._control import ControlResponder

__all__ = ["NatsLink"]

log = logging.getLogger("bus.nats")

#: Seconds a joining process waits for the others' records at most...
SYNC_WAIT = 0.3
#: ...and once some came, for more after the last one.
SYNC_QUIET = 0.05


_links = itertools.count(1)


def _label(pid: int) -> str:
    """``host:pid``, how processes are named to people; ``host:pid#N`` for a second
    bus joined from the same process (tests, mostly), so that names stay unique."""
    n = next(_links)
    label = f"{socket.gethostname().split('.')[0]}:{pid}"
    return label if n == 1 else f"{label}#{n}"


class NatsLink:
    """One process's part in bus ``bus.name`` on the NATS server at ``url``.

    Args:
        bus: the ``bus.Bus`` it serves (typed loosely: this floor sits below it).
        url: the NATS server.
        remote_timeout: the deadline of every call to another process.
        peer_timeout: seconds of silence after which another process is
            taken for gone (and the calls it had taken fail); this process
            beats every ``beat_interval(peer_timeout)`` seconds.
    """

    def __init__(self, bus: Any, url: str, *, remote_timeout: float, peer_timeout: float) -> None:
        self.bus = bus
        self.url = url
        self.remote_timeout = remote_timeout
        self.peer_timeout = peer_timeout
        self.beat_interval = beat_interval(peer_timeout)
        self.process_id = NUID().next().decode()
        self.label = _label(bus.pid)
        #: What this process answers first to a call it takes from a bus process.
        self.ack = wire.encode([self.process_id, self.label])
        self.subjects = Subjects(bus.name, self.process_id)
        self.leaving = False  # close() has begun: serve nothing new
        self.closing = False  # close() is ending: send nothing new
        self.calls = Calls(self)
        self.registry = Registry(self)
        self.serving = Serving(self)
        self.micro = Micro(self)
        self.cycles = Cycles(self)
        self.control: ControlResponder | None = None
        self._dirty = False
        self._resync_lock: asyncio.Lock | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop = Loop(f"bus:{bus.name}/nats", self._on_state, self.serving.slow)
        self.loop.connect(url, f"bus {bus.name} {self.label}")
        try:
            self.loop.run(self._start(), 15.0)
        except BaseException:
            self.loop.stop()
            raise
        bus.router.on_change = self.changed
        bus.outlet = self.serving.outlet

    # -- what the other modules ask ---------------------------------------------------

    def hub(self) -> Hub | None:
        """The bus's observer, if anything observes it."""
        hub: Hub | None = self.bus._observing
        return hub

    def token_of(self, destination: Any) -> str:
        """The subject token of a local service (or of this process's pool)."""
        if getattr(destination, "elastic", False):
            return f"{POOL}~{self.process_id}"
        return token(destination.name)

    def services(self) -> list[Runtime]:
        """The local services (not the pool)."""
        return [rt for rt in self.bus.runtimes() if rt.service is not None]

    def commands_of(self, runtime: Runtime) -> list[Handler]:
        """The local commands a runtime handles."""
        return [h for h in self.bus.router.commands() if h.destination is runtime]

    def wire_attributes(self, service_token: str, command: str) -> dict[str, Any]:
        """The messaging attributes of a call's span."""
        return {
            "messaging.system": "nats",
            "messaging.destination.name": self.subjects.command(service_token, command),
            "messaging.consumer.group.name": QUEUE,
            "server.address": self.loop.server_address,
            "server.port": self.loop.server_port,
        }

    def event_attributes(self, subject: str, group: str | None) -> dict[str, Any]:
        """The messaging attributes of an event's span (``group`` for a consumer)."""
        attributes: dict[str, Any] = {
            "messaging.system": "nats",
            "bus.subject": subject,
            "server.address": self.loop.server_address,
            "server.port": self.loop.server_port,
        }
        if group is not None:
            attributes["messaging.consumer.group.name"] = group
        return attributes

    # -- starting (the loop) ------------------------------------------------------------

    async def _start(self) -> None:
        self._resync_lock = asyncio.Lock()
        s = self.subjects
        loop = self.loop
        self.calls.sub = await loop.subscribe(self.calls.inbox + "*", self.calls.on_reply)
        await loop.subscribe(s.reg_state, self._on_state_record)
        await loop.subscribe(s.of_process(self.process_id, "records"), self._on_state_record)
        await loop.subscribe(s.reg_bye, self.registry.on_bye)
        await loop.subscribe(s.reg_beat, self.registry.on_beat)
        await loop.subscribe(s.reg_sync, self._on_sync)
        await loop.subscribe(s.of_process(self.process_id, "state"), self._on_sync)
        await loop.subscribe(s.of_process(self.process_id, "probe"), self.cycles.on_probe)
        from ._control import ControlResponder

        self.control = ControlResponder(self)
        await self.control.start()
        await self._sync()
        self._every(SWEEP, self.calls.sweep)
        self._every(self.beat_interval, self.registry.tick)
        await self._resync()

    def _every(self, interval: float, fn: Callable[[], None]) -> None:
        def tick() -> None:
            try:
                fn()
            except Exception:
                log.exception("a NATS timer failed")
            if not self.closing:
                self._timers.append(self.loop.loop.call_later(interval, tick))
                if len(self._timers) > 16:
                    del self._timers[:-4]

        self._timers.append(self.loop.loop.call_later(interval, tick))

    async def _sync(self) -> None:
        """Ask the processes on the bus for their records; wait briefly for them."""
        before = len(self.registry.peers)
        await self.loop.nc.publish(
            self.subjects.reg_sync, b"", reply=self.subjects.of_process(self.process_id, "records")
        )
        await self.loop.nc.flush(timeout=2)
        deadline = time.monotonic() + SYNC_WAIT
        count = before
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            if len(self.registry.peers) != count:
                count = len(self.registry.peers)
                quiet_since = time.monotonic()
            elif count > before and time.monotonic() - quiet_since > SYNC_QUIET:
                break

    # -- the local tables (any thread, then the loop) ---------------------------------

    def changed(self) -> None:
        """The router's local tables changed (any thread): serve and announce anew, soon."""
        self.serving.registry_changed()  # the counts of listeners reached
        if not self._dirty and not self.leaving:
            self._dirty = True
            self.loop.call_soon(self._schedule_resync)

    def _schedule_resync(self) -> None:
        self._task(self._resync())

    def _task(self, coro: Any) -> None:
        """Run ``coro`` on the loop, kept until it ends (and cancelled at close)."""
        task = self.loop.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resync(self) -> None:
        assert self._resync_lock is not None
        async with self._resync_lock:
            self._dirty = False
            if self.leaving:
                return
            await self._serve_commands()
            await self._serve_listeners()
            await self._serve_micro()
            await self._announce()

    def _command_entries(self) -> list[dict[str, Any]]:
        entries = []
        for h in self.bus.router.commands():
            if not isinstance(h.destination, Runtime):
                continue  # a stand-in (a stub) or another process's
            signature = h.binder.signature
            returns = None
            if signature is not None and signature.return_annotation is not signature.empty:
                returns = h.binder.text().rpartition(" -> ")[2]
            entries.append(
                {
                    "name": h.name,
                    "service": h.destination.name,
                    "token": self.token_of(h.destination),
                    "params": [p.to_json() for p in h.binder.params()],
                    "returns": returns,
                    "result_class": wire.result_class(h.fn, signature),
                    "signature": h.binder.text(),
                    "doc": h.doc,
                    "readonly": h.readonly,
                    "qualname": h.qualname,
                }
            )
        return entries

    def _listener_entries(self) -> list[dict[str, Any]]:
        return [
            {
                "pattern": h.name,
                "service": h.destination.name,
                "qualname": h.qualname,
                "broadcast": h.broadcast,
                "group": self.serving.group_of(h),
            }
            for h in self.bus.router.listeners()
        ]

    async def _serve_commands(self) -> None:
        wanted = {
            self.token_of(h.destination)
            for h in self.bus.router.commands()
            if isinstance(h.destination, Runtime)
        }
        serving = self.serving.services
        for tok in [t for t in serving if t not in wanted]:
            with contextlib.suppress(Exception):
                await serving.pop(tok).unsubscribe()
        for tok in sorted(wanted - set(serving)):
            serving[tok] = await self.loop.subscribe(
                self.subjects.service(tok), self.serving.on_request, queue=QUEUE
            )

    async def _serve_listeners(self) -> None:
        serving = self.serving
        current = {h: None for h in self.bus.router.listeners()}
        for handler in [h for h in serving.listening if h not in current]:
            listening = serving.listening.pop(handler)
            listening.active = False
            serving.by_sub.pop(id(listening.sub), None)
            with contextlib.suppress(Exception):
                await listening.sub.unsubscribe()
        for handler in current:
            if handler in serving.listening:
                continue
            group = serving.group_of(handler)
            subject = subject_for(self.subjects.event_prefix, handler.name)
            listening = Listening(handler, subject, group)

            async def deliver(msg: Any, listening: Listening = listening) -> None:
                await serving.on_event(listening, msg)

            listening.sub = await self.loop.subscribe(
                subject, deliver, queue=group or "", pending=max(64, self.bus.mailbox_size)
            )
            serving.listening[handler] = listening
            serving.by_sub[id(listening.sub)] = listening

    async def _serve_micro(self) -> None:
        wanted = self.micro.subjects(self.services())
        subscribed = self.micro.subscribed
        for subject in [s for s in subscribed if s not in wanted]:
            with contextlib.suppress(Exception):
                await subscribed.pop(subject).unsubscribe()
        for subject in sorted(wanted - set(subscribed)):
            subscribed[subject] = await self.loop.subscribe(subject, self.micro.on_request)

    async def _announce(self, reply: str | None = None) -> None:
        record = self.registry.record(self._command_entries(), self._listener_entries())
        self._record = record
        await self.loop.nc.publish(reply or self.subjects.reg_state, record)

    # -- the registry's traffic (the loop) ------------------------------------------------

    async def _on_state_record(self, msg: Any) -> None:
        if msg.headers and msg.headers.get("Status"):
            return  # "no responders" to our sync: no one else is on the bus yet
        self.registry.update(msg.data)
        self.serving.registry_changed()

    async def _on_sync(self, msg: Any) -> None:
        if msg.reply and not self.leaving:
            record = getattr(self, "_record", None)
            if record is not None:
                await self.loop.nc.publish(msg.reply, record)

    def _on_state(self, state: str) -> None:
        if state == "reconnected":
            # No one could hear anyone meanwhile: no one is late yet. Ask
            # for what changed, and say what we are (our subscriptions are
            # back: nats-py renews them before calling us).
            self.registry.grace()
            self._task(self._after_reconnect())

    async def _after_reconnect(self) -> None:
        with contextlib.suppress(Exception):
            await self._sync()
            if not self.leaving:  # a closing process announces nothing new
                await self._announce()

    # -- reading (any thread) ----------------------------------------------------------

    def wait_for_command(self, name: str, timeout: float | None) -> bool:
        """Block until a process on the bus serves command ``name``."""

        def known() -> bool:
            return any(h.name == name for h in self.bus.router.remote_commands())

        return self.registry.wait(known, timeout)

    def settle(self, timeout: float = 10.0) -> bool:
        """Block until this process's tables are announced, what it sent reached
        the server, and what it received is in its mailboxes (tests and
        benchmarks; not from the loop).

        A ping to the server returns after every message sent before it
        was taken in, and every message sent to us before the server
        answered is read before the answer: so once the ping returns and
        each subscription's queue is empty, nothing is left in transit here.
        """

        async def settle() -> None:
            assert self._resync_lock is not None
            if self._dirty:
                await self._resync()
            async with self._resync_lock:
                pass  # a resync under way has announced
            await self.loop._send_queued()
            await self.loop.nc.flush(timeout=int(max(1, timeout)))
            subs = list(self.loop.nc._subs.values())
            while any(sub.pending_msgs for sub in subs):
                await asyncio.sleep(0.001)

        try:
            self.loop.run(settle(), timeout)
        except Exception:
            return False
        return True

    def describe(self) -> dict[str, Any]:
        """This process's view of the bus, for ``inspect()``."""
        peers = [
            {
                "id": p.id,
                "label": p.label,
                "services": [s.get("name") for s in p.services],
                "commands": len(p.commands),
                "listeners": len(p.listeners),
                "seen_ago": round(time.monotonic() - p.last_seen, 3),
            }
            for p in self.registry.snapshot()
        ]
        loop = self.loop
        return {
            "url": self.url,
            "process": self.label,
            "id": self.process_id,
            "connected": loop.connected,
            "disconnects": loop.disconnects,
            "reconnects": loop.reconnects,
            "peers": peers,
            "peer_timeout": self.peer_timeout,
            "calls_in_flight": len(self.calls.pending),
            "retries": self.calls.retries,
            "expired": self.calls.expired,
            "orphaned": self.calls.orphaned,
            "late_replies": self.calls.late,
            "unsent_events": self.serving.unsent,
            "malformed": self.serving.malformed,
            "missing": self.serving.missing,
            "slow_consumer_drops": self.serving.slow_drops,
            "send_failures": loop.send_failures,
            "deadlocks_found": self.cycles.found,
            "peers_expired": self.registry.expired,
        }

    # -- closing -----------------------------------------------------------------------

    def leave(self) -> None:
        """``close()`` begins: say goodbye and stop taking work (any thread)."""
        if self.leaving:
            return
        self.leaving = True
        with contextlib.suppress(Exception):
            self.loop.run(self._leave(), 5.0)

    async def _leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.loop.nc.publish(self.subjects.reg_bye, wire.encode({"id": self.process_id}))
        for sub in [*self.serving.services.values(), *self.micro.subscribed.values()]:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self.serving.services.clear()
        self.micro.subscribed.clear()
        for listening in self.serving.listening.values():
            listening.active = False
            with contextlib.suppress(Exception):
                await listening.sub.unsubscribe()
        if self.control is not None:
            await self.control.stop()
        with contextlib.suppress(Exception):
            await self.loop.nc.flush(timeout=1)

    def close(self, timeout: float) -> None:
        """``close()`` ends: fail the calls in flight, close the connection (any thread)."""
        self.leave()
        self.closing = True
        self.bus.outlet = None
        self.bus.router.on_change = None
        self.bus.router.set_remote({})
        error = f"bus {self.bus.name!r} closed before the reply came"
        with contextlib.suppress(Exception):
            self.loop.run(self._close(error), max(0.5, timeout))
        self.calls.fail_all(error)  # if the loop could not
        self.loop.stop(max(0.5, timeout))

    async def _close(self, error: str) -> None:
        # The work taken is answered (close waited for it): send the answers,
        # then the final goodbye, after which the others fail what is left.
        if self.loop.connected:  # else no one hears it (and the flush would wait)
            with contextlib.suppress(Exception):
                await self.loop._send_queued()
                final = wire.encode({"id": self.process_id, "final": True})
                await self.loop.nc.publish(self.subjects.reg_bye, final)
                await self.loop.nc.flush(timeout=1)
        for timer in self._timers:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.cycles.cancel_all()
        self.calls.fail_all(error)
