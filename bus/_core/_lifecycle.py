"""The lifecycle of a bus's services: starting one, its timers, the watchdog, shutdown.

``Lifecycle`` is the base of ``BusCore`` (``_bus``) that owns them, so that
the core's class holds the verbs, the hot paths, and this one the slower,
rarer paths.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import InvalidStateError
from typing import TYPE_CHECKING, Any, Literal, Self, cast

from ._dispatch import is_async_callable
from ._errors import BusClosedError, BusError
from ._events import service_events
from ._future import cancel_task
from ._patterns import validate_name
from ._runtime import TASK, Runtime
from ._service import Service, ServiceBus
from ._stats import count_value
from ._threads import TimerHandle, Timers, start_thread
from ._worker import Ledger, current_worker

if TYPE_CHECKING:
    from ._bus import BusCore
    from ._deadlock import WaitGraph
    from ._events import EventTable
    from ._router import Registration

__all__ = ["MAX_THREADS", "Lifecycle", "check_int"]

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


class Lifecycle:
    """A bus's services and their lifecycle: starting, timers, the watchdog, closing.

    The part of ``BusCore`` (``_bus``) that is not the verbs: it owns the
    table of runtimes, the timers and the close. ``BusCore.__init__`` sets
    every attribute named here.
    """

    name: str
    mailbox_size: int
    hung_after: float
    ledger: Ledger
    events: EventTable
    _waits: WaitGraph
    _runtimes: dict[str, Runtime]
    _services_lock: threading.Lock
    _close_lock: threading.Lock
    _closing: bool
    _close_done: threading.Event
    _closed: bool
    _timers: Timers
    _pool: Runtime
    _pool_started: bool

    if TYPE_CHECKING:  # BusCore's, which this is a part of

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
        ) -> Registration: ...

        def _closing_begins(self) -> None: ...

        def _closing_ends(self, deadline: float) -> None: ...

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

        The payload types the service lists in ``events`` are declared first
        (``declare_event``), so that what ``on_start`` fires is checked too.
        """
        for name, payload in service_events(getattr(service, "events", ())):
            self.events.declare(name, payload)
        return self._start_service(service, timeout)

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

    def _start_service(self, service: Service, timeout: float | None) -> Service:
        """``add_service``, once the service's events are declared."""
        if self._closing:
            raise BusClosedError("the bus is closed")
        if not isinstance(service, Service):
            raise TypeError(f"add_service takes a Service, not {type(service).__name__}")
        name = validate_name(service.service_name(), "service name")
        concurrency = service.concurrency
        if concurrency is not None:
            check_int(f"service {name!r}: concurrency", concurrency, 1, MAX_THREADS)
        if getattr(service, "bus", None) is not None:
            raise ValueError(f"service {name!r} is already on bus {service.bus.name!r}")
        runtime = Runtime(
            cast("BusCore", self),  # this is the BusCore's part that starts services
            name,
            service=service,
            concurrency=concurrency or 1,
            maxsize=self.mailbox_size,
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
                runtime.run_hook(service.on_start)
                runtime.mark_running()  # close() may have begun stopping it
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

    def _unregister(self, runtime: Runtime) -> None:
        for registration in runtime.registrations:
            registration.dispose()

    def schedule(
        self,
        service: Service,
        delay: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        interval: float | None,
    ) -> TimerHandle:
        """Run ``fn(*args)`` on ``service``'s thread after ``delay`` seconds,
        then every ``interval`` unless it is ``None``: ``Service.call_later``
        and ``call_every``, which services use, say how. Never blocks.

        Raises:
            BusError: ``service`` is not on this bus, or ``fn`` is async and
                the service cannot have an event loop.
        """
        runtime = self._runtimes.get(service.service_name())
        if runtime is None or runtime.service is not service:
            raise BusError(f"{service!r} is not on bus {self.name!r}")
        queued = threading.Event()  # a run of this timer waits in the mailbox, or runs
        handle: TimerHandle
        run: Callable[..., Any]
        if is_async_callable(fn):
            runtime.need_loop(f"the async timer {getattr(fn, '__qualname__', fn)!r}")

            async def run_async(*args: Any) -> None:
                # Other handlers run while it awaits, but not another run of
                # it: one that falls due meanwhile is skipped, as for a busy
                # service, so the event is cleared only once this run ends.
                try:
                    if not handle.cancelled:
                        await fn(*args)
                finally:
                    queued.clear()

            run = run_async
        else:

            def run_sync(*args: Any) -> None:
                # On the service thread. Checked here, not only when posting, so
                # that once cancel() returns no run starts, even one queued.
                queued.clear()
                if not handle.cancelled:
                    fn(*args)

            run = run_sync

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
        """``close``, on the thread that closes: see there."""
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
            # The thread's own handler, and each async handler running as a task
            # on its loop; a task is cancelled too, so that its loop can close.
            for run in (worker, *(worker.tasks or ())):
                future, handler, task = run.future, run.current, run.task
                if handler is None:
                    continue
                if future is not None and not future.done():
                    future.gave_up = True
                    error = BusClosedError(
                        f"bus {self.name!r} closed while the handler of {handler.name!r} "
                        f"was still running on thread {worker.thread_name}"
                    )
                    with contextlib.suppress(InvalidStateError):  # it finished just now
                        future.set_exception(error)
                if task is not None:
                    cancel_task(task, f"bus {self.name!r} closed while it ran")

    # -- the quiet, and the hung -----------------------------------------------------------

    def _quiet(self) -> bool:
        # Every item posted is finished when the finished count, read between
        # two reads of the posted count that agree, equals it: a post between
        # the reads would change the count, and none between means that the
        # items finished are all among those posted.
        posted = count_value(self.ledger.posted)
        done = count_value(self.ledger.unrun) + sum(rt.totals()[0] for rt in self.runtimes())
        return done == posted == count_value(self.ledger.posted)

    def _watchdog(self) -> None:
        """Log each handler that has run longer than ``hung_after``, once (the timer thread)."""
        now = time.perf_counter()
        for runtime in self.runtimes():
            for worker in list(runtime.workers):
                for run in (worker, *(worker.tasks or ())):  # the thread, and its loop's tasks
                    current, since = run.current, run.since
                    if current is None or run.hung_reported == since:
                        continue
                    if now - since > self.hung_after:
                        run.hung_reported = since
                        log.warning(
                            "hung handler: %s %r on %s%s has run for %.1fs (threshold %.1fs)",
                            current.kind,
                            current.name,
                            worker.thread_name,
                            "" if run is worker else " (async)",
                            now - since,
                            self.hung_after,
                        )
