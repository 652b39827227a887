"""A bus in this process as the TUI's ``Source``, read directly rather than over a socket.

    source = LocalSource(bus)               # tests, and buses without a control endpoint
    future = source.execute("greet", ["Ada"], {})
    source.cancel(future)                   # not yet dispatched: it never runs
    source.close()

It answers as the control endpoint would (arguments converted and refused
alike, results written as JSON, other methods through ``bus.control.answer``),
so a screen cannot tell it from ``busctl.tui._source.ClientSource``. Work runs
on a small pool of its own threads; activity callbacks run on bus threads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ._source import ActivityCallback, Kind

if TYPE_CHECKING:
    from bus import Bus, CommandFuture
    from busctl._cancel import CancelOutcome

__all__ = ["LocalSource"]


class LocalSource:
    """A bus in this process, read directly (tests, and buses without a control endpoint).

    Args:
        bus: the bus; closed with the source only when ``owned``.
        owned: whether ``close()`` closes the bus.
    """

    def __init__(self, bus: Bus, *, owned: bool = False) -> None:
        self.bus = bus
        self.name = bus.name
        self.embedded = owned
        self.address = "(in this process)"
        self._owned = owned
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="busctl-tui")
        self._unwatch: Any = None
        self._lost: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._running: dict[Future[Any], _Placed] = {}  # what cancel() needs, by call

    @property
    def closed(self) -> bool:
        """Whether the source or the bus is closed."""
        return self._closed or self.bus.closed

    def inspect(self) -> Future[dict[str, Any]]:
        """The bus's ``inspect()`` snapshot, taken on a worker thread."""
        return self._submit(self.bus.inspect)

    def traces(self, trace_id: str) -> Future[dict[str, Any]]:
        """One trace from the bus's span ring, OTLP-encoded on a worker thread."""

        def read() -> dict[str, Any]:
            from bus.otlp import encode_spans

            self.bus.flush_traces(timeout=2.0)
            return encode_spans(self.bus.spans.trace(int(trace_id, 16)))

        return self._submit(read)

    def execute(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[Any]:
        """Run command ``name`` as the control endpoint would; the future holds its result.

        The arguments are converted to the handler's types first and the
        result written as JSON (``bus.schema``), so the form shows what it
        shows over a socket; a value that does not convert fails the future
        with the endpoint's ``INVALID_ARGUMENT`` error, and nothing runs.
        """

        placed = _Placed()

        def run() -> Any:
            from concurrent.futures import CancelledError

            from bus.control.protocol import ErrorCode
            from bus.schema import to_json

            from .._remote import RemoteError

            command: CommandFuture | None = None
            try:
                converted, named = self._converted("command", name, args, kwargs)
                command = self.bus.execute_command(name, *converted, **named)
            finally:
                asked = placed.dispatched(command, self._lock)
            assert command is not None  # else the refusal was raised
            if asked is not None:  # cancel() came while it was being dispatched
                asked.set_result(_cancel_command(command))
            try:
                value = command.result(timeout=30.0)
            except CancelledError:  # as the control endpoint answers a cancelled execute
                raise RemoteError(
                    ErrorCode.CANCELLED, "the command was cancelled", {"type": "CancelledError"}
                ) from None
            return to_json(value)[0]

        call = self._submit(run)
        with self._lock:
            self._running[call] = placed
        call.add_done_callback(self._ended)
        return call

    def _ended(self, call: Future[Any]) -> None:
        with self._lock:
            self._running.pop(call, None)

    def cancel(self, call: Future[Any]) -> Future[CancelOutcome]:
        """Cancel ``call``: a command not yet dispatched never runs; else the bus's ``cancel()``."""
        out: Future[CancelOutcome] = Future()
        with self._lock:
            placed = self._running.get(call)
            if placed is None or call.done():
                out.set_result("finished")
                return out
            command = placed.command
            if command is None:
                if call.cancel():  # still queued here: it never reaches the bus
                    out.set_result("cancelled")
                else:  # being converted and dispatched: cancelled once it is
                    placed.asked = out
                return out
        out.set_result(_cancel_command(command))
        return out

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        """Fire event ``name`` (a declared payload converted first); the future holds
        the number of matching listeners."""

        def run() -> int:
            from bus.patterns import pattern_matches

            converted, named = self._converted("event", name, args, kwargs)
            self.bus.fire_event(name, *converted, **named)
            inspected = self.bus.inspect()
            return sum(1 for li in inspected["listeners"] if pattern_matches(li["pattern"], name))

        return self._submit(run)

    def schema(self, name: str) -> Future[dict[str, Any]]:
        """The bus's JSON Schema of ``name`` (``{}`` for a name it does not describe)."""

        def read() -> dict[str, Any]:
            from bus.schema import json_schema

            try:
                return json_schema(self.bus, name)
            except LookupError:
                return {}

        return self._submit(read)

    def check(self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[bool]:
        """Convert and check the arguments as ``execute``/``fire`` would, running nothing."""

        def run() -> bool:
            if kind == "event":
                from bus.patterns import validate_name

                validate_name(name, "event name")
            self._converted(kind, name, args, kwargs)
            return True

        return self._submit(run)

    def _converted(
        self, kind: Kind, name: str, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        from bus.schema import convert_call, convert_event

        from .._remote import refusal

        convert = convert_call if kind == "command" else convert_event
        try:
            return convert(self.bus, name, args, kwargs)
        except Exception as exc:  # refused as the control endpoint refuses it
            signature = next(
                (c.get("signature") for c in self.bus.inspect()["commands"] if c["name"] == name),
                None,
            )
            refused = refusal(exc, signature)
            if refused is None:
                raise
            raise refused from None

    def request(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Any other method, answered in process as the bus's server would (``answer``)."""

        def run() -> Any:
            from bus.control import RequestError, answer
            from busctl._remote import RemoteError

            try:
                return answer(self.bus, method, params)
            except RequestError as exc:
                raise RemoteError(exc.code, exc.message, exc.data) from None

        return self._submit(run)

    @property
    def dropped(self) -> int:
        """Always 0: watching in-process drops nothing (the feed may)."""
        return 0

    def subscribe(self, callback: ActivityCallback) -> None:
        """Watch the bus's activity; ``callback`` runs on bus threads."""
        self._unwatch = self.bus.watch(lambda activity: callback(activity.to_json()))

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the source is closed (the bus's close is not observed)."""
        with self._lock:
            if not self._closed:
                self._lost.append(callback)
                return
        callback()

    def close(self) -> None:
        """Stop watching; close the bus when owned. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            callbacks, self._lost = self._lost, []
        if self._unwatch is not None:
            with contextlib.suppress(Exception):
                self._unwatch.dispose()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owned:
            with contextlib.suppress(Exception):
                self.bus.close()
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()

    def _submit(self, fn: Callable[[], Any]) -> Future[Any]:
        try:
            return self._pool.submit(fn)
        except RuntimeError as exc:  # the pool is shut down: the source is closed
            from busctl._client import ConnectionLost

            failed: Future[Any] = Future()
            failed.set_exception(ConnectionLost(f"bus {self.name} is closed ({exc})"))
            return failed


class _Placed:
    """A ``LocalSource`` call's command once dispatched, and a cancel asked before that."""

    def __init__(self) -> None:
        self.command: CommandFuture | None = None
        self.asked: Future[CancelOutcome] | None = None

    def dispatched(
        self, command: CommandFuture | None, lock: threading.Lock
    ) -> Future[CancelOutcome] | None:
        """Record the command (``None``: it was refused); return a cancel asked meanwhile."""
        with lock:
            self.command = command
            asked, self.asked = self.asked, None
        if asked is not None and command is None:
            asked.set_result("finished")  # refused before it ran: nothing to cancel
            return None
        return asked


def _cancel_command(command: CommandFuture) -> CancelOutcome:
    if command.cancel():
        return "cancelled"
    return "finished" if command.done() else "sync"
