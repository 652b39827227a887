"""The core of the bus: the four verbs, services, and their lifecycle.

``BusCore`` is the bus without what observes it: no spans, no activity, no
control endpoint. It reports its work to one ``Observer`` (``_observer``), and
asks one ``Router`` (``_router``) where work goes. ``bus.Bus`` builds on it
and adds tracing, the activity stream and the console's endpoint; that class
is the one to use.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from . import _accel
from ._contract import convert_arguments
from ._deadlock import WaitGraph
from ._errors import BusClosedError
from ._events import EventTable
from ._future import CommandFuture
from ._holds import Holds
from ._lifecycle import MAX_THREADS, Lifecycle, check_int
from ._mailbox import NO_KWARGS
from ._observer import Observer
from ._patterns import validate_name, validate_pattern
from ._router import Handler, Registration, Router
from ._runtime import Runtime
from ._service import BROADCAST_ATTR
from ._stubs import Stubs
from ._threads import Timers
from ._worker import Ledger, current_worker

__all__ = ["MAX_THREADS", "BusCore", "check_int"]

log = logging.getLogger("bus")


def _qualname(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class BusCore(Lifecycle):
    """Services on their own threads, talking through four verbs: the engine.

    Args:
        name: the bus's name, used in thread names, the console and traces.
        mailbox_size: the bound of every mailbox. A command sent to a full
            mailbox raises ``MailboxFullError`` at once; an event delivery to
            a full mailbox is dropped and counted on the listener and service.
        hung_after: seconds after which a running handler is reported hung.
        max_pool_threads: the most threads the shared pool grows to.
        validate: convert and check in-process calls too: the arguments of
            ``execute_command`` against the handler's annotations, and those
            of ``fire_event`` against the event's declared payload type
            (``InvalidArgumentError``). Values that arrive as JSON (the
            console) are always converted; this is for development.

    Every method may be called from any thread unless its docstring says
    otherwise.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        mailbox_size: int = 100_000,
        hung_after: float = 10.0,
        max_pool_threads: int = 32,
        validate: bool = False,
    ) -> None:
        self.name = validate_name(name, "bus name")
        check_int("mailbox_size", mailbox_size, 1)
        check_int("max_pool_threads", max_pool_threads, 1, MAX_THREADS)
        if isinstance(hung_after, bool) or not isinstance(hung_after, int | float):
            raise TypeError(f"hung_after must be a number, not {type(hung_after).__name__}")
        if not hung_after > 0:  # NaN too
            raise ValueError(f"hung_after must be a positive number of seconds, not {hung_after}")
        self.mailbox_size = mailbox_size
        self.hung_after = hung_after
        self.pid = os.getpid()
        self.started_at = time.time()
        #: The routing seam (``_router``): who owns each command, who listens.
        self.router = Router()
        self._waits = WaitGraph()
        self._runtimes: dict[str, Runtime] = {}
        self._services_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closing = False
        self._close_done = threading.Event()
        self._closed = False
        self.ledger = Ledger()  # what wait_idle counts
        #: The observer seam (``_observer``): what the bus reports its work
        #: to, or ``None`` while nothing observes it (the fastest path).
        self.observer: Observer | None = None
        #: The transport's hook for events: ``outlet(name, args, kwargs,
        #: event_ticket, local_listeners)`` sends each event fired here to
        #: the other processes of the bus and returns how many listeners
        #: there it knows of; ``None`` on a bus of one process.
        self.outlet: Callable[..., int] | None = None
        self._timers = Timers(f"bus:{self.name}/timers")
        self._pool = Runtime(
            self,
            "pool",
            service=None,
            concurrency=max_pool_threads,
            maxsize=mailbox_size,
            elastic=True,
        )
        self._pool_started = False
        #: Whether in-process calls are converted and checked (``validate``).
        self.validate = bool(validate)
        #: The events given a payload type (``declare_event``).
        self.events = EventTable()
        if self.validate:
            # Instance attributes shadow the verbs, so that a bus without
            # ``validate`` runs exactly the code it ran before: not even a flag
            # is tested per call.
            self.execute_command = self._execute_validated  # type: ignore[method-assign]
            self.fire_event = self._fire_validated  # type: ignore[method-assign]
            self.fire_counted = self._fire_counted_validated  # type: ignore[method-assign]
        #: A console's holds (``_holds``) and live stubs (``_stubs``).
        self.holds = Holds(self)
        self.stubs = Stubs(self)
        interval = max(0.05, min(1.0, hung_after / 4))
        self._timers.schedule(interval, self._watchdog, interval)

    # -- the four verbs ------------------------------------------------------------

    def register_command(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        readonly: bool = False,
        doc: str | None = None,
    ) -> Registration:
        """Make ``fn`` the handler of command ``name``.

        Called on a service's thread (in ``on_start`` or a handler), the
        handler runs on that service's thread; from any other thread, on the
        bus's shared pool. ``readonly=True`` declares it has no side effects.
        ``fn`` may be an ``async def``: it runs as a task on the service's
        event loop (``docs/bus.md``, "Async handlers").

        Raises:
            CommandExistsError: the name is taken.
            BusClosedError: the bus is closed.
            BusError: ``fn`` is async and the service runs several threads
                without an event loop.
            TypeError: ``fn`` is not callable, or is an async generator.
        """
        validate_name(name, "command name")
        if not callable(fn):
            raise TypeError(f"the handler of {name!r} must be callable, not {type(fn).__name__}")
        return self._register("command", name, fn, self._owner(), readonly, doc)

    def execute_command(self, name: str, /, *args: Any, **kwargs: Any) -> CommandFuture:
        """Run command ``name`` with the arguments on its owner's thread.

        Returns at once with a ``concurrent.futures.Future`` of the result;
        ``.result()`` waits for it and raises what the handler raised, with its
        type and traceback. In a coroutine, ``await`` it instead: that waits
        without blocking the loop. ``cancel()`` stops a command that has not
        started, or whose async handler runs. Never blocks.

        Raises:
            CommandNotFoundError: no such command (close matches suggested).
            TypeError: the arguments do not bind to the handler's signature.
            InvalidArgumentError: on a ``Bus(validate=True)``, an argument does
                not convert to its parameter's annotated type.
            MailboxFullError: the owner's mailbox is full.
            ServiceFailedError: the owner's thread died (``inspect()`` shows it
                ``failed``).
            BusClosedError: the bus is closed.
        """
        if self._closing:
            self._refuse()
        handler = self.router.command(name)
        handler.binder.check(args, kwargs)
        if not kwargs:
            kwargs = NO_KWARGS
        future = CommandFuture(handler, self._waits)
        observer = self.observer
        ticket = None if observer is None else observer.call_sent(handler, args, kwargs)
        next(handler.dispatched)
        status = handler.destination.post((handler, args, kwargs, future, ticket))
        if status:
            handler.stats.refuse()
            error = handler.destination.call_refused(status)
            if ticket is not None:
                observer.call_refused(ticket, handler, error)  # type: ignore[union-attr]
            raise error
        return future

    def execute_converted(
        self, handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CommandFuture:
        """``execute_command`` with arguments already bound and converted for ``handler``.

        For consoles and transports, which convert arguments that arrive as
        JSON (``convert_arguments``) before they send them, so that a call is
        bound once. If the command's handler changed since (a stub or a new
        registration took the name), the arguments are bound and converted
        again for the handler that will run them. Never blocks.

        Raises what ``execute_command`` raises.
        """
        if self._closing:
            self._refuse()
        current = self.router.command(handler.name)
        if current is not handler:
            args, kwargs = convert_arguments(current, args, kwargs)
        # execute_command's tail, which that hot path keeps inline.
        future = CommandFuture(current, self._waits)
        observer = self.observer
        ticket = None if observer is None else observer.call_sent(current, args, kwargs)
        next(current.dispatched)
        status = current.destination.post((current, args, kwargs, future, ticket))
        if status:
            current.stats.refuse()
            error = current.destination.call_refused(status)
            if ticket is not None:
                observer.call_refused(ticket, current, error)  # type: ignore[union-attr]
            raise error
        return future

    def register_listener(
        self, pattern: str, fn: Callable[..., Any], *, broadcast: bool = False
    ) -> Registration:
        """Call ``fn`` for every event matching ``pattern``.

        ``pattern`` is an event name, ``*`` for all events, or a dotted glob
        such as ``lights.*``. The listener runs on its owner's thread, chosen
        as for ``register_command``, and may be an ``async def``. Listeners of
        one event are started in the order they were registered. On a bus
        across processes, a service in several processes hears each event once
        unless ``broadcast=True``.

        Raises:
            BusClosedError: the bus is closed.
        """
        validate_pattern(pattern)
        if not callable(fn):
            raise TypeError(f"the listener for {pattern!r} must be callable")
        owner = self._owner()
        return self._register("listener", pattern, fn, owner, False, None, broadcast=broadcast)

    def fire_event(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """Deliver the event to every matching listener, without waiting.

        Each listener is called once, on its owner's thread, with exactly these
        arguments. A listener that raises is logged and counted; the firer
        never sees it. A delivery to a full mailbox is dropped and counted.

        Raises:
            ValueError: ``name`` is not a valid event name.
            InvalidArgumentError: on a ``Bus(validate=True)``, the arguments do
                not convert to the event's declared payload type.
            BusClosedError: the bus is closed.
        """
        if self._closing:
            self._refuse()
        # The one place in bus/ that reads other classes' privates, on purpose:
        # this untraced fan-out is the measured hot path (docs/benchmarks.md),
        # so it reads the router's route cache and, below, inlines
        # Runtime.post for a local mailbox, saving a call per event and per
        # listener. Everything else goes through the seams (Router methods,
        # Destination.post); tests/bus/test_layers.py holds the runtime to it.
        listeners = self.router._routes.get(name) if type(name) is str else None
        if not kwargs:
            kwargs = NO_KWARGS  # one dict for every item without: see NO_KWARGS
        if listeners is None:  # not seen since the listeners last changed
            listeners = self.router.listeners_for(name)
        observer = self.observer
        if observer is not None:
            self._fire_observed(observer, name, args, kwargs, listeners)
            return
        if self.outlet is not None:
            self.outlet(name, args, kwargs, None, listeners)
        for handler in listeners:
            next(handler.dispatched)
            runtime = handler.destination
            # Runtime.post, inlined for a local mailbox (the exception above;
            # Runtime.post says why each step is there, and the two must stay
            # alike); any other destination posts for itself.
            if type(runtime) is Runtime and runtime.accepting:
                queue = runtime._queue
                if queue.qsize() < runtime.maxsize:
                    next(runtime._posted)
                    queue.put((handler, args, kwargs, name, None))
                    if not runtime.accepting:
                        runtime.fail_queued()
                    elif runtime._after_post is not None:  # read after the put, as post() does
                        runtime._after_post()
                    continue
            status = runtime.post((handler, args, kwargs, name, None))
            if status:
                self._not_delivered(name, handler, status)

    def fire_counted(self, name: str, /, *args: Any, **kwargs: Any) -> int:
        """``fire_event``, returning how many listeners the event was sent to.

        For consoles, which report it (the control protocol's ``fire``);
        services use ``fire_event``. Raises what ``fire_event`` raises.
        """
        if self._closing:
            self._refuse()
        listeners = self.router.listeners_for(name)
        observer = self.observer
        if observer is not None:
            return len(listeners) + self._fire_observed(observer, name, args, kwargs, listeners)
        remote = 0
        if self.outlet is not None:
            remote = self.outlet(name, args, kwargs, None, listeners)
        for handler in listeners:
            next(handler.dispatched)
            status = handler.destination.post((handler, args, kwargs, name, None))
            if status:
                self._not_delivered(name, handler, status)
        return len(listeners) + remote

    def _fire_observed(
        self,
        observer: Observer,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
    ) -> int:
        """``fire_event`` when something observes the bus; the remote listeners reached."""
        event = observer.event_fired(name, args, kwargs, listeners)
        remote = 0
        if self.outlet is not None:
            remote = self.outlet(name, args, kwargs, event, listeners)
        for handler in listeners:
            ticket = None if event is None else observer.delivery_queued(event, handler)
            next(handler.dispatched)
            status = handler.destination.post((handler, args, kwargs, name, ticket))
            if status:
                error = self._not_delivered(name, handler, status)
                if ticket is not None:
                    observer.delivery_refused(ticket, handler, error)
        if event is not None:
            observer.event_posted(event)
        return remote

    # -- typed contracts ------------------------------------------------------------

    def declare_event(self, name: str | type, payload: type | None = None) -> None:
        """Give event ``name`` a payload type: a dataclass, ``TypedDict`` or pydantic model.

        The type's fields are the event's arguments (positionally in field
        order, or by name). The console's ``fire`` converts and checks them
        always, ``fire_event`` on a ``Bus(validate=True)``, and the schema
        export (``bus.schema``) describes the event with it.
        ``declare_event(LightsChanged)`` takes the name ``@event_type`` gave the
        class; a service lists such classes in its ``events``. Declaring the
        same type again does nothing.

        Raises:
            TypeError: ``payload`` is not a dataclass, ``TypedDict`` or model.
            ValueError: the name is invalid, or declared with another type.
        """
        self.events.declare(name, payload)

    def _execute_validated(self, name: str, /, *args: Any, **kwargs: Any) -> CommandFuture:
        """``execute_command`` on a ``Bus(validate=True)``: converted, then sent."""
        if self._closing:
            self._refuse()
        binder = self.router.command(name).binder
        binder.check(args, kwargs)
        contract = binder.contract()
        if contract is not None:
            args, kwargs = contract.convert(args, kwargs)
        return BusCore.execute_command(self, name, *args, **kwargs)

    def post_every_fire(self, on: bool) -> None:
        """Send each event through its runtimes' ``post`` (on while a console holds).

        The untraced ``fire_event`` puts a delivery straight into a local
        mailbox, past ``post``, where holds catch what they hold. While holds
        are set, events go the long way (``fire_counted``); with none, an
        instance attribute no longer shadows the verb, and it costs nothing.
        """
        if on:
            self.fire_event = self._fire_posting  # type: ignore[method-assign]
        elif self.validate:
            self.fire_event = self._fire_validated  # type: ignore[method-assign]
        else:
            vars(self).pop("fire_event", None)

    def _fire_posting(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """``fire_event`` while holds are set: each delivery through ``post``."""
        self.fire_counted(name, *args, **kwargs)

    def _fire_validated(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """``fire_event`` on a ``Bus(validate=True)``: a declared event is converted first."""
        contract = self.events.get(name)
        if contract is not None:
            args, kwargs = contract.convert(args, kwargs)
        BusCore.fire_event(self, name, *args, **kwargs)

    def _fire_counted_validated(self, name: str, /, *args: Any, **kwargs: Any) -> int:
        """``fire_counted`` on a ``Bus(validate=True)``."""
        contract = self.events.get(name)
        if contract is not None:
            args, kwargs = contract.convert(args, kwargs)
        return BusCore.fire_counted(self, name, *args, **kwargs)

    def _not_delivered(self, name: str, handler: Handler, status: int) -> BaseException:
        """A delivery the listener's mailbox refused: counted and logged; returns why."""
        handler.stats.refuse()
        return handler.destination.delivery_refused(status, name, handler)

    def _closing_begins(self) -> None:
        """Called first by ``close``, before any work is refused: for layers above.

        What a console held goes on now, and stubs give way to the real
        handlers, so that the close finishes that work like any other.
        """
        self.holds.close()
        self.stubs.close()

    def _closing_ends(self, deadline: float) -> None:
        """Called once every service has stopped: for layers above to stop theirs."""

    def __repr__(self) -> str:
        state = "closed" if self._closing else "running"
        return f"<{type(self).__name__} {self.name!r} {state}, {len(self._runtimes)} services>"

    # -- internals -----------------------------------------------------------------------

    def _refuse(self) -> None:
        worker = current_worker()
        if self._closed or worker is None or worker.runtime.bus is not self:
            raise BusClosedError(f"bus {self.name!r} is closed")

    def _owner(self) -> Runtime:
        if self._closing:
            self._refuse()
        worker = current_worker()
        if worker is not None and worker.runtime.bus is self and not worker.runtime.elastic:
            return worker.runtime
        if not self._pool_started:
            with self._services_lock:
                if not self._pool_started:
                    self._pool.start()
                    self._pool.state = "running"
                    self._pool_started = True
        return self._pool

    def _register(
        self,
        kind: Literal["command", "listener"],
        name: str,
        fn: Callable[..., Any],
        runtime: Runtime,
        readonly: bool,
        doc: str | None,
        *,
        broadcast: bool = False,
    ) -> Registration:
        if inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"the {kind} {name!r} is an async generator ({_qualname(fn)}); "
                "an async handler must be an async def that returns, not yields"
            )
        if kind == "listener" and name in getattr(fn, BROADCAST_ATTR, ()):
            broadcast = True  # @listener(..., broadcast=True)
        handler = Handler(
            kind,
            name,
            fn,
            runtime,
            self.router.next_seq(),
            readonly=readonly,
            doc=doc,
            broadcast=broadcast,
        )
        if runtime.state in ("stopping", "stopped"):
            raise BusClosedError(f"service {runtime.name!r} has stopped")
        if handler.is_async:  # before the router can send it work
            runtime.need_loop(f"the async {kind} {name!r}")
        registration = self.router.add(handler)
        runtime.registrations.append(registration)
        self.holds.adopt(runtime)  # a service added while a hold is set is held too
        return registration


# fire_event's untraced fan-out in C when the extension is built (_accel).
_accel.install(BusCore)
