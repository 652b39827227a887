"""The control protocol over NATS request/reply: the console sees the whole bus.

Two subjects answer the JSON-RPC requests of ``docs/protocol.md`` (one
request per message, the reply to its reply subject, the envelopes of
``bus.control.protocol``):

- ``bus.NAME.proc.ID.control``: one process, exactly as its socket would;
- ``bus.NAME.control`` (queue group ``control``, so one process answers):
  the bus as a whole. ``inspect``, ``who_handles``, ``traces``,
  ``wait_idle`` and ``schema`` gather every process's answer and merge
  them (each process describes the types it has); ``execute``
  and ``fire`` go through the answering process, which routes them like
  any other; ``describe`` lists the processes.

A subscription (``activity``, ``spans``) becomes a *feed*: every process
publishes its matching notifications to ``bus.NAME.feed.FEED`` (the console
subscribes to that subject), each tagged with its ``process``. A feed lives
``LEASE`` seconds unless renewed (``subscribe`` with ``renew``), so a console
that vanishes leaves nothing running; processes that join later start
publishing at the next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nats.nuid import NUID

from .._core._patterns import pattern_matches, validate_pattern
from .._core._threads import start_thread
from .._core._version import VERSION
from ..control import _methods as rpc
from ..control import protocol
from ..control.protocol import ErrorCode
from . import _wire as wire
from ._intervene import WHOLE
from ._merge import merge, merge_schema
from ._session import LEASE, Feed, Session, line

if TYPE_CHECKING:
    from ._link import NatsLink

__all__ = ["LEASE", "ControlResponder", "Feed", "Session"]

#: Seconds a process has to answer its part of a request for the whole bus.
GATHER_TIMEOUT = 3.0


class ControlResponder:
    """Answers the control protocol on this process's subjects and, in turn, the bus's."""

    def __init__(self, link: NatsLink) -> None:
        self.link = link
        self.feeds: dict[str, Feed] = {}
        self._subs: list[Any] = []
        self._nuid = NUID()
        self._whole: dict[str, Callable[[Session, dict[str, Any], Any], Awaitable[Any]]] = {
            "describe": self._describe,
            "inspect": self._inspect,
            "who_handles": self._who_handles,
            "traces": self._traces,
            "wait_idle": self._wait_idle,
            "schema": self._schema,
            # Holds, stubs, history: where the work runs (``_intervene``).
            **{name: functools.partial(method, self) for name, method in WHOLE.items()},
        }

    async def start(self) -> None:
        link = self.link
        loop = link.loop
        s = link.subjects

        async def whole(msg: Any) -> None:
            await self.on_request(msg, True)

        async def mine(msg: Any) -> None:
            await self.on_request(msg, False)

        self._subs = [
            await loop.subscribe(s.control, whole, queue="control"),
            await loop.subscribe(s.of_process(link.process_id, "control"), mine),
            await loop.subscribe(s.bus + ".feeds", self._on_feed_order),
        ]
        link._every(1.0, self._tend_feeds)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        for feed in list(self.feeds.values()):
            feed.stop()
        self.feeds.clear()

    def reply(self, subject: str, message: dict[str, Any]) -> None:
        """Send a JSON-RPC reply (any thread)."""
        try:
            data = line(message)
        except (TypeError, ValueError, RecursionError) as exc:
            data = line(rpc.error_reply(exc).reply(message.get("id")))
        self.link.loop.publish(subject, data)

    # -- requests (the loop) ------------------------------------------------------------

    async def on_request(self, msg: Any, whole: bool) -> None:
        reply = msg.reply
        if not reply:
            return
        try:
            message = json.loads(msg.data)
        except (ValueError, RecursionError) as exc:
            error = rpc.RpcError(ErrorCode.PARSE_ERROR, f"parse error: {exc}")
            self.reply(reply, error.reply(None))
            return
        if not isinstance(message, dict):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "a request must be a JSON object")
            self.reply(reply, error.reply(None))
            return
        rid = message.get("id")
        if rid is not None and (not isinstance(rid, str | int) or isinstance(rid, bool)):
            error = rpc.RpcError(ErrorCode.INVALID_REQUEST, "'id' must be a string or an integer")
            self.reply(reply, error.reply(None))
            return
        method = message.get("method")
        params = message.get("params")
        session = Session(self, reply, whole)
        try:
            if message.get("jsonrpc") != "2.0":
                raise rpc.RpcError(ErrorCode.INVALID_REQUEST, "'jsonrpc' must be \"2.0\"")
            if not isinstance(method, str) or method not in rpc.METHODS:
                raise rpc.RpcError(
                    ErrorCode.METHOD_NOT_FOUND, f"no method {method!r}",
                    {"methods": list(rpc.METHODS)},
                )  # fmt: skip
            if params is None:
                params = {}
            elif not isinstance(params, dict):
                raise rpc.RpcError(
                    ErrorCode.INVALID_PARAMS, "invalid params: 'params' must be an object",
                    {"param": "params"},
                )  # fmt: skip
            if method == "subscribe" and "renew" in params:
                params = dict(params)
                renew = params.pop("renew")
                if not isinstance(renew, str) or not renew:
                    raise rpc.RpcError(
                        ErrorCode.INVALID_PARAMS, "invalid params: 'renew' must be a feed id",
                        {"param": "renew"},
                    )  # fmt: skip
                session.renew = renew
            if whole and method in self._whole:
                result = await self._whole[method](session, params, rid)
            elif method in ("wait_idle", "traces", "history", "release"):  # not on the loop
                result = await _in_thread(
                    self.link, lambda: rpc.METHODS[method](session, params, rid)
                )
            else:
                result = rpc.METHODS[method](session, params, rid)
        except Exception as exc:
            self.reply(reply, rpc.error_reply(exc).reply(rid))
            return
        if result is not rpc.ASYNC:
            self.reply(reply, protocol.result(rid, result))

    async def _gather(self, method: str, params: dict[str, Any], timeout: float) -> list[Any]:
        """``(process, result or None)`` of every other process, asked at once."""
        peers = self.link.registry.snapshot()

        async def ask(process_id: str) -> Any:
            subject = self.link.subjects.of_process(process_id, "control")
            request = line(protocol.request(1, method, params))
            try:
                msg = await self.link.loop.nc.request(subject, request, timeout=timeout)
                answer = json.loads(msg.data)
            except Exception:
                return None
            return answer.get("result") if isinstance(answer, dict) else None

        results = await asyncio.gather(*(ask(p.id) for p in peers))
        return [({"id": p.id, "label": p.label}, r) for p, r in zip(peers, results, strict=True)]

    def _me(self) -> dict[str, Any]:
        return {"id": self.link.process_id, "label": self.link.label}

    async def _describe(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        rpc.METHODS["describe"](session, params, rid)  # checks the params
        link = self.link
        processes = [self._me()] + [
            {"id": p.id, "label": p.label} for p in link.registry.snapshot()
        ]
        return {
            "protocol": protocol.VERSION,
            "name": link.bus.name,
            "transport": "nats",
            "url": link.url,
            "version": VERSION,
            "address": session.address,
            "processes": processes,
            "methods": list(rpc.METHODS),
        }

    async def _inspect(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        rpc._only(params, ())
        others = await self._gather("inspect", {}, GATHER_TIMEOUT)
        return merge(self.link.bus.name, [(self._me(), self.link.bus.inspect()), *others])

    async def _who_handles(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        rpc._only(params, ("name",))
        name = rpc._name(params)
        whole = await self._inspect(session, {}, rid)
        command = next((c for c in whole["commands"] if c["name"] == name), None)
        reached = [entry for entry in whole["listeners"] if pattern_matches(entry["pattern"], name)]
        suggestions: list[str] = []
        if command is None and not reached:
            import difflib

            known = {c["name"] for c in whole["commands"]} | {
                entry["pattern"] for entry in whole["listeners"] if "*" not in entry["pattern"]
            }
            suggestions = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
        return {"name": name, "command": command, "listeners": reached, "suggestions": suggestions}

    async def _traces(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        mine = await _in_thread(self.link, lambda: rpc.METHODS["traces"](session, params, rid))
        others = await self._gather("traces", params, GATHER_TIMEOUT)
        spans = list(mine.get("resourceSpans", []))
        for _, result in others:
            if isinstance(result, dict):
                spans.extend(result.get("resourceSpans", []))
        return {"resourceSpans": spans}

    async def _wait_idle(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        mine = await _in_thread(self.link, lambda: rpc.METHODS["wait_idle"](session, params, rid))
        timeout = min(60.0, float(params.get("timeout") or 10.0))
        others = await self._gather("wait_idle", params, timeout + 2)
        idle = bool(mine.get("idle")) and all(
            isinstance(r, dict) and r.get("idle") for _, r in others
        )
        return {"idle": idle}

    async def _schema(self, session: Session, params: dict[str, Any], rid: Any) -> Any:
        # Only a process that has a handler's types can describe them: each
        # describes its own commands and events, and the documents merge.
        mine: Any = None
        refused: rpc.RpcError | None = None
        try:
            mine = await _in_thread(self.link, lambda: rpc.METHODS["schema"](session, params, rid))
        except rpc.RpcError as exc:
            if "name" not in params or (exc.data or {}).get("param") != "name":
                raise  # a bad format: every process would say so
            refused = exc  # no such command or event here; maybe elsewhere
        others = await self._gather("schema", params, GATHER_TIMEOUT)
        documents = [d for d in (mine, *(r for _, r in others)) if isinstance(d, dict)]
        if not documents:
            assert refused is not None
            raise refused
        fmt = params.get("format") or "jsonschema"
        return merge_schema(self.link.bus.name, fmt, documents)

    # -- feeds ---------------------------------------------------------------------------

    def open_feed(
        self, topic: str, patterns: tuple[str, ...], buffer: int, whole: bool, renew: str | None
    ) -> str:
        """Start (or renew) a feed here and, for the whole bus, in every process."""
        fid = renew or self._nuid.next().decode()
        self._start_feed(fid, topic, patterns, buffer)
        if whole:
            order = {"op": "start", "id": fid, "topic": topic, "patterns": list(patterns),
                     "buffer": buffer}  # fmt: skip
            self.link.loop.publish(self.link.subjects.bus + ".feeds", wire.encode(order))
        return fid

    def close_feed(self, sid: Any, whole: bool) -> int | None:
        if not isinstance(sid, str):
            return None
        feed = self.feeds.pop(sid, None)
        if whole:
            order = {"op": "stop", "id": sid}
            self.link.loop.publish(self.link.subjects.bus + ".feeds", wire.encode(order))
        if feed is None:
            return None
        feed.stop()
        return feed.dropped

    def _start_feed(self, fid: str, topic: str, patterns: tuple[str, ...], buffer: int) -> None:
        feed = self.feeds.get(fid)
        if feed is not None:
            feed.lease_until = time.monotonic() + LEASE
            return
        feed = self.feeds[fid] = Feed(self.link, fid, topic, patterns, buffer)
        feed.start()

    async def _on_feed_order(self, msg: Any) -> None:
        try:
            order = wire.decode(msg.data)
            op, fid = order["op"], order["id"]
            if op == "stop":
                feed = self.feeds.pop(fid, None)
                if feed is not None:
                    feed.stop()
                return
            topic, patterns, buffer = order["topic"], tuple(order["patterns"]), int(order["buffer"])
            if topic not in protocol.TOPICS or not patterns or not isinstance(fid, str):
                return
            for pattern in patterns:
                validate_pattern(pattern)
        except (ValueError, TypeError, KeyError):
            return
        self._start_feed(fid, topic, patterns, max(1, buffer))

    def _tend_feeds(self) -> None:
        now = time.monotonic()
        for fid, feed in list(self.feeds.items()):
            if feed.lease_until < now:
                self.feeds.pop(fid, None)
                feed.stop()
            else:
                feed.report()


async def _in_thread(link: NatsLink, fn: Callable[[], Any]) -> Any:
    """Run a blocking ``fn`` on a thread of its own; its result, on the loop."""
    loop = link.loop.loop
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    start_thread(f"bus:{link.bus.name}/nats-control", work)
    return await future
