"""Live stubs: a console replaces a command's handler in a running bus, for a while.

    stub = bus.stubs.add("thermostat.read_sensor", raises="TimeoutError: no answer", times=3)
    bus.execute_command("thermostat.read_sensor", "office").result()   # TimeoutError
    bus.stubs.remove("thermostat.read_sensor")                        # the real one again

The stand-in is a ``Handler`` on the real handler's own runtime, put in the
real one's place by the router in one step, so a caller never finds the
command missing. It runs on the owner's thread, in mailbox order, so the
order and deadlock rules are those of the real command; it keeps the real
command's binder (its signature and typed contract: it refuses what the
real one would), its ``readonly`` and doc, and shares its statistics. Its
spans carry ``bus.stubbed=true``, and ``inspect()`` shows its ``stub``.

A stub ends after its time (ten minutes by default), after ``times`` calls,
on ``remove``, or at ``close()``: the real handler is back, and work queued
for the stand-in before then runs the real handler.
"""

from __future__ import annotations

import builtins
import copy
import functools
import json
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from ._errors import BusClosedError, BusError, CommandNotFoundError
from ._holds import DEFAULT_SECONDS, check_seconds
from ._patterns import validate_name
from ._router import Handler

if TYPE_CHECKING:
    from ._bus import BusCore
    from ._threads import TimerHandle

__all__ = ["NoSuchStubError", "Stub", "Stubs", "exception_from"]

_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class NoSuchStubError(BusError, LookupError):
    """``unstub`` of a command that is not stubbed."""


def exception_from(text: str) -> Callable[[], Exception]:
    """What makes the exception ``'Type: message'`` describes, one per call.

    ``Type`` is a builtin exception's name (``ValueError``, ``TimeoutError``);
    any other name makes a ``RuntimeError`` that says which type was asked
    for. Text with no type (``'no room'``) is a ``RuntimeError``'s message.

    Raises:
        ValueError: ``text`` is empty.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("raises must be 'Type: message' (a builtin exception type), not empty")
    head, colon, tail = text.partition(":")
    head, tail = head.strip(), tail.strip()
    if not colon:
        head, tail = (text.strip(), "") if _TYPE_NAME.fullmatch(text.strip()) else ("", text)
    if head and not _TYPE_NAME.fullmatch(head):
        head, tail = "", text.strip()
    kind = getattr(builtins, head, None) if head else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            kind(tail) if tail else kind()
        except Exception:  # a builtin that takes other arguments (UnicodeDecodeError)
            kind = None
        else:
            builtin = kind
            return (lambda: builtin(tail)) if tail else builtin
    if not head:
        return functools.partial(RuntimeError, tail)
    message = f"{head}: {tail}" if tail else head
    note = f"{message} (the stub raises RuntimeError: {head} is not a builtin exception type)"
    return functools.partial(RuntimeError, note)


class Stub:
    """One live stub: what it stands in for, what it does, and for how long.

    Attributes:
        name: the command.
        original: the real handler, put back when the stub ends.
        handler: the stand-in.
        returns: what each call returns (a deep copy of it), unless ``raises``.
        raises: ``'Type: message'``: what each call raises instead.
        times: how many calls it answers (``None``: any number).
        calls: how many it has answered.
        seconds: how long it lasts.
        created: when it was put in place, seconds since the epoch.
    """

    def __init__(
        self,
        name: str,
        original: Handler,
        returns: Any,
        raises: str | None,
        times: int | None,
        seconds: float,
    ) -> None:
        self.name = name
        self.original = original
        self.returns = returns
        self.raises = raises
        self._error = None if raises is None else exception_from(raises)
        self.times = times
        self.calls = 0
        self.seconds = seconds
        self.created = time.time()
        self.ended = False
        self.handler: Handler = original  # the stand-in, once made
        self._until = time.monotonic() + seconds
        self._timer: TimerHandle | None = None
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Count one call it answers; ``False`` once it has ended or is used up."""
        with self._lock:
            if self.ended or (self.times is not None and self.calls >= self.times):
                return False
            self.calls += 1
            return True

    @property
    def used_up(self) -> bool:
        """Whether it has answered its ``times`` calls."""
        return self.times is not None and self.calls >= self.times

    def answer(self) -> Any:
        """What one call gets: the value to return, or the exception raised."""
        if self._error is not None:
            raise self._error()
        return copy.deepcopy(self.returns)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: name, returns (JSON text), raises, times, calls, expires_in, handler."""
        returns = None
        if self.raises is None:
            try:
                returns = json.dumps(self.returns, separators=(",", ":"))
            except (TypeError, ValueError):
                returns = json.dumps({"$repr": repr(self.returns)})
        return {
            "name": self.name,
            "service": self.original.destination.name,
            "handler": self.original.qualname,
            "returns": returns,
            "raises": self.raises,
            "times": self.times,
            "calls": self.calls,
            "created": self.created,
            "expires_in": round(max(0.0, self._until - time.monotonic()), 3),
        }


_UNSET: Any = object()


class Stubs:
    """The live stubs of one bus. Thread-safe: any thread."""

    def __init__(self, core: BusCore) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._stubs: dict[str, Stub] = {}
        self._closed = False

    def add(
        self,
        name: str,
        *,
        returns: Any = _UNSET,
        raises: str | None = None,
        seconds: float = DEFAULT_SECONDS,
        times: int | None = None,
    ) -> Stub:
        """Stand in for command ``name`` of this process: return ``returns``, or raise.

        A command already stubbed gets the new stub in place of the old.

        Raises:
            CommandNotFoundError: no command of that name in this process.
            ValueError, TypeError: both ``returns`` and ``raises``, a bad
                ``raises``, ``seconds`` or ``times``.
            BusClosedError: the bus is closed.
        """
        validate_name(name, "command name")
        seconds = check_seconds(seconds)
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"times must be a whole number of calls, at least 1, not {times!r}")
        if raises is not None and returns is not _UNSET:
            raise ValueError("a stub returns a value or raises, not both")
        current = self._core.router.local_command(name)
        if current is None:
            self._core.router.command(name)  # unknown: raises with close matches
            raise CommandNotFoundError(name)  # another process's: stub it there
        original = current.stub.original if current.stub is not None else current
        stub = Stub(name, original, None if returns is _UNSET else returns, raises, times, seconds)
        stub.handler = self._stand_in(stub)
        with self._lock:
            if self._closed or self._core.closed:
                raise BusClosedError(f"bus {self._core.name!r} is closed")
            if not self._core.router.swap(current, stub.handler):
                raise BusError(f"command {name!r} changed while it was being stubbed: try again")
            old = self._stubs.get(name)
            if old is not None:
                self._end(old)
            self._stubs[name] = stub
        stub._timer = self._core._timers.schedule(seconds, functools.partial(self._expire, stub))
        return stub

    def remove(self, name: str) -> Stub:
        """Put the real handler of ``name`` back.

        Raises:
            NoSuchStubError: ``name`` is not stubbed.
        """
        with self._lock:
            stub = self._stubs.pop(name, None)
            if stub is None or not self._live(stub):
                names = ", ".join(n for n, s in self._stubs.items() if self._live(s))
                raise NoSuchStubError(
                    f"command {name!r} is not stubbed"
                    + (f" (stubbed: {names})" if names else " (nothing is stubbed)")
                )
            self._end(stub)
        return stub

    def stubs(self) -> list[Stub]:
        """The stubs in place, by name."""
        with self._lock:
            return sorted((s for s in self._stubs.values() if self._live(s)), key=lambda s: s.name)

    def count(self) -> int:
        """How many stubs are in place."""
        return len(self.stubs())

    def close(self) -> None:
        """Every real handler back (``close()``)."""
        with self._lock:
            self._closed = True
            for stub in list(self._stubs.values()):
                self._end(stub)
            self._stubs.clear()

    # -- internals ----------------------------------------------------------------------

    def _live(self, stub: Stub) -> bool:
        # A stub whose command was disposed of meanwhile went with it (Router.remove).
        return self._core.router.local_command(stub.name) is stub.handler

    def _end(self, stub: Stub) -> None:
        # Under the lock.
        stub.ended = True
        if stub._timer is not None:
            stub._timer.cancel()
        self._core.router.swap(stub.handler, stub.original)

    def _expire(self, stub: Stub) -> None:
        """The stub's time is up, or its calls (the timer or the owner's thread)."""
        with self._lock:
            if self._stubs.get(stub.name) is stub:
                del self._stubs[stub.name]
                self._end(stub)

    def _stand_in(self, stub: Stub) -> Handler:
        original = stub.original
        real = original.fn
        expire = self._expire

        def answer_or_not() -> bool:
            # On the owner's thread. Work queued for the stand-in after the
            # stub ended runs the real handler, as work sent after it does.
            if not stub.take():
                return False
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("bus.stubbed", True)
            if stub.used_up:
                expire(stub)
            return True

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            return stub.answer() if answer_or_not() else real(*args, **kwargs)

        async def async_stand_in(*args: Any, **kwargs: Any) -> Any:
            # An async command's stand-in is async too, so it runs as a task
            # on its service's loop and, once the stub has ended, awaits the
            # real handler rather than returning its coroutine unawaited.
            return stub.answer() if answer_or_not() else await real(*args, **kwargs)

        fn = async_stand_in if original.is_async else stand_in
        fn.__qualname__ = f"stub of {original.qualname}"
        handler = Handler(
            "command",
            original.name,
            fn,
            original.destination,
            self._core.router.next_seq(),
            readonly=original.readonly,
            doc=original.doc,
        )
        # The real command's signature and typed contract, and its statistics.
        handler.binder = original.binder
        handler.stats = original.stats
        handler.dispatched = original.dispatched
        handler.stub = stub
        return handler
