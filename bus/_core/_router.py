"""Routing: who owns each command, who listens to each event, and where work goes.

This is the routing seam. Everything that decides where work goes lives
behind ``Router``: the bus asks it for a command's handler or an event's
listeners and never looks at the tables itself. Each ``Handler`` names its
``Destination``, the thing the work is posted to: a local service's mailbox
(``Runtime``) today; a peer in another process for a transport over a
distributed engine, which adds handlers whose destination is remote, while
neither the four verbs nor the services change.
"""

from __future__ import annotations

import difflib
import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._binding import Binder
from ._dispatch import is_async_callable
from ._errors import CommandExistsError, CommandNotFoundError
from ._patterns import pattern_matches, validate_name
from ._stats import HandlerStats

if TYPE_CHECKING:
    from ._errors import BusError

__all__ = ["Destination", "Handler", "Registration", "Router"]

_ROUTE_CACHE_LIMIT = 4096


class Destination(Protocol):
    """Where the router sends work for a handler: a mailbox, local or remote.

    ``post`` takes the item ``(handler, args, kwargs, tag, ticket)`` (see
    ``_runtime``) from any thread and never blocks: it returns 0 when the
    work is on its way, else a refusal status, which ``call_refused`` or
    ``delivery_refused`` counts and turns into the error to report.
    """

    name: str
    """The service that handles the work (``"pool"`` for the shared pool)."""

    shared: bool
    """Whether several threads finish its handlers (their statistics lock)."""

    concurrency: int
    """Threads serving it: the deadlock check's idea of when it is stuck."""

    def post(self, item: tuple[Any, Any, Any, Any, Any]) -> int:
        """Send the work; 0, or why not."""

    def call_refused(self, status: int) -> BusError:
        """Count a command ``post`` refused with ``status``; the error to raise."""

    def delivery_refused(self, status: int, event: str, handler: Handler) -> BusError:
        """Count and log an event delivery ``post`` refused; the error to record."""


class Handler:
    """One registered command or listener, where its work goes, and its statistics."""

    __slots__ = (
        "binder",
        "broadcast",
        "destination",
        "dispatched",
        "doc",
        "fn",
        "is_async",
        "kind",
        "lane",
        "name",
        "qualname",
        "readonly",
        "registered_at",
        "seq",
        "stats",
        "stub",
    )

    def __init__(
        self,
        kind: Literal["command", "listener"],
        name: str,
        fn: Callable[..., Any],
        destination: Destination,
        seq: int,
        *,
        readonly: bool = False,
        doc: str | None = None,
        broadcast: bool = False,
    ) -> None:
        self.kind = kind
        self.broadcast = broadcast
        self.name = name
        self.fn = fn
        self.destination = destination
        self.seq = seq
        self.readonly = readonly
        self.binder = Binder(name, fn)
        self.is_async = is_async_callable(fn)  # runs as a task on its service's loop
        self.doc = doc if doc is not None else _doc_of(fn)
        self.qualname = getattr(fn, "__qualname__", None) or repr(fn)
        self.stats = HandlerStats(shared=destination.shared)
        self.dispatched = self.stats.dispatched  # next() on it from any thread
        self.registered_at = time.time()
        #: A live stub standing in for a command (``_stubs``): this handler
        #: is the stand-in, and ``stub.original`` the handler it replaces.
        self.stub: Any = None
        #: What the C accelerator (``_accel``) keeps of this handler's local
        #: mailbox, made on its first event; ``None`` until then, or without it.
        self.lane: Any = None

    def describe(self) -> dict[str, Any]:
        """The JSON-ready description ``inspect()`` gives of this handler."""
        data: dict[str, Any] = {
            "owner": self.destination.name,
            "handler": self.qualname,
            "signature": self.binder.text(),
            "params": [p.to_json() for p in self.binder.params()],
            "doc": self.doc,
            "async": self.is_async,
        }
        if self.kind == "command":
            data = {"name": self.name, "readonly": self.readonly, **data}
        else:
            data = {"pattern": self.name, **data, "order": self.seq, "broadcast": self.broadcast}
        stats = self.stats.snapshot()
        if self.kind == "listener":
            stats["deliveries"] = stats.pop("calls")
        data.update(stats)
        if self.stub is not None:
            data["stub"] = self.stub.describe()
        return data


def _doc_of(fn: Callable[..., Any]) -> str | None:
    import inspect

    doc = inspect.getdoc(fn)
    return doc.strip() if doc else None


class Registration:
    """What a registration returns; ``dispose()`` takes the handler off the bus.

    ``dispose()`` is thread-safe and idempotent. Work already queued for the
    handler still runs. Usable as a context manager that disposes on exit.
    """

    __slots__ = ("_disposed", "_router", "handler")

    def __init__(self, router: Router, handler: Handler) -> None:
        self._router = router
        self.handler = handler
        self._disposed = False

    @property
    def name(self) -> str:
        """The command name or listener pattern."""
        return self.handler.name

    @property
    def kind(self) -> str:
        """``"command"`` or ``"listener"``."""
        return self.handler.kind

    @property
    def disposed(self) -> bool:
        """Whether ``dispose()`` has run."""
        return self._disposed

    def dispose(self) -> None:
        """Remove the handler from the bus (no-op when already removed)."""
        if not self._disposed:
            self._disposed = True
            self._router.remove(self.handler)

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        state = " disposed" if self._disposed else ""
        return f"<Registration {self.kind} {self.name!r} on {self.handler.destination.name}{state}>"


class Router:
    """The routing tables: commands by name, listeners in order.

    Local commands (registered in this process) come first; a transport may
    add the commands of other processes with ``set_remote``, which the router
    keeps beside them and answers with only when no local handler has the
    name, so local work never leaves the process.

    Reads (``command``, ``listeners_for``) take no lock: they read dicts that
    writers replace rather than mutate, which is safe under the GIL and keeps
    the hot path free. Writes are serialised by a lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._commands: dict[str, Handler] = {}
        self._remote: dict[str, Handler] = {}
        self._listeners: tuple[Handler, ...] = ()
        self._routes: dict[str, tuple[Handler, ...]] = {}
        #: Called (from the thread that changed them) after the local tables
        #: change: a transport announces them to the other processes.
        self.on_change: Callable[[], None] | None = None

    # -- reads (any thread, lock-free) ----------------------------------------

    def command(self, name: str) -> Handler:
        """The handler of command ``name``.

        Raises:
            CommandNotFoundError: nothing owns the name (with close matches).
        """
        try:
            handler = self._commands.get(name)
        except TypeError:  # unhashable
            handler = None
        if handler is None:
            handler = self._remote.get(name)
            if handler is not None:
                return handler
            # An invalid name (too long, say) is told so, not looked for.
            validate_name(name, "command name")
            known = list(dict.fromkeys([*self._commands, *self._remote]))  # a replica's once
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            raise CommandNotFoundError(name, close)
        return handler

    def local_command(self, name: str) -> Handler | None:
        """The handler of command ``name`` registered in this process, if any."""
        return self._commands.get(name)

    def remote_commands(self) -> list[Handler]:
        """The commands of other processes (``set_remote``), sorted by name."""
        return sorted(self._remote.values(), key=lambda h: h.name)

    def listeners_for(self, event: str) -> tuple[Handler, ...]:
        """Every listener whose pattern matches ``event``, in delivery order."""
        routes = self._routes
        found = routes.get(event)
        if found is None:
            validate_name(event, "event name")
            found = tuple(h for h in self._listeners if pattern_matches(h.name, event))
            # Store only into the dict read before the listeners were: a writer
            # that changed them since has replaced that dict, so a stale route
            # lands where no one looks. Installing a new dict here instead
            # could hide a writer's and keep the stale route for good.
            if len(routes) >= _ROUTE_CACHE_LIMIT:
                routes.clear()
            routes[event] = found
        return found

    def commands(self) -> list[Handler]:
        """Every command handler, sorted by name."""
        return sorted(self._commands.values(), key=lambda h: h.name)

    def listeners(self) -> list[Handler]:
        """Every listener, in delivery order."""
        return list(self._listeners)

    # -- writes (any thread) -------------------------------------------------------

    def next_seq(self) -> int:
        """A number ordering registrations (listeners are called in this order)."""
        return next(self._seq)

    def add(self, handler: Handler) -> Registration:
        """Add a handler; commands must have a free name.

        Raises:
            CommandExistsError: the command name is taken.
        """
        with self._lock:
            if handler.kind == "command":
                existing = self._commands.get(handler.name)
                if existing is not None:
                    raise CommandExistsError(handler.name, existing.destination.name)
                commands = dict(self._commands)
                commands[handler.name] = handler
                self._commands = commands
            else:
                self._listeners = (*self._listeners, handler)
                self._routes = {}
        if self.on_change is not None:
            self.on_change()
        return Registration(self, handler)

    def set_remote(self, handlers: dict[str, Handler]) -> None:
        """Replace the commands of other processes (a transport's registry).

        A name registered here too stays local: ``command`` finds it first.
        """
        with self._lock:
            self._remote = dict(handlers)

    def take(self, name: str) -> Handler | None:
        """Remove and return the handler of command ``name`` (for stubs)."""
        with self._lock:
            handler = self._commands.get(name)
            if handler is not None:
                commands = dict(self._commands)
                del commands[name]
                self._commands = commands
            return handler

    def swap(self, current: Handler, new: Handler) -> bool:
        """Put ``new`` in the place of command handler ``current``, in one step.

        For live stubs: a caller never finds the name missing in between.
        Returns ``False`` (and changes nothing) when ``current`` no longer
        holds the name.
        """
        with self._lock:
            if self._commands.get(current.name) is not current:
                return False
            self._commands = {**self._commands, new.name: new}
            return True

    def put_back(self, handler: Handler) -> None:
        """Reinstate a handler removed by ``take``, replacing any stand-in."""
        with self._lock:
            self._commands = {**self._commands, handler.name: handler}

    def remove(self, handler: Handler) -> None:
        """Remove a handler if it is still registered."""
        with self._lock:
            if handler.kind == "command":
                found = self._commands.get(handler.name)
                # A live stub standing in for the handler goes with it.
                if found is handler or (found is not None and _stands_in_for(found, handler)):
                    commands = dict(self._commands)
                    del commands[handler.name]
                    self._commands = commands
            elif handler in self._listeners:
                self._listeners = tuple(h for h in self._listeners if h is not handler)
                self._routes = {}
        if self.on_change is not None:
            self.on_change()


def _stands_in_for(found: Handler, handler: Handler) -> bool:
    """Whether ``found`` is a live stub standing in for ``handler``."""
    return found.stub is not None and found.stub.original is handler
