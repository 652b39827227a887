"""Running one item of a mailbox on its service's thread: a command, a delivery, a job.

Each function runs the handler, tells the observer (if the item is
observed), keeps the statistics and the worker's state, and for a command
resolves its future. A handler's exception never leaves these functions:
it goes to the caller's future, or is logged (rate-limited) and counted for
a listener.

``_tasks`` does the same for async handlers, as the coroutines of their
tasks; ``is_async_callable`` tells which handlers those are.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, InvalidStateError
from typing import TYPE_CHECKING, Any

from ._worker import Job

if TYPE_CHECKING:
    from ._future import CommandFuture
    from ._observer import Observer
    from ._router import Handler
    from ._runtime import Runtime
    from ._worker import Worker

__all__ = ["finish_call", "is_async_callable", "run_call", "run_delivery", "run_task", "settle"]

log = logging.getLogger("bus")

_perf = time.perf_counter


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` makes a coroutine.

    An ``async def`` (a method, a ``functools.partial`` of one), or an object
    whose class's ``__call__`` is one.
    """
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def settle(future: CommandFuture, result: Any, error: BaseException | None) -> bool:
    """Complete ``future``; ``False`` if something (close, a failure) already had."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        return False
    return True


def run_task(
    runtime: Runtime,
    worker: Worker,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> bool:
    # Shown as the running handler, so a busy or hung timer job is seen.
    worker.since = _perf()
    worker.current = Job(fn)
    try:
        fn(*args, **kwargs)
    except BaseException:
        log.exception("a timer callback on service %r failed", runtime.name)
        return False
    finally:
        worker.current = None
    return True


def run_call(
    runtime: Runtime,
    worker: Worker,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    future: CommandFuture,
    ticket: Any,
) -> bool | None:
    observer = runtime.bus.observer if ticket is not None else None
    if not future.set_running_or_notify_cancel():
        handler.stats.skip(cancelled=True)
        if observer is not None:
            observer.call_refused(ticket, handler, CancelledError("cancelled before it ran"))
        return None
    # ``since`` before ``current``: the watchdog reads them in that order
    # and must never pair this handler with the previous one's start.
    start = worker.since = _perf()
    worker.current = handler
    worker.future = future
    scope = None if observer is None else observer.call_started(ticket, worker)
    error: BaseException | None = None
    result: Any = None
    try:
        result = handler.fn(*args, **kwargs)
    except BaseException as exc:
        error = exc
    finally:
        if observer is not None:
            observer.handler_returned(scope)
    elapsed = _perf() - start
    worker.current = None
    worker.future = None
    return finish_call(
        runtime, worker, handler, future, result, error, elapsed, observer, ticket, scope
    )


def finish_call(
    runtime: Runtime,
    worker: Worker,
    handler: Handler,
    future: CommandFuture,
    result: Any,
    error: BaseException | None,
    elapsed: float,
    observer: Observer | None = None,
    ticket: Any = None,
    scope: Any = None,
) -> bool:
    """The end of a call whose handler has returned (or raised ``error``).

    Counts it, reports a late reply, tells the observer (if the call is
    observed) and completes the future. Whether the handler succeeded.
    """
    handler.stats.finish(elapsed, error)
    if future.gave_up:
        handler.stats.late_reply()
        log.warning(
            "late reply: %s on %r finished after %.3fs, after %s",
            handler.name,
            runtime.name,
            elapsed,
            "the bus closed" if future.done() else "its caller stopped waiting",
        )
    if observer is not None:
        observer.call_ended(ticket, scope, handler, worker, error, elapsed, result)
    # False when close() gave up on this handler and failed the future
    # first; the late reply was counted above.
    settle(future, result, error)
    return error is None


def run_delivery(
    runtime: Runtime,
    worker: Worker,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    event: str,
    ticket: Any,
) -> bool:
    observer = runtime.bus.observer if ticket is not None else None
    start = worker.since = _perf()  # before ``current``, as in _call
    worker.current = handler
    scope = worker.scope = None if observer is None else observer.delivery_started(ticket, worker)
    error: BaseException | None = None
    try:
        handler.fn(*args, **kwargs)
    except BaseException as exc:
        error = exc
        runtime.listener_failed(handler, event, exc)
    finally:
        if observer is not None:
            observer.handler_returned(scope)
    elapsed = _perf() - start
    worker.current = None
    worker.event = None
    handler.stats.finish(elapsed, error)
    if observer is not None:
        observer.delivery_ended(ticket, scope, handler, worker, event, error, elapsed)
    return error is None
