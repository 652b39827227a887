"""The lifecycle of a bus's services: starting one, its timers, the watchdog, shutdown.

Functions of ``BusCore``, which calls them from the methods of the same name;
kept here so that the class holds the verbs and this module the slower,
rarer paths.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import InvalidStateError
from typing import TYPE_CHECKING, Any, cast

from ._dispatch import is_async_callable
from ._errors import BusClosedError, BusError
from ._future import cancel_task
from ._patterns import validate_name
from ._runtime import TASK, Runtime
from ._service import Service, ServiceBus
from ._threads import TimerHandle

if TYPE_CHECKING:
    from ._bus import BusCore

__all__ = [
    "MAX_THREADS",
    "abandon",
    "check_int",
    "report_hung",
    "schedule",
    "shut_down",
    "start_service",
]

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


def start_service(core: BusCore, service: Service, timeout: float | None) -> Service:
    """``BusCore.add_service``: see there."""
    if core._closing:
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
        core,
        name,
        service=service,
        concurrency=concurrency or 1,
        maxsize=core.mailbox_size,
    )
    with core._services_lock:
        # Checked again under the lock close() reads the services with:
        # a service is either refused or among those close() stops.
        if core._closing:
            raise BusClosedError("the bus is closed")
        if name in core._runtimes:
            raise ValueError(f"a service named {name!r} is already on the bus")
        core._runtimes[name] = runtime
    # The bus a service sees is the assembled bus.Bus, which builds on
    # this class; BusCore is never used on its own.
    service.bus = cast(ServiceBus, core)
    ready = threading.Event()
    failure: list[BaseException] = []

    def start() -> None:
        try:
            for kind, key, fn, readonly in service.handlers():
                core._register(kind, key, fn, runtime, readonly, None)
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
            core._unregister(runtime)
        finally:
            ready.set()

    runtime.start(start)
    if not ready.wait(timeout):
        raise TimeoutError(
            f"service {name!r} did not start within {timeout}s: its on_start is still "
            "running; the service runs once it returns (inspect() shows it 'starting')"
        )
    if failure:
        with core._services_lock:
            core._runtimes.pop(name, None)
        service.bus = None  # type: ignore[assignment]
        raise failure[0]
    return service


def shut_down(core: BusCore, timeout: float) -> None:
    """``BusCore.close``, on the thread that closes: see there."""
    deadline = time.monotonic() + timeout
    core._closing_begins()
    core._timers.stop()
    if not core.wait_idle(timeout * 0.8):
        log.warning("bus %r: work still running at close; failing what remains", core.name)
    services = [rt for rt in core.runtimes() if rt.service is not None]
    for runtime in [*reversed(services), core._pool]:
        runtime.stop()
        for thread in runtime.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in runtime.threads):
            abandon(core, runtime)
        failed = runtime.fail_queued()
        if failed:
            log.warning(
                "bus %r: %d command(s) to %r failed at close", core.name, failed, runtime.name
            )
    core._closed = True
    core._closing_ends(deadline)
    core._close_done.set()


def abandon(core: BusCore, runtime: Runtime) -> None:
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
        core.name,
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
                    f"bus {core.name!r} closed while the handler of {handler.name!r} "
                    f"was still running on thread {worker.thread_name}"
                )
                with contextlib.suppress(InvalidStateError):  # it finished just now
                    future.set_exception(error)
            if task is not None:
                cancel_task(task, f"bus {core.name!r} closed while it ran")


def schedule(
    core: BusCore,
    service: Service,
    delay: float,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    interval: float | None,
) -> TimerHandle:
    """``Service.call_later`` and ``call_every``: run ``fn`` on the service's thread."""
    runtime = core._runtimes.get(service.service_name())
    if runtime is None or runtime.service is not service:
        raise BusError(f"{service!r} is not on bus {core.name!r}")
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

    handle = core._timers.schedule(delay, post, interval)
    return handle


def report_hung(core: BusCore) -> None:
    """Log each handler that has run longer than ``hung_after``, once (the timer thread)."""
    now = time.perf_counter()
    for runtime in core.runtimes():
        for worker in list(runtime.workers):
            for run in (worker, *(worker.tasks or ())):  # the thread, and its loop's tasks
                current, since = run.current, run.since
                if current is None or run.hung_reported == since:
                    continue
                if now - since > core.hung_after:
                    run.hung_reported = since
                    log.warning(
                        "hung handler: %s %r on %s%s has run for %.1fs (threshold %.1fs)",
                        current.kind,
                        current.name,
                        worker.thread_name,
                        "" if run is worker else " (async)",
                        now - since,
                        core.hung_after,
                    )
