"""Helpers for testing your own services against a real bus, without sleeps.

    from bus.testing import capture_events, stub_command, wait_idle

    def test_motion_turns_the_light_on(bus):
        with stub_command(bus, "notify.send", return_value=None) as notify, \\
             capture_events(bus, "lights.*") as events:
            bus.fire_event("motion.detected", room="hall")
            wait_idle(bus)
        assert events.names() == ["lights.changed"]
        assert notify.calls == [((), {"message": "light on in hall"})]

Everything here works on the public bus and may be called from the test's
own thread (never from a handler).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._bus import Bus
from ._core._dispatch import is_async_callable
from ._core._patterns import pattern_matches, validate_pattern
from ._core._router import Handler

__all__ = ["CapturedEvent", "EventCapture", "Stub", "capture_events", "stub_command", "wait_idle"]


def wait_idle(bus: Bus, timeout: float = 10.0) -> None:
    """Block until every mailbox is empty and no handler runs.

    Raises:
        TimeoutError: the bus was still busy after ``timeout`` seconds.
    """
    if not bus.wait_idle(timeout):
        busy = [s["name"] for s in bus.inspect()["services"] if s["activity"] != "idle"]
        raise TimeoutError(f"bus {bus.name!r} still busy after {timeout}s: {busy}")


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """One ``fire_event`` seen by ``capture_events``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class EventCapture:
    """The events fired while a ``capture_events`` block runs, in firing order.

    Thread-safe: events fired on any thread are appended as they are fired.
    """

    pattern: str
    events: list[CapturedEvent] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def _add(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if pattern_matches(self.pattern, name):
            with self._cond:
                self.events.append(CapturedEvent(name, args, dict(kwargs)))
                self._cond.notify_all()

    def names(self) -> list[str]:
        """The names of the captured events, in order."""
        with self._cond:
            return [e.name for e in self.events]

    def named(self, name: str) -> list[CapturedEvent]:
        """The captured events called ``name``."""
        with self._cond:
            return [e for e in self.events if e.name == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> list[CapturedEvent]:
        """Block until ``count`` events called ``name`` were fired; return them.

        Raises:
            TimeoutError: fewer had been fired after ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.named_unlocked(name)) >= count, timeout):
                raise TimeoutError(
                    f"{len(self.named_unlocked(name))} of {count} {name!r} events after {timeout}s"
                )
            return self.named_unlocked(name)

    def named_unlocked(self, name: str) -> list[CapturedEvent]:
        """As ``named``, for callers already holding the lock."""
        return [e for e in self.events if e.name == name]

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[CapturedEvent]:
        return iter(list(self.events))


@contextmanager
def capture_events(bus: Bus, pattern: str = "*") -> Iterator[EventCapture]:
    """Record every event matching ``pattern`` fired inside the block.

    Events are recorded when ``fire_event`` is called, on the firing thread,
    so the order is the order they were fired in, and nothing is registered
    as a listener (the bus's statistics are untouched).
    """
    capture = EventCapture(validate_pattern(pattern))
    # One bound method for both calls: each ``capture._add`` is a new object,
    # and the bus removes a tap by identity.
    tap = capture._add
    bus._add_tap(tap)
    try:
        yield capture
    finally:
        bus._remove_tap(tap)


@dataclass
class Stub:
    """A stand-in for a command: what it was called with, what it returns."""

    name: str
    fn: Callable[..., Any]
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls.append((args, kwargs))
        return self.fn(*args, **kwargs)


_UNSET: Any = object()


def _handler(stub: Stub) -> Callable[..., Any]:
    """What the bus runs for ``stub``: an ``async def`` when its ``fn`` is one.

    The bus runs a coroutine function's calls as tasks and awaits them; a
    plain callable returning a coroutine would hand the caller the coroutine
    unawaited.
    """
    if is_async_callable(stub.fn):

        async def stand_in_async(*args: Any, **kwargs: Any) -> Any:
            return await stub(*args, **kwargs)

        return stand_in_async

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return stub(*args, **kwargs)

    return stand_in


def _signed(stub: Stub, original: Handler) -> Callable[..., Any]:
    """``stub``, wearing the signature of the handler it stands in for."""
    stand_in = _handler(stub)
    signature = original.binder.signature
    if signature is not None:
        stand_in.__signature__ = signature  # type: ignore[attr-defined]
        # Where the annotations are resolved: the module the real handler was written in.
        stand_in.__wrapped__ = original.fn  # type: ignore[attr-defined]
    stand_in.__qualname__ = f"stub of {original.qualname}"
    return stand_in


@contextmanager
def stub_command(
    bus: Bus,
    name: str,
    fn: Callable[..., Any] | None = None,
    *,
    return_value: Any = _UNSET,
    raises: BaseException | None = None,
) -> Iterator[Stub]:
    """Replace command ``name`` for the duration of the block.

    Give ``fn`` (called with the command's arguments), or ``return_value``, or
    ``raises``. The stub runs on the bus's pool and records its calls. The
    command need not exist; if it does, its handler is put back afterwards
    and its owner never sees the calls made in between.

    A stub of an existing command keeps its signature, annotations, doc and
    ``readonly``: it refuses the arguments the real command would refuse
    (``TypeError`` when they do not bind; ``InvalidArgumentError`` when one
    does not convert, at the console or on a ``Bus(validate=True)``), and
    it is given them converted as the real handler would be.
    """
    if fn is None:
        if raises is not None:
            error = raises

            def fn(*args: Any, **kwargs: Any) -> Any:
                raise error

        else:
            value = None if return_value is _UNSET else return_value

            def fn(*args: Any, **kwargs: Any) -> Any:
                return value

    stub = Stub(name, fn)
    original: Handler | None = bus.router.take(name)
    try:
        if original is None:
            handler = _handler(stub)
            handler.__qualname__ = f"stub of {name}"
            registration = bus.register_command(name, handler)
        else:
            registration = bus.register_command(
                name, _signed(stub, original), readonly=original.readonly, doc=original.doc
            )
    except BaseException:
        if original is not None:
            bus.router.put_back(original)
        raise
    try:
        yield stub
    finally:
        registration.dispose()
        if original is not None:
            bus.router.put_back(original)
