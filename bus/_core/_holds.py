"""Holds: a console stops matching work where it is posted, then lets it go, edited or not.

    hold = bus.holds.add("lights.turn_on", kind="call", seconds=600)
    future = bus.execute_command("lights.turn_on", "hall")    # held: the caller waits
    [item] = bus.holds.held()
    bus.holds.release(item.id, set={"brightness": 40})          # converted, then posted
    bus.holds.drop(item.id)                                     # or: DroppedByConsoleError

A hold catches command calls and event deliveries whose name matches its
pattern (optionally only calls or only deliveries, only one service's) at
the moment they are posted to the owner's mailbox: after routing and the
argument checks, so what is held is work that would have run. A held call's
caller waits on its future as on a slow handler; a held delivery never made
its firer wait. Released, the item goes to its mailbox as it was or with
edited arguments, converted and checked with the typed contract exactly as
a console call is; dropped, a call fails with ``DroppedByConsoleError`` and
a delivery is counted as dropped.

Nothing held is lost: a hold ends after its time (ten minutes by default)
and releases what it holds, and ``close()`` releases everything before it
waits for the work in flight.

What a hold is, and what it holds, are ``Hold`` and ``Held`` (``_held``);
this module is ``Holds``, the table of them and how items go and come.

Where it sits: a gated runtime's ``post`` (an instance attribute shadowing
``Runtime.post``, as ``Bus(validate=True)`` shadows the verbs) looks at
each item while any hold is set, whatever posted it: the verbs, a timer, a
transport serving another process. With no hold set no runtime is gated
and posting runs exactly the code it runs without this module.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ._contract import convert_arguments
from ._errors import BusClosedError, DroppedByConsoleError
from ._held import DEFAULT_SECONDS, MAX_SECONDS, Held, Hold, Kind, NoSuchHoldError, check_seconds
from ._patterns import validate_pattern
from ._runtime import TASK, Runtime

if TYPE_CHECKING:
    from ._bus import BusCore
    from ._router import Handler

__all__ = [
    "DEFAULT_SECONDS",
    "MAX_SECONDS",
    "Held",
    "Hold",
    "Holds",
    "NoSuchHoldError",
    "check_seconds",
]


class Holds:
    """The holds of one bus and what they hold. Thread-safe: any thread."""

    def __init__(self, core: BusCore) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._holds: dict[int, Hold] = {}
        self._held: dict[int, Held] = {}  # in the order they were caught
        self._hold_ids = itertools.count(1)
        self._item_ids = itertools.count(1)
        self._gated: set[Runtime] = set()
        self._closed = False
        # Read without the lock on every gated post: replaced, never mutated.
        self._active: tuple[Hold, ...] = ()

    # -- holds ------------------------------------------------------------------------

    def add(
        self,
        pattern: str,
        *,
        kind: Kind | None = None,
        service: str | None = None,
        seconds: float = DEFAULT_SECONDS,
    ) -> Hold:
        """Hold work matching ``pattern`` from now on, for ``seconds``.

        Raises:
            ValueError: a bad pattern, kind or time; a service not on the bus.
            BusClosedError: the bus is closed.
        """
        validate_pattern(pattern)
        if kind not in (None, "call", "event"):
            raise ValueError(f"kind must be 'call', 'event' or None, not {kind!r}")
        seconds = check_seconds(seconds)
        names = {rt.name for rt in self._core.runtimes()} | {"pool"}
        if service is not None and service not in names:
            raise ValueError(
                f"no service named {service!r} on bus {self._core.name!r} "
                f"(services: {', '.join(sorted(names))})"
            )
        runtimes = [*self._core.runtimes(), self._core._pool]
        with self._lock:
            if self._closed or self._core.closed:
                raise BusClosedError(f"bus {self._core.name!r} is closed")
            hold = Hold(next(self._hold_ids), pattern, kind, service, seconds)
            hold._until = time.monotonic() + seconds
            self._holds[hold.id] = hold
            self._active = tuple(self._holds.values())
            for runtime in runtimes:
                self._gate(runtime)
            self._core.post_every_fire(True)
        hold._timer = self._core._timers.schedule(seconds, functools.partial(self._expire, hold))
        return hold

    def remove(self, which: int | str) -> tuple[list[Hold], list[int]]:
        """End the hold ``which`` (an id), or every hold on pattern ``which``.

        What they held goes on, as it was. Returns the holds ended and the
        ids of the items released.

        Raises:
            NoSuchHoldError: no hold has that id or pattern.
        """
        with self._lock:
            if isinstance(which, int) and not isinstance(which, bool):
                ended = [self._holds[which]] if which in self._holds else []
            else:
                ended = [h for h in self._holds.values() if h.pattern == which]
            if not ended:
                known = ", ".join(f"{h.id} ({h.pattern})" for h in self._holds.values())
                raise NoSuchHoldError(
                    f"no hold {which!r}" + (f"; holds: {known}" if known else "; nothing is held")
                )
            for hold in ended:
                self._end(hold)
        return ended, self._release_all([h.id for h in ended])

    def holds(self) -> list[dict[str, Any]]:
        """Every hold, described (``Hold.describe``), oldest first."""
        with self._lock:
            counts: dict[int, int] = {}
            for item in self._held.values():
                counts[item.hold.id] = counts.get(item.hold.id, 0) + 1
            return [h.describe(counts.get(h.id, 0)) for h in self._holds.values()]

    def held(self) -> list[Held]:
        """What is held now, in the order it was caught."""
        with self._lock:
            return list(self._held.values())

    def counts(self) -> tuple[int, int]:
        """``(holds, items held)``."""
        with self._lock:
            return len(self._holds), len(self._held)

    # -- what is held ----------------------------------------------------------------

    def release(
        self,
        item_id: int,
        *,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        set: Mapping[str, Any] | None = None,
    ) -> Held:
        """Let held item ``item_id`` go, with edited arguments if any are given.

        ``args`` replaces the positional arguments and ``kwargs`` the keyword
        ones; ``set`` changes parameters by name (a parameter given by
        position is changed in its place, any other becomes a keyword). The
        result is converted and checked as a console call is: a command's
        against its handler's signature and annotations, an event's against
        its declared payload type and the listener's signature.

        Raises:
            NoSuchHoldError: nothing is held with that id.
            TypeError: the edited arguments do not bind.
            InvalidArgumentError: an edited argument does not convert.
        """
        item = self._get(item_id)
        edited = args is not None or kwargs is not None or bool(set)
        new_args, new_kwargs = item.args, item.kwargs
        if edited:
            new_args, new_kwargs = self._edit(item, args, kwargs, set)
        with self._lock:
            if self._held.pop(item_id, None) is None:
                raise NoSuchHoldError(f"held item {item_id} was let go meanwhile")
        original = (item.args, item.kwargs) if edited else None
        self._post(item, new_args, new_kwargs, original)
        return item

    def release_all(self) -> list[int]:
        """Let everything held go, as it was, in the order it was caught."""
        return self._release_all(None)

    def drop(self, item_id: int) -> Held:
        """Drop held item ``item_id``: a call fails, a delivery is counted as dropped.

        Raises:
            NoSuchHoldError: nothing is held with that id.
        """
        with self._lock:
            item = self._held.pop(item_id, None)
        if item is None:
            raise self._missing(item_id)
        self._drop(item)
        return item

    def drop_all(self) -> list[int]:
        """Drop everything held."""
        with self._lock:
            items = list(self._held.values())
            self._held.clear()
        for item in items:
            self._drop(item)
        return [item.id for item in items]

    # -- the bus's side --------------------------------------------------------------

    def adopt(self, runtime: Runtime) -> None:
        """A runtime got a handler: gate it if holds are set (``BusCore._register``)."""
        if self._active:
            with self._lock:
                if self._holds:
                    self._gate(runtime)

    def close(self) -> list[int]:
        """No more holds; everything held goes on (``close()``, before it waits)."""
        with self._lock:
            self._closed = True
            for hold in list(self._holds.values()):
                self._end(hold)
        return self._release_all(None)

    # -- internals ---------------------------------------------------------------------

    def _gate(self, runtime: Runtime) -> None:
        # Under the lock.
        if runtime not in self._gated:
            self._gated.add(runtime)
            runtime.post = functools.partial(self._posted, runtime)  # type: ignore[method-assign]

    def _end(self, hold: Hold) -> None:
        # Under the lock.
        self._holds.pop(hold.id, None)
        self._active = tuple(self._holds.values())
        if hold._timer is not None:
            hold._timer.cancel()
        if not self._holds:
            for runtime in self._gated:
                vars(runtime).pop("post", None)  # Runtime.post again
            self._gated.clear()
            self._core.post_every_fire(False)

    def _expire(self, hold: Hold) -> None:
        """The hold's time is up (the timer thread): it ends, its items go on."""
        with self._lock:
            if self._holds.get(hold.id) is not hold:
                return
            self._end(hold)
        self._release_all([hold.id])

    def _posted(self, runtime: Runtime, item: tuple[Any, Any, Any, Any, Any]) -> int:
        """``runtime.post`` while holds are set: hold the item, or post it."""
        active = self._active
        if active and runtime.accepting:
            handler, args, kwargs, tag, ticket = item
            if tag is not TASK:
                kind: Kind = "event" if type(tag) is str else "call"
                name = tag if kind == "event" else handler.name
                for hold in active:
                    if hold.matches(kind, name, runtime.name):
                        with self._lock:
                            if hold.id in self._holds and not self._closed:
                                held = Held(
                                    next(self._item_ids), hold, kind, name, handler, runtime,
                                    args, kwargs, tag, ticket,
                                )  # fmt: skip
                                self._held[held.id] = held
                                hold.caught += 1
                                return 0
                        break
        return Runtime.post(runtime, item)

    def _get(self, item_id: int) -> Held:
        with self._lock:
            item = self._held.get(item_id)
        if item is None:
            raise self._missing(item_id)
        return item

    def _missing(self, item_id: object) -> NoSuchHoldError:
        with self._lock:
            ids = list(self._held)
        known = f"; held: {', '.join(map(str, ids[:20]))}" if ids else "; nothing is held"
        return NoSuchHoldError(f"nothing held with id {item_id!r}{known}")

    def _edit(
        self,
        item: Held,
        args: list[Any] | tuple[Any, ...] | None,
        kwargs: Mapping[str, Any] | None,
        changes: Mapping[str, Any] | None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        new_args = list(item.args if args is None else args)
        new_kwargs = dict(item.kwargs if kwargs is None else kwargs)
        if changes:
            positions = _positions(item.handler)
            for name, value in changes.items():
                index = positions.get(name)
                if index is not None and index < len(new_args):
                    new_args[index] = value
                else:
                    new_kwargs[name] = value
        if item.kind == "call":
            return convert_arguments(item.handler, new_args, new_kwargs)
        contract = self._core.events.get(item.name)
        converted: tuple[Any, ...] = tuple(new_args)
        if contract is not None:
            converted, new_kwargs = contract.convert(converted, new_kwargs)
        item.handler.binder.check(converted, new_kwargs)
        return converted, new_kwargs

    def _release_all(self, hold_ids: list[int] | None) -> list[int]:
        with self._lock:
            items = [
                item for item in self._held.values() if hold_ids is None or item.hold.id in hold_ids
            ]
            for item in items:
                del self._held[item.id]
        for item in items:
            self._post(item, item.args, item.kwargs, None)
        return [item.id for item in items]

    def _marked(self, item: Held, original: Any, args: Any, kwargs: Any) -> Any:
        observer = self._core.observer
        if item.ticket is None or observer is None:
            return item.ticket
        return observer.held(item.ticket, item.waited * 1000, original, args, kwargs)

    def _post(
        self,
        item: Held,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        original: tuple[tuple[Any, ...], dict[str, Any]] | None,
    ) -> None:
        ticket = self._marked(item, original, args, kwargs)
        handler, runtime = item.handler, item.runtime
        status = Runtime.post(runtime, (handler, args, kwargs, item.tag, ticket))
        if not status:
            return
        # The mailbox refused it (full, stopped, failed): as if it had been then.
        observer = self._core.observer
        handler.stats.refuse()
        if item.kind == "call":
            error = runtime.call_refused(status)
            if ticket is not None and observer is not None:
                observer.call_refused(ticket, handler, error)
            _fail(item.tag, error)
        else:
            error = runtime.delivery_refused(status, item.name, handler)
            if ticket is not None and observer is not None:
                observer.delivery_refused(ticket, handler, error)

    def _drop(self, item: Held) -> None:
        ticket = self._marked(item, None, item.args, item.kwargs)
        handler, runtime = item.handler, item.runtime
        observer = self._core.observer
        handler.stats.skip(cancelled=item.cancelled)
        hold = item.hold
        if item.kind == "call":
            error = DroppedByConsoleError(
                item.name,
                hold.id,
                f"{item.name}: the call was dropped by a console "
                f"(held {item.waited:.1f}s by hold {hold.id} on {hold.pattern!r})",
            )
            if ticket is not None and observer is not None:
                observer.call_refused(ticket, handler, error)
            _fail(item.tag, error)
            return
        with runtime._lock:
            runtime.dropped += 1
        event_error = DroppedByConsoleError(
            item.name,
            hold.id,
            f"{item.name}: the delivery to {handler.qualname} was dropped by a console "
            f"(hold {hold.id} on {hold.pattern!r})",
        )
        if ticket is not None and observer is not None:
            observer.delivery_refused(ticket, handler, event_error)


def _fail(future: Future[Any], error: BaseException) -> None:
    """Fail a held call's future, unless its caller cancelled it."""
    if future.set_running_or_notify_cancel():
        future.set_exception(error)


def _positions(handler: Handler) -> dict[str, int]:
    """The position of each parameter that can be given by position."""
    signature = handler.binder.signature
    if signature is None:
        return {}
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: i for i, p in enumerate(signature.parameters.values()) if p.kind in kinds}
