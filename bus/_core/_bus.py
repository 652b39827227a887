"""The core of the bus: the four verbs, services, and their lifecycle.

``BusCore`` is the bus without what observes it: no spans, no activity, no
control endpoint. It reports its work to one ``Observer`` (``_observer``), and
asks one ``Router`` (``_router``) where work goes. ``bus.Bus`` builds on it
and adds tracing, the activity stream and the console's endpoint; that class
is the one to use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import InvalidStateError
from typing import Any, Literal, Self, cast

from ._deadlock import WaitGraph
from ._errors import BusClosedError, BusError
from ._future import CommandFuture
from ._observer import Observer
from ._patterns import validate_name, validate_pattern
from ._router import Handler, Registration, Router
from ._runtime import TASK, Runtime
from ._service import Service, ServiceBus
from ._stats import count_value
from ._threads import TimerHandle, Timers, start_thread
from ._worker import Ledger, current_worker

__all__ = ["MAX_THREADS", "BusCore", "check_int"]

log = logging.getLogger("bus")

MAX_THREADS = 1024
"""The most threads one service (``concurrency``) or the pool may have."""


def check_int(what: str, value: object, low: int, high: int | None = None) -> None:
    """Raise a clear error unless ``value`` is an int within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{what} must be {bound}, not {value}")


class BusCore:
    """Services on their own threads, talking through four verbs: the engine.

    Args:
        name: the bus's name, used in thread names, the console and traces.
        mailbox_size: the bound of every mailbox. A command sent to a full
            mailbox raises ``MailboxFullError`` at once; an event delivery to
            a full mailbox is dropped and counted on the listener and service.
        hung_after: seconds after which a running handler is reported hung.
        max_pool_threads: the most threads the shared pool grows to.

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

        Raises:
            CommandExistsError: the name is taken.
            BusClosedError: the bus is closed.
        """
        validate_name(name, "command name")
        if not callable(fn):
            raise TypeError(f"the handler of {name!r} must be callable, not {type(fn).__name__}")
        return self._register("command", name, fn, self._owner(), readonly, doc)

    def execute_command(self, name: str, /, *args: Any, **kwargs: Any) -> CommandFuture:
        """Run command ``name`` with the arguments on its owner's thread.

        Returns at once with a ``concurrent.futures.Future`` of the result;
        ``.result()`` waits for it and raises what the handler raised, with its
        type and traceback. Never blocks.

        Raises:
            CommandNotFoundError: no such command (close matches suggested).
            TypeError: the arguments do not bind to the handler's signature.
            MailboxFullError: the owner's mailbox is full.
            ServiceFailedError: the owner's thread died (``inspect()`` shows it
                ``failed``).
            BusClosedError: the bus is closed.
        """
        if self._closing:
            self._refuse()
        handler = self.router.command(name)
        handler.binder.check(args, kwargs)
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

    def register_listener(self, pattern: str, fn: Callable[..., Any]) -> Registration:
        """Call ``fn`` for every event matching ``pattern``.

        ``pattern`` is an event name, ``*`` for all events, or a dotted glob
        such as ``lights.*``. The listener runs on its owner's thread, chosen
        as for ``register_command``. Listeners of one event are called in the
        order they were registered.

        Raises:
            BusClosedError: the bus is closed.
        """
        validate_pattern(pattern)
        if not callable(fn):
            raise TypeError(f"the listener for {pattern!r} must be callable")
        return self._register("listener", pattern, fn, self._owner(), False, None)

    def fire_event(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """Deliver the event to every matching listener, without waiting.

        Each listener is called once, on its owner's thread, with exactly these
        arguments. A listener that raises is logged and counted; the firer
        never sees it. A delivery to a full mailbox is dropped and counted.

        Raises:
            ValueError: ``name`` is not a valid event name.
            BusClosedError: the bus is closed.
        """
        if self._closing:
            self._refuse()
        listeners = self.router.listeners_for(name)
        observer = self.observer
        if observer is not None:
            self._fire_observed(observer, name, args, kwargs, listeners)
            return
        for handler in listeners:
            next(handler.dispatched)
            status = handler.destination.post((handler, args, kwargs, name, None))
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
            self._fire_observed(observer, name, args, kwargs, listeners)
            return len(listeners)
        for handler in listeners:
            next(handler.dispatched)
            status = handler.destination.post((handler, args, kwargs, name, None))
            if status:
                self._not_delivered(name, handler, status)
        return len(listeners)

    def _fire_observed(
        self,
        observer: Observer,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
    ) -> None:
        """``fire_event`` when something observes the bus."""
        event = observer.event_fired(name, args, kwargs, listeners)
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

    def _not_delivered(self, name: str, handler: Handler, status: int) -> BaseException:
        """A delivery the listener's mailbox refused: counted and logged; returns why."""
        handler.stats.refuse()
        return handler.destination.delivery_refused(status, name, handler)

    # -- services ----------------------------------------------------------------

    def add_service(self, service: Service, *, timeout: float | None = 30.0) -> Service:
        """Start ``service`` on its own thread and register its handlers.

        Returns once the thread runs, the decorated handlers are registered and
        ``on_start`` has returned: no start-up race. Blocks until then.

        Raises:
            ValueError: a service of that name is already on the bus.
            TimeoutError: ``on_start`` did not finish within ``timeout``. The
                service stays on the bus as ``starting`` and runs, all its
                threads, once ``on_start`` returns; ``close()`` stops it.
            BusClosedError: the bus is closed.
            Exception: whatever ``on_start`` or a registration raised.
        """
        if self._closing:
            raise BusClosedError("the bus is closed")
        if not isinstance(service, Service):
            raise TypeError(f"add_service takes a Service, not {type(service).__name__}")
        name = validate_name(service.service_name(), "service name")
        concurrency = service.concurrency
        check_int(f"service {name!r}: concurrency", concurrency, 1, MAX_THREADS)
        if getattr(service, "bus", None) is not None:
            raise ValueError(f"service {name!r} is already on bus {service.bus.name!r}")
        runtime = Runtime(
            self, name, service=service, concurrency=concurrency, maxsize=self.mailbox_size
        )
        with self._services_lock:
            # Checked again under the lock close() reads the services with:
            # a service is either refused or among those close() stops.
            if self._closing:
                raise BusClosedError("the bus is closed")
            if name in self._runtimes:
                raise ValueError(f"a service named {name!r} is already on the bus")
            self._runtimes[name] = runtime
        # The bus a service sees is the assembled bus.Bus, which builds on
        # this class; BusCore is never used on its own.
        service.bus = cast(ServiceBus, self)
        ready = threading.Event()
        failure: list[BaseException] = []

        def start() -> None:
            try:
                for kind, key, fn, readonly in service.handlers():
                    self._register(kind, key, fn, runtime, readonly, None)
                service.on_start()
                with runtime._lock:  # close() may have begun stopping it
                    if runtime.state == "starting":
                        runtime.state = "running"
                # Here, not in add_service: a caller that timed out still gets
                # the whole service once on_start returns.
                runtime.start_rest()
            except BaseException as exc:
                # Raised again by add_service on the caller's thread; the
                # service thread just ends (see Runtime._serve).
                failure.append(exc)
                runtime.fail(exc, "its on_start raised")
                self._unregister(runtime)
            finally:
                ready.set()

        runtime.start(start)
        if not ready.wait(timeout):
            raise TimeoutError(
                f"service {name!r} did not start within {timeout}s: its on_start is still "
                "running; the service runs once it returns (inspect() shows it 'starting')"
            )
        if failure:
            with self._services_lock:
                self._runtimes.pop(name, None)
            service.bus = None  # type: ignore[assignment]
            raise failure[0]
        return service

    def runtimes(self) -> list[Runtime]:
        """Every service's runtime, then the pool's once it has started."""
        with self._services_lock:
            runtimes = list(self._runtimes.values())
        if self._pool_started:
            runtimes.append(self._pool)
        return runtimes

    def waits(self) -> list[tuple[str, str, int]]:
        """Who waits on whom now: ``(waiter, target, threads)``."""
        return self._waits.waits()

    def wait_idle(self, timeout: float | None = 10.0) -> bool:
        """Block until no mailbox holds work and no handler runs.

        Timers not yet due do not count. Returns ``False`` on timeout. Must not
        be called from a handler (it would wait for itself).
        """
        worker = current_worker()
        if worker is not None and worker.runtime.bus is self:
            raise BusError("wait_idle() called from a handler of this bus would wait forever")
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0002
        while True:
            if self._quiet():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    # -- shutdown ------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Finish the work in flight, stop every service and join every thread.

        New work from outside the bus is refused at once (``BusClosedError``);
        work already sent, and what handlers send while it finishes, still
        runs. Then each service's ``on_stop`` runs on its thread. Whatever is
        still pending after ``timeout`` seconds fails with ``BusClosedError``.
        Blocks until done; a second call waits for the first. Called from one of this
        bus's handlers, which the close would have to wait for, it starts the
        close on a thread of its own and returns at once.
        """
        with self._close_lock:
            first = not self._closing
            self._closing = True
        worker = current_worker()
        in_handler = worker is not None and worker.runtime.bus is self
        if not first:
            # Another caller is closing: wait for it, so that every close()
            # returns to a closed bus (but a handler must not wait on itself).
            if not in_handler:
                self._close_done.wait(timeout)
            return
        if in_handler:
            start_thread(f"bus:{self.name}/close", lambda: self._close(timeout))
            return
        self._close(timeout)

    def _close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._closing_begins()
        self._timers.stop()
        if not self.wait_idle(timeout * 0.8):
            log.warning("bus %r: work still running at close; failing what remains", self.name)
        services = [rt for rt in self.runtimes() if rt.service is not None]
        for runtime in [*reversed(services), self._pool]:
            runtime.stop()
            for thread in runtime.threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(t.is_alive() for t in runtime.threads):
                self._abandon(runtime)
            failed = runtime.fail_queued()
            if failed:
                log.warning(
                    "bus %r: %d command(s) to %r failed at close", self.name, failed, runtime.name
                )
        self._closed = True
        self._closing_ends(deadline)
        self._close_done.set()

    def _closing_begins(self) -> None:
        """Called first by ``close``, before any work is refused: for layers above."""

    def _closing_ends(self, deadline: float) -> None:
        """Called once every service has stopped: for layers above to stop theirs."""

    @property
    def state(self) -> str:
        """``running``, ``closing`` (``close()`` has begun) or ``closed``."""
        return "closed" if self._closed else "closing" if self._closing else "running"

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has begun."""
        return self._closing

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "running"
        return f"<{type(self).__name__} {self.name!r} {state}, {len(self._runtimes)} services>"

    def _abandon(self, runtime: Runtime) -> None:
        """Give up on a runtime whose threads outlived ``close``'s timeout.

        Its mailbox stops taking work, and the futures of the commands its
        hung handlers are still running fail now, so that nothing is left
        pending; the threads (daemons) are named in the log. A handler that
        finishes later is counted as a late reply.
        """
        runtime.close_mailbox()
        alive = [t.name for t in runtime.threads if t.is_alive()]
        log.warning(
            "bus %r: service %r did not stop in time; thread(s) still running: %s",
            self.name,
            runtime.name,
            ", ".join(alive),
        )
        for worker in list(runtime.workers):
            future, handler = worker.future, worker.current
            if future is None or handler is None or future.done():
                continue
            future.gave_up = True
            error = BusClosedError(
                f"bus {self.name!r} closed while the handler of {handler.name!r} "
                f"was still running on thread {worker.thread_name}"
            )
            with contextlib.suppress(InvalidStateError):  # it finished just now
                future.set_exception(error)

    # -- internals -----------------------------------------------------------------------

    def _quiet(self) -> bool:
        # Every item posted is finished when the finished count, read between
        # two reads of the posted count that agree, equals it: a post between
        # the reads would change the count, and none between means that the
        # items finished are all among those posted.
        posted = count_value(self.ledger.posted)
        done = count_value(self.ledger.unrun) + sum(rt.totals()[0] for rt in self.runtimes())
        return done == posted == count_value(self.ledger.posted)

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
    ) -> Registration:
        handler = Handler(
            kind,
            name,
            fn,
            runtime,
            self.router.next_seq(),
            readonly=readonly,
            doc=doc,
        )
        if runtime.state in ("stopping", "stopped"):
            raise BusClosedError(f"service {runtime.name!r} has stopped")
        registration = self.router.add(handler)
        runtime.registrations.append(registration)
        return registration

    def _unregister(self, runtime: Runtime) -> None:
        for registration in runtime.registrations:
            registration.dispose()

    def _schedule(
        self,
        service: Service,
        delay: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        interval: float | None,
    ) -> TimerHandle:
        runtime = self._runtimes.get(service.service_name())
        if runtime is None or runtime.service is not service:
            raise BusError(f"{service!r} is not on bus {self.name!r}")
        queued = threading.Event()  # a run of this timer waits in the mailbox
        handle: TimerHandle

        def run(*args: Any) -> None:
            # On the service thread. Checked here, not only when posting, so
            # that once cancel() returns no run starts, even one queued.
            queued.clear()
            if not handle.cancelled:
                fn(*args)

        run.__qualname__ = getattr(fn, "__qualname__", None) or repr(fn)  # as inspect() shows it

        def post() -> None:
            # A busy service does not pile up runs of one timer: while one
            # waits in its mailbox, the next due is skipped.
            if queued.is_set():
                return
            queued.set()
            if runtime.post((run, args, {}, TASK, None)):
                queued.clear()
                log.warning("timer for %r skipped: its mailbox is full or stopped", runtime.name)

        handle = self._timers.schedule(delay, post, interval)
        return handle

    def _watchdog(self) -> None:
        now = time.perf_counter()
        for runtime in self.runtimes():
            for worker in list(runtime.workers):
                current, since = worker.current, worker.since
                if current is None or worker.hung_reported == since:
                    continue
                if now - since > self.hung_after:
                    worker.hung_reported = since
                    log.warning(
                        "hung handler: %s %r on %s has run for %.1fs (threshold %.1fs)",
                        current.kind,
                        current.name,
                        worker.thread_name,
                        now - worker.since,
                        self.hung_after,
                    )
