"""A connection's reader thread: one request per line, parsed and dispatched.

A mixin of ``Connection`` (``_conn``): the half that reads the socket,
refuses what is not a request (``-32700``, ``-32600``, a line longer than
``MAX_LINE``), and hands each request to its method (``_methods``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .._core._patterns import shown
from . import _methods as rpc
from ._writing import CLOSE
from .protocol import MAX_LINE, ErrorCode

if TYPE_CHECKING:
    from ._conn import Connection
    from ._server import ControlServer
    from ._subs import Subscription

__all__ = ["Reading"]

log = logging.getLogger("bus.control")


class Reading:
    """The reader thread's half of a connection."""

    server: ControlServer
    sock: socket.socket
    number: int
    writer: threading.Thread
    _cond: threading.Condition
    _out: deque[tuple[Any, ...]]
    _closed: bool
    _requests: int
    _last_request: float
    _partial_since: float | None
    _handling: bool
    _in_flight: int
    _subscriptions: dict[int, Subscription]
    _after_reply: Callable[[], None] | None

    if TYPE_CHECKING:  # Connection's, which this is a part of

        def reply(self, rid: Any, result: Any, then: Callable[[], None] | None = None) -> None: ...

        def reply_error(self, rid: Any, error: rpc.RpcError, *, wait: bool = True) -> None: ...

        def close(self) -> None: ...

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
                self._out.append((CLOSE,))
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
                self._out.append((CLOSE,))
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
            result = handler(cast("Connection", self), params, rid)
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
