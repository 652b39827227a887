"""A control request over NATS as ``bus.control``'s methods see it, and the feeds it opens.

``Session`` is what a method answers (``bus.control._methods.Session``): the
bus, where it is served, and ``execute``/``subscribe`` done the NATS way (a
reply to the request's reply subject; a *feed* published to
``bus.NAME.feed.FEED``). ``Feed`` is one console subscription as this
process publishes it, rate-bounded, living ``LEASE`` seconds unless renewed.
``ControlResponder`` (``_control``) makes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from .._observe._activity import Activity
from .._observe._jsonval import json_ready
from .._observe._replay import replaying
from ..control import _methods as rpc
from ..control import protocol
from ..control._subs import Subscription, span_key
from ..control.protocol import ErrorCode
from . import _wire as wire

if TYPE_CHECKING:
    from .._core._router import Handler
    from .._observe._records import Flat
    from ._control import ControlResponder
    from ._link import NatsLink

__all__ = ["LEASE", "Feed", "Session", "line"]

#: Seconds a feed lives without a renewal.
LEASE = 30.0


def line(message: dict[str, Any]) -> bytes:
    """A protocol message as one NATS payload (no trailing newline)."""
    return protocol.dumps(message).rstrip(b"\n")


class Feed:
    """One console subscription, as this process publishes it."""

    def __init__(
        self, link: NatsLink, fid: str, topic: str, patterns: tuple[str, ...], buffer: int
    ) -> None:
        self.link = link
        self.id = fid
        self.topic = topic
        self.subject = link.subjects.feed_prefix + fid
        self.match = Subscription(0, topic, patterns, buffer)
        self.buffer = buffer  # notifications per second at most
        self.lease_until = time.monotonic() + LEASE
        self.window = 0.0
        self.sent = 0
        self.dropped = 0
        self.unreported = 0
        self.handle: Any = None

    def start(self) -> None:
        bus = self.link.bus
        if self.topic == "activity":
            self.handle = bus.watch(self.on_activity)
        else:
            self.handle = bus.spans.observe(self.on_spans)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.dispose()
            self.handle = None

    def _room(self) -> bool:
        now = time.monotonic()
        if now - self.window >= 1.0:
            self.window, self.sent = now, 0
        if self.sent >= self.buffer:
            self.dropped += 1
            self.unreported += 1
            return False
        self.sent += 1
        return True

    # On the bus's threads: quick, never blocking.
    def on_activity(self, activity: Activity) -> None:
        if not self.match.matches(activity.name) or not self._room():
            return
        params = {
            "subscription": self.id,
            "process": self.link.label,
            "activity": activity.to_json(),
        }
        self.link.loop.publish(self.subject, line(protocol.notification("activity", params)))

    # On the bus's trace thread.
    def on_spans(self, batch: list[Flat]) -> None:
        records = [r for r in batch if self.match.matches(span_key(r))]
        if not records or not self._room():
            return
        data = self.link.bus.spans.otlp(records)
        params = {"subscription": self.id, "process": self.link.label, "data": data}
        self.link.loop.publish(self.subject, line(protocol.notification("spans", params)))

    def report(self) -> None:
        """Tell the console what was dropped since the last report (once a second)."""
        if self.unreported:
            count, self.unreported = self.unreported, 0
            params = {
                "subscription": self.id,
                "process": self.link.label,
                "count": count,
                "total": self.dropped,
            }
            self.link.loop.publish(self.subject, line(protocol.notification("dropped", params)))


class Session:
    """One control request over NATS, as the methods of ``bus.control`` see it."""

    def __init__(self, responder: ControlResponder, reply: str, whole: bool) -> None:
        self._responder = responder
        self._reply = reply
        self._whole = whole
        self.renew: str | None = None  # the feed a ``subscribe`` renews
        link = responder.link
        self.bus = link.bus
        self.address = (
            link.subjects.control if whole else link.subjects.of_process(link.process_id, "control")
        )

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
        loop = self._responder.link.loop
        try:
            with replaying(*replay_of) if replay_of else contextlib.nullcontext():
                future = self.bus.execute_converted(handler, args, kwargs)
        except TypeError as exc:
            raise rpc.bad_arguments(self, handler.name, exc) from None
        answered: list[bool] = []
        timer: asyncio.TimerHandle | None = None

        def answer(message: dict[str, Any]) -> bool:
            if answered:
                return False
            answered.append(True)
            if timer is not None:
                loop.call_soon(timer.cancel)
            self._responder.reply(self._reply, message)
            return True

        def done(f: Any) -> None:
            if f.cancelled():
                error = rpc.RpcError(
                    ErrorCode.CANCELLED, "the command was cancelled", {"type": "CancelledError"}
                )
                answer(error.reply(rid))
                return
            exc = f.exception()
            if exc is not None:
                answer(rpc.handler_error(exc).reply(rid))
                return
            value = f.result()
            try:
                wire.encode(value)
                answer(protocol.result(rid, {"value": value}))
            except (TypeError, ValueError, RecursionError):
                # As the socket answers: typed values become the JSON they
                # stand for, and only what JSON cannot hold is lossy.
                clean, lossy = json_ready(value)
                result = {"value": clean, "lossy": True} if lossy else {"value": clean}
                answer(protocol.result(rid, result))

        def expired() -> None:
            error = rpc.RpcError(
                ErrorCode.TIMED_OUT,
                f"{handler.name} did not finish within {timeout:g} s; it may still finish",
                {"timeout": timeout, "type": "TimeoutError"},
            )
            if answer(error.reply(rid)):
                future.gave_up = True

        if timeout is not None:
            timer = loop.loop.call_later(timeout, expired)
        future.add_done_callback(done)

    def executing(self, rid: Any) -> Any:
        # Each request over NATS stands alone (no connection ties an execute
        # to a later cancel, and a queue group may send them to different
        # processes): say so rather than "no such execute".
        raise rpc.RpcError(
            ErrorCode.INVALID_PARAMS,
            "cancel needs the socket connection that sent the execute; over NATS "
            "each request stands alone, so a command cannot be cancelled by id",
            {"param": "id"},
        )

    def subscribe(
        self, topic: str, patterns: tuple[str, ...], buffer: int, *, lossless: bool = False
    ) -> Any:
        if lossless:
            # A feed is published, and NATS drops what a slow subscriber
            # cannot take: nothing here could make the bus wait for it.
            raise rpc.RpcError(
                ErrorCode.INVALID_PARAMS,
                "invalid params: a lossless capture needs the bus's control socket; "
                "over NATS a feed cannot make the bus wait for its reader",
                {"param": "lossless"},
            )
        return self._responder.open_feed(topic, patterns, buffer, self._whole, self.renew)

    def unsubscribe(self, sid: Any) -> int | None:
        return self._responder.close_feed(sid, self._whole)
