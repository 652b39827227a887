"""The bus: the four verbs, services, introspection and shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import InvalidStateError
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._activity import Activity
from ._deadlock import WaitGraph
from ._errors import BusClosedError, BusError
from ._future import CommandFuture
from ._hub import Hub, Tap, Watcher
from ._jsonval import Redactor, redact_secrets
from ._observer import Observer
from ._patterns import validate_name, validate_pattern
from ._registry import Handler, Registration, Router
from ._runtime import TASK, Ledger, Runtime, current_worker
from ._service import Service
from ._stats import count_value
from ._threads import TimerHandle, Timers, start_thread
from ._tracing import SpanRing, TraceSink, resolve_provider, tracing_disabled_by_env

if TYPE_CHECKING:
    from .control import ControlServer

__all__ = ["Bus"]

log = logging.getLogger("bus")


class Bus:
    """Services on their own threads, talking through four verbs.

    Args:
        name: the bus's name, used in thread names, the console and traces.
        tracing: record an OpenTelemetry span for every command and event.
            ``OTEL_SDK_DISABLED=true`` turns it off for the whole process.
        tracer_provider: where spans go; by default the application's global
            provider, else the bus's own (configured from ``OTEL_*``).
        mailbox_size: the bound of every mailbox. A command sent to a full
            mailbox raises ``MailboxFullError`` at once; an event delivery to
            a full mailbox is dropped and counted on the listener and service.
        hung_after: seconds after which a running handler is reported hung.
        max_pool_threads: the most threads the shared pool grows to.
        redact: ``redact(key, value) -> value`` applied to keyword arguments
            and dict entries before they are recorded (default: mask keys that
            look like secrets); ``None`` records everything.
        json_limit: the most characters of JSON recorded per argument list or
            result; longer text is cut and marked truncated.
        span_buffer: records waiting for export beyond which spans are dropped
            (and counted).
        ring_size: recent spans kept in memory for the console.
        control: serve the console's control protocol (``docs/protocol.md``):
            ``True`` on ``bus.control.default_address(name)``, or a socket
            path. A live bus already there raises ``AddressInUseError``.

    Every method may be called from any thread unless its docstring says
    otherwise.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        tracing: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        mailbox_size: int = 100_000,
        hung_after: float = 10.0,
        max_pool_threads: int = 32,
        redact: Redactor | None = redact_secrets,
        json_limit: int = 4096,
        span_buffer: int = 200_000,
        ring_size: int = 10_000,
        control: bool | str | os.PathLike[str] = False,
    ) -> None:
        self.name = validate_name(name, "bus name")
        _check_int("mailbox_size", mailbox_size, 1)
        _check_int("max_pool_threads", max_pool_threads, 1, MAX_THREADS)
        _check_int("json_limit", json_limit, 16)
        _check_int("span_buffer", span_buffer, 1)
        _check_int("ring_size", ring_size, 1)
        if isinstance(hung_after, bool) or not isinstance(hung_after, int | float):
            raise TypeError(f"hung_after must be a number, not {type(hung_after).__name__}")
        if not hung_after > 0:  # NaN too
            raise ValueError(f"hung_after must be a positive number of seconds, not {hung_after}")
        if redact is not None and not callable(redact):
            raise TypeError(f"redact must be callable or None, not {type(redact).__name__}")
        self.mailbox_size = mailbox_size
        self.hung_after = hung_after
        self.redact = redact
        self.json_limit = json_limit
        self.pid = os.getpid()
        self.started_at = time.time()
        self._router = Router()
        self._waits = WaitGraph()
        self._runtimes: dict[str, Runtime] = {}
        self._services_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closing = False
        self._close_done = threading.Event()
        self._closed = False
        self.ledger = Ledger()  # what wait_idle counts
        #: The observer seam (``_observer``): the hub once anything observes
        #: the bus (tracing, a watcher, a tap), else ``None``.
        self.observer: Hub | None = None
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
        self.tracing = tracing and not tracing_disabled_by_env()
        self.spans = SpanRing(ring_size)
        self._own_provider: TracerProvider | None = None
        self._sink: TraceSink | None = None
        if self.tracing:
            provider = resolve_provider(tracer_provider, self.name)
            if (
                provider is not tracer_provider
                and isinstance(provider, TracerProvider)
                and provider is not trace.get_tracer_provider()
            ):
                self._own_provider = provider
            self._sink = TraceSink(
                provider,
                self.spans,
                capacity=span_buffer,
                json_limit=json_limit,
                redact=redact,
                start_thread=start_thread,
                thread_name=f"bus:{self.name}/trace",
            )
            self.observer = Hub(self._sink, json_limit=json_limit, redact=redact)
        interval = max(0.05, min(1.0, hung_after / 4))
        self._timers.schedule(interval, self._watchdog, interval)
        self._control: ControlServer | None = None
        #: The control socket's path, or ``None`` without ``control``.
        self.address: Path | None = None
        if control:
            self._start_control(control)

    def _start_control(self, control: bool | str | os.PathLike[str]) -> None:
        from .control import ControlServer

        try:
            address = None if isinstance(control, bool) else control
            self._control = ControlServer(self, address)
        except BaseException:
            self.close()
            raise
        self.address = self._control.address

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
        handler = self._router.command(name)
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
        listeners = self._router.listeners_for(name)
        observer = self.observer
        if observer is not None:
            self._fire_observed(observer, name, args, kwargs, listeners)
            return
        for handler in listeners:
            next(handler.dispatched)
            status = handler.destination.post((handler, args, kwargs, name, None))
            if status:
                self._not_delivered(name, handler, status)

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
        _check_int(f"service {name!r}: concurrency", concurrency, 1, MAX_THREADS)
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
        service.bus = self
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

    # -- introspection -----------------------------------------------------------------

    def inspect(self) -> dict[str, Any]:
        """A JSON-ready snapshot of services, commands, listeners and totals.

        Never blocks on handlers; the figures are read while the bus runs.
        """
        now = time.perf_counter()
        runtimes = self._all_runtimes()
        services = [self._describe_runtime(rt, now) for rt in runtimes]
        commands = [h.describe() for h in self._router.commands()]
        listeners = [h.describe() for h in self._router.listeners()]
        totals = {
            "services": len(self._runtimes),
            "commands": len(commands),
            "listeners": len(listeners),
            "handled": sum(s["handled"] for s in services),
            "failed": sum(s["failed"] for s in services),
            "rejected": sum(s["rejected"] for s in services),
            "dropped": sum(s["dropped"] for s in services),
            "late_replies": sum(c["late_replies"] for c in commands),
            "hung": sum(1 for s in services for t in s["threads"] if t["hung"]),
        }
        return {
            "bus": {
                "name": self.name,
                "pid": self.pid,
                "started_at": self.started_at,
                "uptime": round(time.time() - self.started_at, 3),
                "state": "closed" if self._closed else "closing" if self._closing else "running",
                "mailbox_size": self.mailbox_size,
                "hung_after": self.hung_after,
            },
            "totals": totals,
            "services": services,
            "commands": commands,
            "listeners": listeners,
            "waits": [{"waiter": w, "target": t, "threads": n} for w, t, n in self._waits.waits()],
            "tracing": {
                "enabled": self.tracing,
                **(self._sink.statistics() if self._sink else {}),
                "watch_errors": self.observer.watch_errors if self.observer else 0,
            },
        }

    def watch(self, callback: Callable[[Activity], None]) -> _Unwatch:
        """Call ``callback(activity)`` for every command and event, start and end.

        The callback runs on whichever thread the activity happens on and must
        return quickly without blocking. Returns a handle whose ``dispose()``
        stops the calls.
        """
        self._hub().add_watcher(callback)
        return _Unwatch(self._hub(), callback)

    def _add_tap(self, tap: Tap) -> None:
        self._hub().add_tap(tap)

    def _remove_tap(self, tap: Tap) -> None:
        self._hub().remove_tap(tap)

    def _hub(self) -> Hub:
        """The observer, installed now if nothing observed the bus yet."""
        hub = self.observer
        if hub is None:
            with self._services_lock:
                if self.observer is None:
                    self.observer = Hub(None, json_limit=self.json_limit, redact=self.redact)
                hub = self.observer
        return hub

    def flush_traces(self, timeout: float | None = 10.0) -> bool:
        """Build and export every span recorded so far; blocks until done.

        Returns ``False`` if ``timeout`` passed first. With the bus's own
        provider, its exporters are flushed too.
        """
        if self._sink is None:
            return True
        done = self._sink.flush(timeout)
        if self._own_provider is not None:
            self._own_provider.force_flush(int((timeout or 30) * 1000))
        return done

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
        control = self._control
        if control is not None:
            control.stop_listening()  # no new consoles; the socket file goes
        self._timers.stop()
        if not self.wait_idle(timeout * 0.8):
            log.warning("bus %r: work still running at close; failing what remains", self.name)
        runtimes = self._all_runtimes()
        services = [rt for rt in runtimes if rt.service is not None]
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
        if control is not None:
            control.close(max(0.5, deadline - time.monotonic()))
        if self._sink is not None:
            self._sink.stop(max(0.5, deadline - time.monotonic()))
        if self._own_provider is not None:
            self._own_provider.shutdown()
        self._close_done.set()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has begun."""
        return self._closing

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "running"
        return f"<Bus {self.name!r} {state}, {len(self._runtimes)} services>"

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
        done = count_value(self.ledger.unrun) + sum(rt.totals()[0] for rt in self._all_runtimes())
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
            self._router.next_seq(),
            readonly=readonly,
            doc=doc,
        )
        if runtime.state in ("stopping", "stopped"):
            raise BusClosedError(f"service {runtime.name!r} has stopped")
        registration = self._router.add(handler)
        runtime.registrations.append(registration)
        return registration

    def _unregister(self, runtime: Runtime) -> None:
        for registration in runtime.registrations:
            registration.dispose()

    def _all_runtimes(self) -> list[Runtime]:
        with self._services_lock:
            runtimes = list(self._runtimes.values())
        if self._pool_started:
            runtimes.append(self._pool)
        return runtimes

    def _describe_runtime(self, runtime: Runtime, now: float) -> dict[str, Any]:
        threads = []
        for worker in list(runtime.workers):
            current = worker.current
            running_for = now - worker.since if current is not None else None
            threads.append(
                {
                    "name": worker.thread_name,
                    "state": "waiting"
                    if worker.waiting is not None
                    else "busy"
                    if current is not None
                    else "idle",
                    "handler": current.name if current is not None else None,
                    "running_for": None if running_for is None else round(running_for, 3),
                    "hung": running_for is not None and running_for > self.hung_after,
                    "waiting_on": worker.waiting.command if worker.waiting is not None else None,
                }
            )
        busy = any(t["state"] != "idle" for t in threads)
        _, handled, failed = runtime.totals()
        return {
            "name": runtime.name,
            "kind": "pool" if runtime.elastic else "service",
            "class": type(runtime.service).__qualname__ if runtime.service else None,
            "state": runtime.state,
            "activity": "busy" if busy else "idle",
            "concurrency": runtime.concurrency,
            "threads": threads,
            "mailbox": runtime.depth(),
            "mailbox_size": runtime.maxsize,
            "handled": handled,
            "failed": failed,
            "rejected": runtime.rejected,
            "dropped": runtime.dropped,
            "error": None
            if runtime.error is None
            else f"{type(runtime.error).__name__}: {runtime.error}",
        }

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
        for runtime in self._all_runtimes():
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


MAX_THREADS = 1024
"""The most threads one service (``concurrency``) or the pool may have."""


def _check_int(what: str, value: object, low: int, high: int | None = None) -> None:
    """Raise a clear error unless ``value`` is an int within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{what} must be {bound}, not {value}")


class _Unwatch:
    """Handle returned by ``Bus.watch``; ``dispose()`` stops the callbacks."""

    __slots__ = ("_callback", "_hub")

    def __init__(self, hub: Hub, callback: Watcher) -> None:
        self._hub = hub
        self._callback = callback

    def dispose(self) -> None:
        """Stop calling the callback (idempotent)."""
        self._hub.remove_watcher(self._callback)

    def __enter__(self) -> _Unwatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
