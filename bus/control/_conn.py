"""One console connection: a reader thread, a writer thread, its subscriptions.

The reader parses one request per line and answers the quick methods itself;
``execute`` replies later, from the future's done-callback. Everything sent
goes through one outgoing queue that only the writer drains, so a client that
reads slowly blocks nothing but its own writer.

What the bus's threads put in that queue (subscription notifications, late
``execute`` replies) is put without ever waiting: notifications beyond a
subscription's ``buffer``, beyond the bytes one connection may have waiting
(``ControlServer.max_queued_bytes``) or beyond what all connections together
may have waiting (``max_total_bytes``) are dropped and counted, and a
``dropped`` notification tells the client how many. Replies to the reader's
own requests are encoded by the reader and wait for room, which slows down
only the client that sent them.

The server's sweep (``check``) closes a connection that sends no request,
leaves a line unfinished, sits idle, or stops reading what it is sent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._threads import start_thread
from .._observe._activity import Activity
from . import _methods as rpc
from . import protocol
from ._executing import Executing
from ._reading import Reading
from ._subs import Fanout, Subscription, activity_cost, span_key
from ._writing import CLOSE, DROPPED, LINE, NOTE, REPLY, Writing
from .protocol import ErrorCode, dumps

if TYPE_CHECKING:
    from .._observe._records import Flat
    from ._served import ServedBus
    from ._server import ControlServer

__all__ = ["MAX_LINE", "Connection"]

log = logging.getLogger("bus.control")

#: The longest request line accepted, in bytes (without its newline).
MAX_LINE = protocol.MAX_LINE
#: Replies waiting to be written beyond which the reader stops taking requests.
MAX_QUEUED_REPLIES = 1000
#: The writer sends at most this much at a time, so that a client that reads
#: slowly but steadily is told apart from one that stopped reading.
_PIECE = 1 << 16
#: Seconds the trace thread waits for a lossless subscription's reader to
#: make room, before that subscription drops (and counts) like any other.
LOSSLESS_WAIT = 10.0
#: Seconds a connection being closed for a time limit has to send its reason.
_LAST_WORDS = 2.0


class Connection(Reading, Writing, Executing):
    """A console attached to the bus. Created by ``ControlServer`` per accepted socket."""

    def __init__(self, server: ControlServer, sock: socket.socket, number: int) -> None:
        self.server = server
        self.bus: ServedBus = server.bus
        self.sock = sock
        self.number = number
        self._cond = threading.Condition()  # an RLock: ``then`` callbacks may take it again
        self._out: deque[tuple[Any, ...]] = deque()
        self._replies = 0  # reply items in ``_out``
        self._line_bytes = 0  # bytes of the encoded replies in ``_out``
        self._note_bytes = 0  # estimated bytes of the notifications in ``_out``
        self._writer_waiting = False
        self._closed = False
        self._in_flight = 0
        self._executing: dict[Any, Any] = {}  # execute's request id -> its future, while it runs
        self._subscriptions: dict[int, Subscription] = {}
        self._fanouts = {"activity": Fanout(), "spans": Fanout()}
        self._watching: Any = None  # the handle of Bus.watch, while activity is subscribed
        self._observing: Any = None  # the handle of SpanRing.observe, while spans are
        self._sub_ids = itertools.count(1)
        self._after_reply: Callable[[], None] | None = None
        # What the sweep reads (plain attributes, written by one thread each).
        now = time.monotonic()
        self._connected_at = now
        self._requests = 0  # request lines received
        self._last_request = now
        self._partial_since: float | None = None  # a line begun and not finished
        self._handling = False  # the reader is serving a request
        self._sending_since: float | None = None  # the writer waits for the client to read
        self._expired_at: float | None = None  # told it is being closed, at
        prefix = f"bus:{self.bus.name}/control-{number}"
        self.writer = start_thread(f"{prefix}-writer", self._write_loop)
        self.reader = start_thread(prefix, self._read_loop)

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed

    @property
    def address(self) -> str:
        """The socket the connection came to (``Session.address``)."""
        return str(self.server.address)

    # -- the outgoing queue (any thread) -------------------------------------

    def _enqueue(self, sub: Subscription, payload: Any, cost: int) -> None:
        """Queue a notification, or drop and count it (under ``_cond``)."""
        if sub.closed:
            return
        waiting = self._note_bytes + self._line_bytes
        if (
            sub.queued >= sub.buffer
            or (waiting and waiting + cost > self.server.max_queued_bytes)
            or not self.server.reserve(cost)
        ):
            sub.dropped += 1
            sub.unreported += 1
            if not sub.marker:
                sub.marker = True
                self._out.append((DROPPED, sub))
            return
        sub.queued += 1
        self._note_bytes += cost
        self._out.append((NOTE, sub, payload, cost))

    # On the bus's threads: never block, and cost nothing for a name no one wants.
    def _on_activity(self, activity: Activity) -> None:
        subs = self._fanouts["activity"].route(activity.name)
        if not subs:
            return
        cost = activity_cost(activity)
        with self._cond:
            if self._closed:
                return
            for sub in subs:
                self._enqueue(sub, activity, cost)
            if self._writer_waiting:
                self._cond.notify_all()

    # On the bus's trace thread.
    def _on_spans(self, batch: list[Flat]) -> None:
        fanout = self._fanouts["spans"]
        if not fanout.subscriptions:
            return
        costs = self.server.batch_costs(batch)
        picked: dict[Subscription, tuple[list[Flat], list[int]]] = {}
        for record, cost in zip(batch, costs, strict=True):
            for sub in fanout.route(span_key(record)):
                records, sizes = picked.setdefault(sub, ([], []))
                records.append(record)
                sizes.append(cost)
        if not picked:
            return
        with self._cond:
            if self._closed:
                return
            for sub, (records, sizes) in picked.items():
                cost = sum(sizes)
                if sub.lossless:
                    self._wait_for_room(sub, cost)
                self._enqueue(sub, records, cost)
            if self._writer_waiting:
                self._cond.notify_all()

    def _wait_for_room(self, sub: Subscription, cost: int) -> None:
        """Wait (under ``_cond``, at most ``LOSSLESS_WAIT``) until ``sub`` can take ``cost``.

        On the trace thread, for a lossless subscription: the bus's recording
        threads wait in turn when its buffer fills, so a capture keeps every
        span at the pace its reader can take. Past the limit the batch is
        dropped and counted, and the subscription drops from then on like any
        other (a reader that stopped must not stall the bus a batch at a
        time): never silently.
        """
        deadline = None
        limit = self.server.max_queued_bytes
        while not (self._closed or sub.closed):
            waiting = self._note_bytes + self._line_bytes
            if sub.queued < sub.buffer and (not waiting or waiting + cost <= limit):
                return
            now = time.monotonic()
            if deadline is None:
                deadline = now + LOSSLESS_WAIT
            elif now >= deadline:
                sub.lossless = False
                self.server.log_failed.warning(
                    "control connection %d: a lossless subscription's reader took no spans "
                    "for %g s; it drops what it cannot take from now on (counted)",
                    self.number,
                    LOSSLESS_WAIT,
                )
                return
            self._cond.notify_all()  # the writer, to make room
            self._cond.wait(deadline - now)

    def _queue_reply(
        self, item: tuple[Any, ...], wait: bool, then: Callable[[], None] | None = None
    ) -> None:
        size = 0
        if wait:
            # The reader's own reply: encoded here, so that its size counts
            # and waiting for room slows down only this client.
            line = self._encode_reply(item[1]) if item[0] == REPLY else item[1]
            item, size = (LINE, line), len(line)
        with self._cond:
            while wait and not self._closed and self._no_room_for(size):
                self._cond.wait()
            if self._closed:
                return
            self._replies += 1
            if size:
                self._line_bytes += size
                self.server.charge(size)
            self._out.append(item)
            if then is not None:
                # Under the lock that notifications take too: whatever ``then``
                # lets the bus send is queued behind this reply.
                then()
            if self._writer_waiting:
                self._cond.notify_all()

    def _no_room_for(self, size: int) -> bool:
        """Whether a reply of ``size`` bytes must wait for the writer (under ``_cond``).

        Replies are weighed against replies only: notifications are bounded
        on their own (they are dropped), and must not keep a reply waiting
        for ever on a busy bus. With none of its replies waiting, a client
        always has room for one, however large.
        """
        if self._replies >= MAX_QUEUED_REPLIES:
            return True
        if not self._line_bytes:
            return False
        return self._line_bytes + size > self.server.max_queued_bytes or self.server.over_budget()

    def reply(self, rid: Any, result: Any, then: Callable[[], None] | None = None) -> None:
        """Queue a result reply (reader thread: waits for room), then call ``then``."""
        self._queue_reply((REPLY, protocol.result(rid, result)), True, then)

    def reply_error(self, rid: Any, error: rpc.RpcError, *, wait: bool = True) -> None:
        """Queue an error reply."""
        self._queue_reply((REPLY, error.reply(rid)), wait)

    def close(self) -> None:
        """End the connection now: stop the subscriptions, wake both threads. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            holds = [sub.hold for sub in self._subscriptions.values() if sub.hold is not None]
            for sub in self._subscriptions.values():
                sub.closed = True
            self._subscriptions.clear()
            for fanout in self._fanouts.values():
                fanout.subscriptions = ()
            handles = (self._watching, self._observing)
            self._watching = self._observing = None
            freed = self._note_bytes + self._line_bytes
            self._note_bytes = self._line_bytes = 0
            self._out.clear()
            self._cond.notify_all()
        self.server.release(freed)
        for handle in (*handles, *holds):
            if handle is not None:
                handle.dispose()
        # Forgotten before the client sees the end: a client that waits for it
        # (a discovery probe) has given its place back when it connects again.
        self.server._forget(self)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> None:
        """Wait for both threads (not the calling one) to end."""
        current = threading.current_thread()
        for thread in (self.reader, self.writer):
            if thread is not current:
                thread.join(timeout)

    # -- time limits (the server's timer thread) -------------------------------------

    def check(self, now: float) -> None:
        """Close the connection if it is past one of the server's time limits."""
        if self._closed:
            return
        server = self.server
        sending = self._sending_since
        if sending is not None and now - sending > server.stall_timeout:
            server.stalled += 1
            server.log_closed.warning(
                "closed control connection %d of bus %r: the client read nothing for %g s",
                self.number, self.bus.name, server.stall_timeout,
            )  # fmt: skip
            self.close()
            return
        if self._expired_at is not None:
            if now - self._expired_at > _LAST_WORDS:
                self.close()
            return
        partial = self._partial_since
        if partial is not None and now - partial > server.line_timeout:
            limit = server.line_timeout
            self._expire("incomplete", limit, f"a request line was left unfinished for {limit:g} s")
        elif self._requests == 0 and now - self._connected_at > server.hello_timeout:
            limit = server.hello_timeout
            self._expire("silent", limit, f"no request within {limit:g} s of connecting")
        elif now - self._last_request > server.idle_timeout and self._idle():
            limit = server.idle_timeout
            self._expire(
                "idle", limit, f"idle for {limit:g} s (no request, subscription or command)"
            )

    def _idle(self) -> bool:
        with self._cond:
            return not (
                self._subscriptions
                or self._in_flight
                or self._out
                or self._handling
                or self._sending_since is not None
            )

    def _expire(self, reason: str, timeout: float, why: str) -> None:
        """Tell the client why it is being closed (``-32010``), then close."""
        message = f"closing the connection: {why}"
        data = {"reason": reason, "timeout": timeout}
        line = dumps(protocol.error(None, ErrorCode.CLOSING, message, data))
        with self._cond:
            if self._closed or self._expired_at is not None:
                return
            self._expired_at = time.monotonic()
            self._replies += 1
            self._line_bytes += len(line)
            self.server.charge(len(line))
            self._out.append((LINE, line))
            self._out.append((CLOSE,))
            self._cond.notify_all()
        self.server.expired += 1
        if reason == "idle":  # an ordinary end: a client left attached and unused
            log.info("control connection %d of bus %r: %s", self.number, self.bus.name, message)
        else:
            self.server.log_closed.warning(
                "control connection %d of bus %r: %s", self.number, self.bus.name, message
            )

    # -- subscriptions (reader thread) ------------------------------------------

    def subscribe(
        self, topic: str, patterns: tuple[str, ...], buffer: int, *, lossless: bool = False
    ) -> int:
        """Open a subscription; it starts once the reply is queued.

        A ``lossless`` one (spans only) holds the bus's tracing lossless while
        it is open, and the trace thread waits for room in its queue (at most
        ``LOSSLESS_WAIT`` seconds a batch) rather than drop what it cannot
        take yet.

        Raises:
            RpcError: ``-32009``, the connection has ``max_subscriptions`` open.
        """
        limit = self.server.max_subscriptions
        with self._cond:
            if len(self._subscriptions) >= limit:
                raise rpc.RpcError(
                    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                    f"too many subscriptions: {limit} are open on this connection already; "
                    "unsubscribe one first",
                    {"limit": limit},
                )
            sid = next(self._sub_ids)
            otlp = self.bus.spans.otlp if topic == "spans" else None
            sub = Subscription(sid, topic, patterns, buffer, otlp, lossless=lossless)
            self._subscriptions[sid] = sub
        if lossless:
            sub.hold = self.bus.lossless_tracing()
        self._after_reply = lambda: self._start(sub)
        return sid

    def _start(self, sub: Subscription) -> None:
        """Let ``sub`` receive (right after its reply is queued, under the lock)."""
        with self._cond:
            if self._closed or sub.closed:
                return
            self._fanouts[sub.topic].add(sub)
            # One registration with the bus per topic, however many subscriptions.
            if sub.topic == "activity" and self._watching is None:
                self._watching = self.bus.watch(self._on_activity)
            elif sub.topic == "spans" and self._observing is None:
                self._observing = self.bus.spans.observe(self._on_spans)

    def unsubscribe(self, sid: Any) -> int | None:
        """End a subscription; its total dropped count, ``None`` if unknown."""
        if not isinstance(sid, int) or isinstance(sid, bool):
            return None
        with self._cond:
            sub = self._subscriptions.get(sid)
        if sub is not None and sub.hold is not None:
            # Lossless to the end: the spans recorded until now reach its
            # queue, and what is queued is written before the reply.
            self.bus.flush_traces(timeout=LOSSLESS_WAIT)
        with self._cond:
            sub = self._subscriptions.pop(sid, None)
            if sub is None:
                return None
            sub.closed = True
            # Spans already queued are written before the reply: a capture
            # that stops keeps what the bus had sent it. Activity is not.
            sub.drain = sub.topic == "spans"
            fanout = self._fanouts[sub.topic]
            fanout.remove(sub)
            if not fanout.subscriptions:
                # Under the lock, so that a subscribe right after cannot be
                # watching twice for a moment.
                if sub.topic == "activity" and self._watching is not None:
                    self._watching.dispose()
                    self._watching = None
                elif sub.topic == "spans" and self._observing is not None:
                    self._observing.dispose()
                    self._observing = None
            self._cond.notify_all()  # the trace thread may be waiting for its room
        if sub.hold is not None:
            sub.hold.dispose()
        return sub.dropped
