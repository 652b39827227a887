"""A connection's commands in flight: ``execute`` and ``cancel``'s look-up.

A mixin of ``Connection`` (``_conn``), which owns the lock and the outgoing
queue. ``execute`` sends the command and returns at once; the reply is queued
from the future's done-callback, or when its timeout fires, whichever comes
first. At most ``MAX_IN_FLIGHT`` run at once per connection: beyond that the
reader waits, which slows down only the client that sent them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from .._core._threads import TimerHandle
from .._observe._replay import replaying
from . import _methods as rpc
from ._writing import EXEC, REPLY
from .protocol import ErrorCode

if TYPE_CHECKING:
    from .._core._router import Handler
    from ._served import ServedBus
    from ._server import ControlServer

__all__ = ["MAX_IN_FLIGHT", "Executing"]

#: ``execute`` requests in flight per connection beyond which the reader waits.
MAX_IN_FLIGHT = 1000


class Executing:
    """The commands a connection runs for its client."""

    server: ControlServer
    bus: ServedBus
    _cond: threading.Condition
    _closed: bool
    _in_flight: int
    _executing: dict[Any, Any]

    if TYPE_CHECKING:  # Connection's, which this is a part of

        def _queue_reply(
            self, item: tuple[Any, ...], wait: bool, then: Callable[[], None] | None = None
        ) -> None: ...

    def execute(
        self,
        rid: Any,
        handler: Handler,
        args: tuple[Any, ...],
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
                future = self.bus.execute_converted(handler, args, kwargs)
        except TypeError as exc:
            self._finished()
            session = cast("rpc.Session", self)  # a part of Connection, which is one
            raise rpc.bad_arguments(session, handler.name, exc) from None
        except BaseException:
            self._finished()
            raise
        lock = threading.Lock()
        done_flag: list[bool] = []
        timer: TimerHandle | None = None
        if rid is not None:
            with self._cond:
                self._executing[rid] = future

        def finish(item: tuple[Any, ...] | None) -> bool:
            with lock:
                if done_flag:
                    return False
                done_flag.append(True)
            if timer is not None:
                timer.cancel()
            with self._cond:
                if self._executing.get(rid) is future:
                    del self._executing[rid]
            self._finished()
            if item is not None and rid is not None:
                self._queue_reply(item, False)
            return True

        def done(f: Any) -> None:
            if f.cancelled():
                error = rpc.RpcError(
                    ErrorCode.CANCELLED, "the command was cancelled", {"type": "CancelledError"}
                )
                finish((REPLY, error.reply(rid)))
                return
            exc = f.exception()
            if exc is None:
                finish((EXEC, rid, f.result()))
            else:
                reply = rpc.handler_error(exc).reply(rid)
                finish((REPLY, reply))

        def expired() -> None:
            error = rpc.RpcError(
                ErrorCode.TIMED_OUT,
                f"{handler.name} did not finish within {timeout:g} s; it may still finish",
                {"timeout": timeout, "type": "TimeoutError"},
            )
            if finish((REPLY, error.reply(rid))):
                future.gave_up = True

        if timeout is not None:
            timer = self.server.timers.schedule(timeout, expired)
        future.add_done_callback(done)

    def executing(self, rid: Any) -> Any:
        """The future of the command this connection's request ``rid`` runs, or ``None``."""
        with self._cond:
            return self._executing.get(rid)

    def _finished(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()
