"""A connection's writer thread: it alone drains the outgoing queue to the socket.

A mixin of ``Connection`` (``_conn``), which owns the queue and its lock;
this is the half that encodes what waits there and sends it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._observe._jsonval import json_ready
from . import _methods as rpc
from . import protocol
from .protocol import dumps

if TYPE_CHECKING:
    from ._server import ControlServer

__all__ = ["Writing"]

log = logging.getLogger("bus.control")

#: The writer sends at most this much at a time, so that a client that reads
#: slowly but steadily is told apart from one that stopped reading.
_PIECE = 1 << 16

#: What an item of the outgoing queue is (its first member).
REPLY, LINE, EXEC, NOTE, DROPPED, CLOSE = range(6)


class Writing:
    """The writer thread's half of a connection."""

    server: ControlServer
    sock: socket.socket
    number: int
    _cond: threading.Condition
    _out: deque[tuple[Any, ...]]
    _closed: bool
    _replies: int
    _line_bytes: int
    _note_bytes: int
    _writer_waiting: bool
    _sending_since: float | None
    _after_reply: Callable[[], None] | None

    if TYPE_CHECKING:  # Connection's, which this is a part of

        def close(self) -> None: ...

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
                        if kind == NOTE:
                            item[1].queued -= 1
                            notes += item[3]
                        elif kind == LINE:
                            self._replies -= 1
                            lines += len(item[1])
                        elif kind in (REPLY, EXEC):
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
            if kind == NOTE:
                sub = item[1]
                if not sub.closed or sub.drain:
                    chunks.append(sub.encode(item[2]))
            elif kind == LINE:
                chunks.append(item[1])
            elif kind == REPLY:
                chunks.append(self._encode_reply(item[1]))
            elif kind == EXEC:
                chunks.append(self._encode_result(item[1], item[2]))
            elif kind == DROPPED:
                sub = item[1]
                with self._cond:
                    count, sub.unreported, sub.marker = sub.unreported, 0, False
                    total = sub.dropped
                if count and not sub.closed:
                    params = {"subscription": sub.id, "count": count, "total": total}
                    chunks.append(dumps(protocol.notification("dropped", params)))
            else:  # CLOSE
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
            # Typed values become the JSON they stand for, and what JSON
            # cannot hold is marked as spans mark it ($repr, $unencodable):
            # one encoding for the console and the traces.
            clean, lossy = json_ready(value)
            if not lossy:
                return dumps(protocol.result(rid, {"value": clean}))
            return dumps(protocol.result(rid, {"value": clean, "lossy": True}))
