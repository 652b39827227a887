"""The registry every process keeps: who is on the bus and what each one serves.

Each process describes itself in a *record*: its id, a label
(``host:pid``), a sequence number bumped at every change, its services, and
the commands and listeners it registered (signatures included, so callers
check arguments before anything is sent). It publishes the record:

- on ``reg.state`` whenever it changes (after subscribing, so whoever reads
  the record can already reach what it lists);
- in answer to ``reg.sync``, which a process sends when it joins or
  reconnects, and to ``proc.ID.state``;
- and says goodbye on ``reg.bye`` twice when it closes: when the close
  begins (it serves nothing new: the others drop it from their tables) and,
  with ``final``, once the work it had taken is answered (its connection
  closes next).

Each process beats on ``reg.beat`` every ``beat_interval(peer_timeout)``
seconds with its sequence number and that interval; a peer that misses a
change asks for the record again. A peer not heard from for this process's
``peer_timeout`` (but never before it missed ``MISSED_BEATS`` of its own
beats), *while this process is connected*, is gone: so a killed process
leaves the registry, but a server restart (when no one hears anyone) never
empties it, and a call is never refused as unknown because the server was
away. A peer that is gone (silent, or its final goodbye) fails the calls it
had taken (``Calls.peer_gone``); one that began to close is still watched
for silence until then.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._patterns import pattern_matches, validate_name, validate_pattern
from .._core._ratelog import RateLimitedLog
from .._core._router import Handler
from . import _wire as wire
from ._calls import RemoteService

if TYPE_CHECKING:
    from ._link import NatsLink

__all__ = ["MAX_BEAT", "MISSED_BEATS", "Peer", "Registry", "beat_interval"]

log = logging.getLogger("bus.nats")

#: A peer is never taken for gone before it missed this many of its own beats
#: (a process with a longer ``peer_timeout`` beats less often).
MISSED_BEATS = 3
#: The longest beat interval: ``busctl list --nats`` finds the buses on a
#: server by listening a second for their beats.
MAX_BEAT = 1.0
#: The beat interval of a peer that does not say it (its record is older).
DEFAULT_BEAT = 1.0
#: The most departed processes remembered, for acknowledgements that come late.
_GONE_KEPT = 1024


def beat_interval(peer_timeout: float) -> float:
    """Seconds between two heartbeats of a process whose ``peer_timeout`` is this.

    A fifth of it (five beats fit in the silence that means gone), at least
    0.05 s and at most ``MAX_BEAT``.
    """
    return min(MAX_BEAT, max(0.05, peer_timeout / 5))


def _interval(value: Any) -> float:
    """A peer's announced beat interval, or ``DEFAULT_BEAT`` if it is not a sane one."""
    sane = isinstance(value, int | float) and not isinstance(value, bool)
    if sane and math.isfinite(value) and 0 < value <= 3600:
        return float(value)
    return DEFAULT_BEAT


class Peer:
    """Another process on the bus, as its last record described it."""

    __slots__ = (
        "beat",
        "commands",
        "id",
        "label",
        "last_seen",
        "listeners",
        "record",
        "seq",
        "services",
    )

    def __init__(self, record: dict[str, Any]) -> None:
        self.id: str = record["id"]
        self.label: str = record["label"]
        self.seq: int = record["seq"]
        self.record = record
        self.services: list[dict[str, Any]] = record["services"]
        self.commands: list[dict[str, Any]] = record["commands"]
        self.listeners: list[dict[str, Any]] = record["listeners"]
        self.beat = _interval(record.get("beat"))
        self.last_seen = time.monotonic()


def _checked(record: Any) -> dict[str, Any]:
    """``record`` if it is a well-formed record, else ``ValueError`` saying why."""
    if not isinstance(record, dict):
        raise ValueError("not an object")
    for key, kind in (("id", str), ("label", str), ("seq", int)):
        if not isinstance(record.get(key), kind):
            raise ValueError(f"{key!r} missing or not a {kind.__name__}")
    for key in ("services", "commands", "listeners"):
        if not isinstance(record.get(key), list):
            raise ValueError(f"{key!r} missing or not a list")
    for entry in record["commands"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise ValueError("a command without a token")
        validate_name(entry.get("name"), "command name")
        validate_name(entry.get("service"), "service name")
    for entry in record["listeners"]:
        if not isinstance(entry, dict):
            raise ValueError("a listener that is not an object")
        validate_pattern(entry.get("pattern"))
    return record


class Registry:
    """Every peer's record, and the router's table of remote commands built from them.

    Written on the loop thread; read from any (``wait`` and the snapshot
    methods take the condition's lock).
    """

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.peers: dict[str, Peer] = {}
        self.seq = 0  # of this process's own record
        self._cond = threading.Condition()
        self._destinations: dict[str, RemoteService] = {}
        self._handlers: dict[str, tuple[tuple[Any, ...], Handler]] = {}
        self._log = RateLimitedLog(log)
        self.expired = 0
        #: Peers whose close has begun: out of the tables, still watched for silence.
        self.leaving: dict[str, Peer] = {}
        #: Peers gone (oldest first): id -> (label, why), for acknowledgements that come late.
        self.gone: dict[str, tuple[str, str]] = {}

    # -- this process -----------------------------------------------------------------

    def record(self, commands: list[dict[str, Any]], listeners: list[dict[str, Any]]) -> bytes:
        """This process's record (JSON), with a new sequence number."""
        link = self.link
        self.seq += 1
        services = [
            {"name": rt.name, "concurrency": rt.concurrency, "state": rt.state}
            for rt in link.bus.runtimes()
            if rt.service is not None
        ]
        return wire.encode(
            {
                "v": 1,
                "id": link.process_id,
                "label": link.label,
                "pid": link.bus.pid,
                "started_at": link.bus.started_at,
                "seq": self.seq,
                "beat": link.beat_interval,
                "services": services,
                "commands": commands,
                "listeners": listeners,
            }
        )

    # -- peers (the loop) -------------------------------------------------------------

    def update(self, data: bytes) -> None:
        """A record arrived: keep it if it is newer than what we have."""
        try:
            record = _checked(wire.decode(data))
        except (ValueError, TypeError) as exc:
            self._log.warning("ignored a malformed registry record: %s", exc)
            return
        if record["id"] == self.link.process_id or record["id"] in self.leaving:
            return  # ours, or of a process whose close has begun: it serves nothing new
        with self._cond:
            known = self.peers.get(record["id"])
            if known is not None and known.seq >= record["seq"]:
                known.last_seen = time.monotonic()
                return
            self.peers[record["id"]] = Peer(record)
            self.gone.pop(record["id"], None)  # taken for gone, but it speaks: back
            self._rebuild()
            self._cond.notify_all()

    def beat(self, data: bytes) -> str | None:
        """A heartbeat: the id of a peer whose record we lack or have stale, else ``None``."""
        try:
            beat = wire.decode(data)
            pid, seq = beat["id"], beat["seq"]
        except (ValueError, TypeError, KeyError):
            return None
        if not isinstance(pid, str) or pid == self.link.process_id:
            return None
        closing = self.leaving.get(pid)
        if closing is not None:
            closing.last_seen = time.monotonic()  # closing, still alive
            return None
        peer = self.peers.get(pid)
        if peer is None or (isinstance(seq, int) and seq > peer.seq):
            return pid
        peer.beat = _interval(beat.get("beat"))
        peer.last_seen = time.monotonic()
        return None

    def forget(self, process_id: str) -> None:
        """A peer began to close: out of the tables, but watched until it is gone."""
        with self._cond:
            peer = self.peers.pop(process_id, None)
            if peer is not None:
                peer.last_seen = time.monotonic()
                self.leaving[process_id] = peer
                self._rebuild()
                self._cond.notify_all()

    def departed(self, process_id: str, why: str) -> None:
        """A peer is gone (``why``: how we know): drop it, and fail the calls it had taken.

        An unknown ``process_id`` is remembered too: an acknowledgement from a
        process whose record never reached us may still come.
        """
        with self._cond:
            peer = self.peers.pop(process_id, None)
            leaving = self.leaving.pop(process_id, None)
            known = peer or leaving
            self.gone[process_id] = (known.label if known else process_id, why)
            while len(self.gone) > _GONE_KEPT:
                del self.gone[next(iter(self.gone))]
            if peer is not None:
                self._rebuild()
            self._cond.notify_all()
        self.link.calls.peer_gone(process_id, why)

    def expire(self) -> int:
        """Drop peers silent too long (only while connected); fail the calls they had taken.

        Too long is this process's ``peer_timeout``, but never less than
        ``MISSED_BEATS`` of the peer's own beats. Returns how many went.
        """
        if not self.link.loop.connected:
            return 0
        gone = 0
        now = time.monotonic()
        own = self.link.peer_timeout
        for peer in [*self.peers.values(), *self.leaving.values()]:
            limit = max(own, MISSED_BEATS * peer.beat)
            if peer.last_seen < now - limit:
                self.expired += 1
                log.warning(
                    "process %s left bus %r without a word (silent for %g s)",
                    peer.label,
                    self.link.bus.name,
                    limit,
                )
                self.departed(peer.id, f"was silent for {limit:g} s")
                gone += 1
        return gone

    def grace(self) -> None:
        """Restart every peer's clock: after a reconnect, no one could be heard."""
        now = time.monotonic()
        for peer in [*self.peers.values(), *self.leaving.values()]:
            peer.last_seen = now

    # -- the registry's traffic (the loop) ------------------------------------------------

    async def on_bye(self, msg: Any) -> None:
        """A goodbye on ``reg.bye``: a close begins, or (``final``) the process is gone."""
        try:
            bye = wire.decode(msg.data)
            process_id = bye["id"]
        except (ValueError, TypeError, KeyError):
            return
        if not isinstance(process_id, str):
            return
        if bye.get("final") is True:
            # Gone: what it answered was sent before this, so read it first;
            # a call it took and did not answer fails now.
            await self._read_replies()
            self.departed(process_id, "left the bus")
        else:
            self.forget(process_id)  # closing: it takes no new work
        self.link.serving.registry_changed()

    async def _read_replies(self) -> None:
        """Let the replies already received reach their calls (they wait in the
        inbox's queue, read in a task of its own)."""
        sub = self.link.calls.sub
        for _ in range(10_000):
            if sub is None or not sub.pending_msgs:
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the last one taken from the queue is handled

    async def on_beat(self, msg: Any) -> None:
        """A heartbeat on ``reg.beat``: ask its process for its record if ours is stale."""
        stale = self.beat(msg.data)
        if stale is not None:
            link = self.link
            await link.loop.nc.publish(
                link.subjects.of_process(stale, "state"),
                b"",
                reply=link.subjects.of_process(link.process_id, "records"),
            )

    def tick(self) -> None:
        """Every ``beat_interval``: drop the silent peers, then beat."""
        link = self.link
        if self.expire():
            link.serving.registry_changed()
        # A closing process beats on until it is closed: the calls it took
        # are still its own, and the others watch it for silence meanwhile.
        if link.loop.connected and not link.closing:
            beat = {"id": link.process_id, "seq": self.seq, "beat": link.beat_interval}
            link.loop.publish(link.subjects.reg_beat, wire.encode(beat))

    # -- reading (any thread) -----------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` holds after some registry change, or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def snapshot(self) -> list[Peer]:
        """The peers, oldest first."""
        with self._cond:
            return sorted(self.peers.values(), key=lambda p: (p.record.get("started_at", 0), p.id))

    def remote_listeners(self, event: str, served: set[str]) -> int:
        """How many listeners of other processes ``event`` reaches.

        A replicated listener counts once, and not at all when this process
        has an instance of it (its group is in ``served``).
        """
        seen = set(served)
        count = 0
        for peer in list(self.peers.values()):
            for entry in peer.listeners:
                if not pattern_matches(entry["pattern"], event):
                    continue
                group = entry.get("group")
                if group and not entry.get("broadcast"):
                    if group in seen:
                        continue
                    seen.add(group)
                count += 1
        return count

    # -- the router's table (under the lock) ---------------------------------------------------

    def _rebuild(self) -> None:
        """Give the router the commands of every peer, the oldest peer first on a clash."""
        link = self.link
        router = link.bus.router
        table: dict[str, Handler] = {}
        handlers: dict[str, tuple[tuple[Any, ...], Handler]] = {}
        peers = sorted(self.peers.values(), key=lambda p: (p.record.get("started_at", 0), p.id))
        for peer in peers:
            for entry in peer.commands:
                name = entry["name"]
                if name in table:
                    continue
                key = (
                    entry["token"],
                    entry["service"],
                    wire.encode(entry.get("params")),
                    entry.get("returns"),
                    _result_class(entry),
                    entry.get("doc"),
                    bool(entry.get("readonly")),
                    entry.get("qualname"),
                )
                kept = self._handlers.get(name)
                if kept is not None and kept[0] == key:
                    handler = kept[1]  # unchanged: keep its statistics
                else:
                    handler = self._handler(entry, router.next_seq())
                table[name] = handler
                handlers[name] = (key, handler)
        self._handlers = handlers
        router.set_remote(table)

    def _handler(self, entry: dict[str, Any], seq: int) -> Handler:
        token, service = entry["token"], entry["service"]
        destination = self._destinations.get(token)
        if destination is None or destination.name != service:
            destination = self._destinations[token] = RemoteService(self.link, service, token)
        signature = wire.rebuild_signature(entry.get("params"), entry.get("returns"))
        doc = entry.get("doc") if isinstance(entry.get("doc"), str) else None
        qualname = str(entry.get("qualname") or entry["name"])
        stub = wire.RemoteStub(qualname, signature, doc, _result_class(entry))
        return Handler(
            "command",
            entry["name"],
            stub,
            destination,
            seq,
            readonly=bool(entry.get("readonly")),
            doc=doc,
        )


def _result_class(entry: dict[str, Any]) -> tuple[str, str] | None:
    """``(module, qualname)`` of a command's announced result class, if well formed."""
    found = entry.get("result_class")
    if isinstance(found, dict):
        module, qualname = found.get("module"), found.get("qualname")
        if isinstance(module, str) and isinstance(qualname, str) and module and qualname:
            return module, qualname
    return None
