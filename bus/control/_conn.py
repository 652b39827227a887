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
import json
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core._patterns import shown
from .._core._threads import TimerHandle, start_thread
from .._observe._activity import Activity
from .._observe._jsonval import json_ready
from .._observe._replay import replaying
from . import _methods as rpc
from . import protocol
from ._subs import Fanout, Subscription, activity_cost, span_key
from .protocol import ErrorCode, dumps

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from ._served import ServedBus
    from ._server import ControlServer

__all__ = ["MAX_LINE", "Connection"]

log = logging.getLogger("bus.control")

#: The longest request line accepted, in bytes (without its newline).
MAX_LINE = protocol.MAX_LINE
#: Replies waiting to be written beyond which the reader stops taking requests.
MAX_QUEUED_REPLIES = 1000
#: ``execute`` requests in flight per connection beyond which the reader waits.
MAX_IN_FLIGHT = 1000
#: The writer sends at most this much at a time, so that a client that reads
#: slowly but steadily is told apart from one that stopped reading.
_PIECE = 1 << 16
#: Seconds a connection being closed for a time limit has to send its reason.
_LAST_WORDS = 2.0

_REPLY, _LINE, _EXEC, _NOTE, _DROPPED, _CLOSE = range(6)


class Connection:
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
                self._out.append((_DROPPED, sub))
            return
        sub.queued += 1
        self._note_bytes += cost
        self._out.append((_NOTE, sub, payload, cost))

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
    def _on_spans(self, batch: list[ReadableSpan]) -> None:
        fanout = self._fanouts["spans"]
        if not fanout.subscriptions:
            return
        costs = self.server.batch_costs(batch)
        picked: dict[Subscription, tuple[list[ReadableSpan], list[int]]] = {}
        for span, cost in zip(batch, costs, strict=True):
            for sub in fanout.route(span_key(span)):
                spans, sizes = picked.setdefault(sub, ([], []))
                spans.append(span)
                sizes.append(cost)
        if not picked:
            return
        with self._cond:
            if self._closed:
                return
            for sub, (spans, sizes) in picked.items():
                self._enqueue(sub, spans, sum(sizes))
            if self._writer_waiting:
                self._cond.notify_all()

    def _queue_reply(
        self, item: tuple[Any, ...], wait: bool, then: Callable[[], None] | None = None
    ) -> None:
        size = 0
        if wait:
            # The reader's own reply: encoded here, so that its size counts
            # and waiting for room slows down only this client.
            line = self._encode_reply(item[1]) if item[0] == _REPLY else item[1]
            item, size = (_LINE, line), len(line)
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
        self._queue_reply((_REPLY, protocol.result(rid, result)), True, then)

    def reply_error(self, rid: Any, error: rpc.RpcError, *, wait: bool = True) -> None:
        """Queue an error reply."""
        self._queue_reply((_REPLY, error.reply(rid)), wait)

    def close(self) -> None:
        """End the connection now: stop the subscriptions, wake both threads. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
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
        for handle in handles:
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
            self._out.append((_LINE, line))
            self._out.append((_CLOSE,))
            self._cond.notify_all()
        self.server.expired += 1
        if reason == "idle":  # an ordinary end: a client left attached and unused
            log.info("control connection %d of bus %r: %s", self.number, self.bus.name, message)
        else:
            self.server.log_closed.warning(
                "control connection %d of bus %r: %s", self.number, self.bus.name, message
            )

    # -- subscriptions (reader thread) ------------------------------------------

    def subscribe(self, topic: str, patterns: tuple[str, ...], buffer: int) -> int:
        """Open a subscription; it starts once the reply is queued.

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
            sub = Subscription(sid, topic, patterns, buffer)
            self._subscriptions[sid] = sub
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
            sub = self._subscriptions.pop(sid, None)
            if sub is None:
                return None
            sub.closed = True
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
            return sub.dropped

    # -- execute ------------------------------------------------------------------

    def execute(
        self,
        rid: Any,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        timeout: float | None,
        *,
        replay_of: tuple[str, str] | None = None,
    ) -> None:
        """Send the command; reply from its done-callback, or at ``timeout``."""
        with self._cond:
            while self._in_flight >= MAX_IN_FLIGHT and not self._closed:
                self._cond.wait()
            self._in_flight += 1
        try:
            with replaying(*replay_of) if replay_of else contextlib.nullcontext():
                future = self.bus.execute_command(name, *args, **kwargs)
        except TypeError as exc:
            self._finished()
            raise rpc.bad_arguments(self, name, exc) from None
        except BaseException:
            self._finished()
            raise
        lock = threading.Lock()
        done_flag: list[bool] = []
        timer: TimerHandle | None = None

        def finish(item: tuple[Any, ...] | None) -> bool:
            with lock:
                if done_flag:
                    return False
                done_flag.append(True)
            if timer is not None:
                timer.cancel()
            self._finished()
            if item is not None and rid is not None:
                self._queue_reply(item, False)
            return True

        def done(f: Any) -> None:
            if f.cancelled():
                error = rpc.RpcError(
                    ErrorCode.BUS_CLOSED, "the command was cancelled", {"type": "CancelledError"}
                )
                finish((_REPLY, error.reply(rid)))
                return
            exc = f.exception()
            if exc is None:
                finish((_EXEC, rid, f.result()))
            else:
                reply = rpc.handler_error(exc).reply(rid)
                finish((_REPLY, reply))

        def expired() -> None:
            error = rpc.RpcError(
                ErrorCode.TIMED_OUT,
                f"{name} did not finish within {timeout:g} s; it may still finish",
                {"timeout": timeout, "type": "TimeoutError"},
            )
            if finish((_REPLY, error.reply(rid))):
                future.gave_up = True

        if timeout is not None:
            timer = self.server.timers.schedule(timeout, expired)
        future.add_done_callback(done)

    def _finished(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    # -- reader thread --------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            if self._read_requests():
                self._after_eof()
        except OSError:
            pass
        except Exception as exc:
            self.server.log_failed.error("control connection %d failed", self.number, exc=exc)
        finally:
            self.close()
            self.writer.join(5.0)
            with contextlib.suppress(OSError):
                self.sock.close()

    def _read_requests(self) -> bool:
        """Serve requests until EOF (``True``) or a line too long (``False``)."""
        buffer = bytearray()
        recv = self.sock.recv
        while not self._closed:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > MAX_LINE:
                    self._too_long()
                    return False
                if buffer and self._partial_since is None:
                    self._partial_since = time.monotonic()  # the sweep's line_timeout runs
                chunk = recv(65536)
                if not chunk:
                    if buffer.strip():
                        self._partial_since = None
                        self.handle_line(bytes(buffer))
                    return True
                buffer += chunk
                continue
            if newline > MAX_LINE:
                self._too_long()
                return False
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            self._partial_since = None
            self.handle_line(line)
        return False

    def _too_long(self) -> None:
        error = rpc.RpcError(
            ErrorCode.INVALID_REQUEST,
            f"request line longer than {MAX_LINE} bytes; closing the connection",
            {"limit": MAX_LINE},
        )
        self.reply_error(None, error)
        self._queue_close()

    def _queue_close(self) -> None:
        with self._cond:
            if not self._closed:
                self._out.append((_CLOSE,))
                self._cond.notify_all()
        self.writer.join(5.0)

    def _after_eof(self) -> None:
        # The client will send nothing more. Without subscriptions, finish the
        # commands in flight and close. With some, it may be a one-way tool
        # (`... | socat - UNIX-CONNECT:...`) still reading: keep sending until
        # it hangs up (POLLHUP) or the server closes.
        with self._cond:
            if not self._subscriptions:
                while self._in_flight and not self._closed:
                    self._cond.wait(0.5)
                self._out.append((_CLOSE,))
                self._cond.notify_all()
                waiting_for_hangup = False
            else:
                waiting_for_hangup = True
        if not waiting_for_hangup:
            self.writer.join(5.0)
            return
        poller = select.poll()
        poller.register(self.sock, 0)  # POLLHUP and POLLERR are always reported
        while not self._closed:
            if poller.poll(1000):
                return

    def handle_line(self, line: bytes) -> None:
        """Parse and serve one request line (reader thread)."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._parse_error(f"the line is not UTF-8 (byte {exc.start})", exc.start)
            return
        if not text.strip():
            return
        self._requests += 1
        self._last_request = time.monotonic()
        self._handling = True
        try:
            self._handle_text(text)
        finally:
            self._handling = False
            self._last_request = time.monotonic()

    def _handle_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            self._parse_error(f"parse error: {exc.msg} at position {exc.pos}", exc.pos)
            return
        except RecursionError:
            self._parse_error("parse error: nested too deeply", None)
            return
        except ValueError as exc:  # e.g. an integer with too many digits
            self._parse_error(f"parse error: {exc}", None)
            return
        self.dispatch(message)

    def _parse_error(self, message: str, position: int | None) -> None:
        data = {"position": position} if position is not None else None
        self.reply_error(None, rpc.RpcError(ErrorCode.PARSE_ERROR, message, data))

    def dispatch(self, message: Any) -> None:
        """Serve one parsed request."""
        if isinstance(message, list):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "batches are not supported")
            self.reply_error(None, error)
            return
        if not isinstance(message, dict):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
            self.reply_error(None, error)
            return
        rid = message.get("id")
        notification = "id" not in message
        if not notification and (not isinstance(rid, str | int) or isinstance(rid, bool)):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "'id' must be a string or an integer")
            self.reply_error(None, error)
            return
        if message.get("jsonrpc") != "2.0":
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "'jsonrpc' must be \"2.0\"")
            self.reply_error(rid, error)
            return
        method = message.get("method")
        if not isinstance(method, str):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "'method' must be a string")
            self.reply_error(rid, error)
            return
        handler = rpc.METHODS.get(method)
        params = message.get("params")
        try:
            if handler is None:
                raise rpc.RpcError(
                    ErrorCode.METHOD_NOT_FOUND, f"no method {shown(method)}",
                    {"methods": list(rpc.METHODS)},
                )  # fmt: skip
            if params is None:
                params = {}
            elif not isinstance(params, dict):
                raise rpc.RpcError(
                    ErrorCode.INVALID_PARAMS, "invalid params: 'params' must be an object",
                    {"param": "params"},
                )  # fmt: skip
            result = handler(self, params, rid)
        except Exception as exc:
            self._after_reply = None
            if not isinstance(exc, (rpc.RpcError, *rpc.KNOWN_ERRORS)):
                # A bug in the server, answered with -32603: rate-limited, since
                # a client can ask for the same failure in every request.
                self.server.log_failed.error("control method %s failed", method, exc=exc)
            if not notification:
                self.reply_error(rid, rpc.error_reply(exc))
            return
        after, self._after_reply = self._after_reply, None
        if result is not rpc.ASYNC and not notification:
            self.reply(rid, result, after)
        elif after is not None:
            after()

    # -- writer thread -----------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._out and not self._closed:
                        self._writer_waiting = True
                        self._cond.wait()
                        self._writer_waiting = False
                    if self._closed:
                        return
                    batch = list(self._out)
                    self._out.clear()
                    notes = lines = 0
                    for item in batch:
                        kind = item[0]
                        if kind == _NOTE:
                            item[1].queued -= 1
                            notes += item[3]
                        elif kind == _LINE:
                            self._replies -= 1
                            lines += len(item[1])
                        elif kind in (_REPLY, _EXEC):
                            self._replies -= 1
                    self._note_bytes -= notes
                    self._line_bytes -= lines
                    self._cond.notify_all()
                self.server.release(notes + lines)
                chunks, last = self._encode(batch)
                if chunks:
                    self._send(b"".join(chunks))
                if last:
                    return
        except OSError:
            pass
        except Exception as exc:
            self.server.log_failed.error(
                "control connection %d: writer failed", self.number, exc=exc
            )
        finally:
            self.close()

    def _send(self, data: bytes) -> None:
        """Write ``data`` a piece at a time, marking how long each waits for the client."""
        view = memoryview(data)
        sendall = self.sock.sendall
        try:
            for start in range(0, len(view), _PIECE):
                self._sending_since = time.monotonic()
                sendall(view[start : start + _PIECE])
        finally:
            self._sending_since = None

    def _encode(self, batch: list[tuple[Any, ...]]) -> tuple[list[bytes], bool]:
        chunks: list[bytes] = []
        for item in batch:
            kind = item[0]
            if kind == _NOTE:
                sub = item[1]
                if not sub.closed:
                    chunks.append(sub.encode(item[2]))
            elif kind == _LINE:
                chunks.append(item[1])
            elif kind == _REPLY:
                chunks.append(self._encode_reply(item[1]))
            elif kind == _EXEC:
                chunks.append(self._encode_result(item[1], item[2]))
            elif kind == _DROPPED:
                sub = item[1]
                with self._cond:
                    count, sub.unreported, sub.marker = sub.unreported, 0, False
                    total = sub.dropped
                if count and not sub.closed:
                    params = {"subscription": sub.id, "count": count, "total": total}
                    chunks.append(dumps(protocol.notification("dropped", params)))
            else:  # _CLOSE
                return chunks, True
        return chunks, False

    def _encode_reply(self, reply: dict[str, Any]) -> bytes:
        try:
            return dumps(reply)
        except (TypeError, ValueError, RecursionError) as exc:
            error = rpc.error_reply(exc)
            return dumps(error.reply(reply.get("id")))

    def _encode_result(self, rid: Any, value: Any) -> bytes:
        try:
            return dumps(protocol.result(rid, {"value": value}))
        except (TypeError, ValueError, RecursionError):
            # What JSON cannot hold is marked as spans mark it ($repr,
            # $unencodable): one encoding for the console and the traces.
            clean, _ = json_ready(value)
            return dumps(protocol.result(rid, {"value": clean, "lossy": True}))
