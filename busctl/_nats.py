"""The control client over NATS: the console sees a bus across processes whole.

    client = Client.connect("home", nats="nats://127.0.0.1:4222")
    client.inspect()["services"]       # each service with the processes hosting it
    buses_on("nats://127.0.0.1:4222")  # the buses on that server

``NatsTransport`` is the client's ``Transport`` (``busctl._transport``) for
a bus joined to a NATS server (``Bus(nats=URL)``, ``docs/distributed.md``).
It speaks the same JSON-RPC envelopes as the socket, one request per NATS
message to ``bus.NAME.control``, which one process of the bus answers for the
bus as a whole ("Over NATS" in ``docs/protocol.md``):

- replies come to one inbox subscription, ``INBOX.<request id>``, so the
  client matches them by id exactly as it does on a socket;
- "no responders" (no process of the bus answers right now) is asked again
  for ``NO_ONE_FOR`` seconds, since it is what a server restart looks like
  for a moment, and then ends the client: the bus has no process left;
- every request has a deadline (the process answering it may vanish), after
  which it fails with ``TimeoutError``;
- a subscription is a *feed* the client names itself: it subscribes to
  ``bus.NAME.feed.ID`` first, then asks the bus with ``"renew": ID``, so no
  notification can come before it listens, and renews the feed's lease
  every ``RENEW`` seconds (which also lets processes that joined since
  publish it).

The connection lives on one asyncio loop thread (``busctl-nats``,
``busctl._nats_connection``); the client's callbacks run there, as they run
on a socket's reader thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.control import AmbiguousBusError, NoBusError, protocol

from ._nats_connection import CONNECT_TIMEOUT, NatsConnection
from ._remote import ConnectionLost

if TYPE_CHECKING:
    from ._client import Client
    from ._transport import Receiver

__all__ = ["NatsTransport", "buses_on", "connect_nats", "subject_token"]

#: Seconds "no responders" is asked again before the bus is taken for gone.
NO_ONE_FOR = 3.0
#: Seconds between two renewals of a feed's lease (the bus keeps one 30 s).
RENEW = 5.0
#: Seconds a request may wait for its reply, beyond what the method itself takes.
GRACE = 10.0
#: Seconds ``buses_on`` listens: every process of a bus beats once a second.
LISTEN = 1.2
#: The NATS status header of a request nobody subscribes to.
_NO_RESPONDERS = "503"


def subject_token(name: str) -> str:
    """A bus name as one NATS subject token, the way the bus writes it (``.`` -> ``~``)."""
    return name.replace(".", "~")


@dataclass
class _Outgoing:
    """A request on its way: what to send again on "no responders", and until when."""

    subject: str
    payload: bytes
    method: str
    sent_at: float
    deadline: float | None
    retry_in: float = 0.05
    internal: bool = False  # a lease renewal: its reply is the transport's own


class NatsTransport:
    """The control protocol over NATS, for the bus ``name`` as a whole.

    Args:
        connection: the connection (closed with the transport).
        name: the bus's name.
    """

    def __init__(self, connection: NatsConnection, name: str) -> None:
        self.connection = connection
        self.name = name
        self.address: Path | str = f"{connection.url} bus {name}"
        base = f"bus.{subject_token(name)}"
        self.subject = f"{base}.control"
        self._feed_prefix = f"{base}.feed."
        self._inbox = connection.nc.new_inbox() + "."
        self._receiver: Receiver | None = None
        self._lock = threading.Lock()
        self._out: dict[str, _Outgoing] = {}
        self._feeds: dict[str, dict[str, Any]] = {}  # feed id -> its subscribe params
        self._renewed: dict[str, float] = {}  # feed id -> when its lease was last renewed
        self._subs: dict[str, Any] = {}  # feed id -> its NATS subscription
        self._renewals = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Set once a first request has been answered: "no responders" before
        #: that means no such bus, not a bus that went away.
        self.answered = False

    # -- Transport -----------------------------------------------------------------

    def start(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self.connection.lost.append(self._server_lost)
        self.connection.run(self._start(), CONNECT_TIMEOUT * 2)

    async def _start(self) -> None:
        await self.connection.nc.subscribe(self._inbox + "*", cb=self._on_reply)
        self._tick()

    def send(
        self, request_id: int, method: str, params: dict[str, Any] | None, line: bytes
    ) -> None:
        if self._closed:
            raise ConnectionLost(f"the connection to bus {self.name} is closed")
        self._post(str(request_id), method, params, line.rstrip(b"\n"))

    def _post(
        self,
        token: str,
        method: str,
        params: dict[str, Any] | None,
        payload: bytes,
        *,
        internal: bool = False,
    ) -> None:
        now = time.monotonic()
        wait = _reply_within(method, params)
        out = _Outgoing(
            self.subject, payload, method, now, None if wait is None else now + wait,
            internal=internal,
        )  # fmt: skip
        with self._lock:
            self._out[token] = out
        self.connection.soon(self._publish, token)

    def feed(self, params: dict[str, Any]) -> dict[str, Any]:
        from nats.nuid import NUID

        feed_id = NUID().next().decode()
        subject = self._feed_prefix + feed_id
        if self.connection.on_loop:  # a callback subscribing: cannot wait for the loop
            raise RuntimeError("subscribe from a thread of your own, not from a callback")
        self._subs[feed_id] = self.connection.run(
            self.connection.nc.subscribe(subject, cb=self._on_note, pending_msgs_limit=100_000),
            CONNECT_TIMEOUT * 2,
        )
        return {**params, "renew": feed_id}

    def feed_opened(self, params: dict[str, Any]) -> None:
        with self._lock:
            self._feeds[params["renew"]] = params
            self._renewed[params["renew"]] = time.monotonic()

    def feed_closed(self, params: dict[str, Any]) -> None:
        feed_id = params.get("renew")
        if not isinstance(feed_id, str):
            return
        with self._lock:
            self._feeds.pop(feed_id, None)
            self._renewed.pop(feed_id, None)
        sub = self._subs.pop(feed_id, None)
        if sub is not None:

            async def drop() -> None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

            self.connection.soon(lambda: self.connection.loop.create_task(drop()))

    def close(self) -> None:
        self._closed = True
        self.connection.close()

    def join(self, timeout: float) -> None:
        self.connection.join(timeout)

    # -- on the loop -----------------------------------------------------------------

    def _publish(self, token: str) -> None:
        out = self._out.get(token)
        if out is None or self._closed:
            return
        nc = self.connection.nc

        async def publish() -> None:
            try:
                await nc.publish(out.subject, out.payload, reply=self._inbox + token)
            except Exception as exc:  # closed meanwhile: the client ends anyway
                self._fail(token, ConnectionLost(f"cannot send to bus {self.name}: {exc}"))

        self.connection.loop.create_task(publish())

    async def _on_reply(self, msg: Any) -> None:
        token = msg.subject.rpartition(".")[2]
        if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS:
            self._no_responders(token)
            return
        with self._lock:
            out = self._out.pop(token, None)
        self.answered = True
        receiver = self._receiver
        if out is None or out.internal or receiver is None or receiver.closed:
            return  # a renewal's reply, or one the client no longer waits for
        try:
            message = protocol.loads(msg.data)
        except protocol.ProtocolError:
            receiver.bad_line(self.subject)
            self._fail(token, ConnectionLost(f"bus {self.name} answered {out.method} with no JSON"))
            return
        receiver.received(message)

    async def _on_note(self, msg: Any) -> None:
        receiver = self._receiver
        if receiver is None or receiver.closed:
            return
        try:
            message = protocol.loads(msg.data)
        except protocol.ProtocolError:
            receiver.bad_line(msg.subject)
            return
        receiver.received(message)

    def _no_responders(self, token: str) -> None:
        out = self._out.get(token)
        if out is None:
            return
        if not self.answered and not out.internal:
            # The first request: the bus is not there at all.
            self._fail(token, NoProcess(self.name, self.connection.url))
            return
        if time.monotonic() - out.sent_at < NO_ONE_FOR:
            # A server restart looks like this for a moment: ask again.
            delay, out.retry_in = out.retry_in, min(out.retry_in * 2, 0.5)
            self.connection.loop.call_later(delay, self._publish, token)
            return
        self._end(
            ConnectionLost(
                f"no process of it answers on {self.connection.url} any more: "
                "they stopped, or were killed"
            )
        )

    def _fail(self, token: str, error: BaseException) -> None:
        with self._lock:
            out = self._out.pop(token, None)
        receiver = self._receiver
        if out is None or out.internal or receiver is None or not token.isdigit():
            return
        receiver.refused(int(token), error)

    def _tick(self) -> None:
        """Every quarter second: requests past their deadline fail; leases are renewed."""
        if self._closed:
            return
        now = time.monotonic()
        with self._lock:
            late = [
                (token, out)
                for token, out in self._out.items()
                if out.deadline is not None and out.deadline < now
            ]
            feeds = [
                (feed_id, params)
                for feed_id, params in self._feeds.items()
                if now - self._renewed.get(feed_id, now) >= RENEW
            ]
            for feed_id, _ in feeds:
                self._renewed[feed_id] = now
        for token, out in late:
            seconds = out.deadline - out.sent_at if out.deadline is not None else 0.0
            self._fail(
                token,
                TimeoutError(
                    f"no reply from bus {self.name} to {out.method} within {seconds:.0f} s "
                    "(the process answering may have stopped)"
                ),
            )
        for feed_id, params in feeds:
            self._renew(feed_id, params)
        self._timer = self.connection.loop.call_later(0.25, self._tick)

    def _renew(self, feed_id: str, params: dict[str, Any]) -> None:
        request = protocol.request(f"renew-{next(self._renewals)}", "subscribe", params)
        payload = protocol.dumps(request).rstrip(b"\n")
        self._post("r" + feed_id, "subscribe", params, payload, internal=True)

    def _server_lost(self) -> None:
        self._end(ConnectionLost(f"lost the NATS server at {self.connection.url}"))

    def _end(self, error: BaseException) -> None:
        receiver = self._receiver
        if receiver is not None and not receiver.closed:
            receiver.ended(error)


class NoProcess(ConnectionLost):
    """No process of the bus answered its very first request: no such bus there."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        super().__init__(f"no bus {name!r} on {url}")


def _reply_within(method: str, params: dict[str, Any] | None) -> float | None:
    """Seconds a request may wait for its reply: what the method takes, and some."""
    params = params or {}
    if method == "execute":
        timeout = params.get("timeout", 30.0)
        return None if timeout is None else float(timeout) + GRACE
    if method == "wait_idle":
        return float(params.get("timeout") or 10.0) + GRACE
    return GRACE


# -- attaching and listing -----------------------------------------------------------------


def connect_nats(cls: type[Client], url: str, target: str | None, timeout: float) -> Client:
    """A ``Client`` of bus ``target`` on the NATS server at ``url`` (``None``: the one there).

    Raises:
        bus.TransportError: no server answers at ``url``.
        bus.control.NoBusError: no such bus there (or none at all), or
            ``target`` is no bus name.
        bus.control.AmbiguousBusError: ``target`` is ``None`` and several buses are there.
    """
    from bus.patterns import validate_name

    if target is not None:
        try:
            validate_name(target, "bus name")
        except ValueError as exc:
            raise NoBusError(
                f"with --nats, --bus names a bus on that server ({exc})", target
            ) from None
    connection = NatsConnection(url, f"busctl {target or ''}".strip(), timeout)
    try:
        if target is None:
            names = [str(b["name"]) for b in _gather(connection, timeout)]
            target = _the_one(names, connection.url)
        client = cls(NatsTransport(connection, target))
    except BaseException:
        connection.close()
        connection.join(5.0)
        raise
    try:
        client.describe_first(timeout)
    except NoProcess:
        # Listing takes a second: only now that the name found nothing.
        others = [str(b["name"]) for b in buses_on(url, timeout)]
        there = f"; buses there: {', '.join(others)}" if others else "; no bus is there"
        raise NoBusError(
            f"no bus {target!r} on {connection.url}{there}; start one with "
            f"`busctl run --nats {connection.url} --name {target}`",
            target,
            others,
        ) from None
    return client


def _the_one(names: list[str], url: str) -> str:
    if len(names) == 1:
        return names[0]
    if not names:
        raise NoBusError(
            f"no bus on {url}; start one with `busctl run --nats {url} --name NAME`", None, []
        )
    raise AmbiguousBusError(f"{len(names)} buses on {url}: {', '.join(names)}", names)


def buses_on(url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The buses on the NATS server at ``url``, each as its ``describe`` says, by name.

    Listens ``LISTEN`` seconds for the heartbeats every process sends, then
    asks each bus heard. A bus that stops answering meanwhile is left out.

    Raises:
        bus.TransportError: no server answers at ``url``.
    """
    connection = NatsConnection(url, "busctl list", timeout)
    try:
        return _gather(connection, timeout)
    finally:
        connection.close()
        connection.join(5.0)


def _gather(connection: NatsConnection, timeout: float) -> list[dict[str, Any]]:
    async def gather() -> list[dict[str, Any]]:
        nc = connection.nc
        tokens: set[str] = set()

        async def heard(msg: Any) -> None:
            parts = msg.subject.split(".")
            if len(parts) == 4:
                tokens.add(parts[1])

        subs = [await nc.subscribe(f"bus.*.reg.{what}", cb=heard) for what in ("beat", "state")]
        await asyncio.sleep(LISTEN)  # a second of heartbeats names every bus there
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        found = await asyncio.gather(*(_describe(nc, token) for token in sorted(tokens)))
        return sorted((b for b in found if b is not None), key=lambda b: str(b["name"]))

    return connection.run(gather(), LISTEN + timeout + 2)


async def _describe(nc: Any, token: str) -> dict[str, Any] | None:
    request = protocol.dumps(protocol.request(1, "describe")).rstrip(b"\n")
    try:
        msg = await nc.request(f"bus.{token}.control", request, timeout=3.0)
        answer = protocol.loads(msg.data)
    except Exception:  # gone meanwhile, or not a bus that answers the protocol
        return None
    result = answer.get("result")
    if not isinstance(result, dict):
        return None
    processes = result.get("processes")
    return {
        "name": str(result.get("name", token.replace("~", "."))),
        "processes": processes if isinstance(processes, list) else [],
        "version": result.get("version"),
        "url": result.get("url"),
        "address": result.get("address"),
        "transport": "nats",
    }
