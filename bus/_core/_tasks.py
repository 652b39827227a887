"""Running one item of a mailbox as an asyncio task: an async command, listener or job.

``call_async``, ``deliver_async`` and ``job_async`` do for an async
handler what ``_dispatch``'s functions do for a sync one, as the coroutine
of its task: ``run`` is the task's own ``Worker``, and everything from the
handler's start to its end happens inside the task, in the task's own
context, so the handler's span is current across its awaits and its timing
covers the whole run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from ._dispatch import settle
from ._worker import TASK, Job, Worker, current_run

if TYPE_CHECKING:
    from ._future import CommandFuture
    from ._router import Handler
    from ._runtime import Runtime

__all__ = ["call_async", "coroutine_of", "deliver_async", "job_async", "run_on"]

log = logging.getLogger("bus")

_perf = time.perf_counter


def coroutine_of(item: tuple[Any, Any, Any, Any, Any], runtime: Runtime, run: Worker) -> Any:
    """The coroutine that runs ``item`` as ``run``."""
    handler, args, kwargs, tag, record = item
    if type(tag) is str:
        return deliver_async(runtime, run, handler, args, kwargs, tag, record)
    if tag is TASK:
        return job_async(runtime, run, handler, args, kwargs)
    return call_async(runtime, run, handler, args, kwargs, tag, record)


def run_on(runtime: Runtime, worker: Worker, item: Any) -> Any:
    """Run an async handler's item to its end on the calling thread (the pool's).

    The thread's own loop is made the first time; the thread closes it as it ends.
    """
    loop = worker.loop
    if loop is None:
        loop = worker.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine_of(item, runtime, worker))


async def job_async(
    runtime: Runtime,
    run: Worker,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> bool:
    """``run_task`` for a coroutine function (an async ``call_later``/``call_every``)."""
    current_run.set(run)
    run.task = asyncio.current_task()  # what close() cancels when it gives up
    run.since = _perf()
    run.current = Job(fn)
    try:
        await fn(*args, **kwargs)
    except BaseException:  # a cancellation at close too: it did not finish
        log.exception("a timer callback on service %r failed", runtime.name)
        return False
    finally:
        run.current = None
        run.task = None
    return True


async def call_async(
    runtime: Runtime,
    run: Worker,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    future: CommandFuture,
    ticket: Any,
) -> bool | None:
    """``run_call`` for an async handler.

    A cancellation of its task ends the future cancelled (if nothing ended
    it first) and counts as the command's ``cancelled``, not as an error.
    """
    current_run.set(run)
    # Before the future runs: a cancel() that finds it running finds the task.
    future._task = run.task = asyncio.current_task()
    observer = runtime.bus.observer if ticket is not None else None
    if not future.set_running_or_notify_cancel():
        future._task = run.task = None
        handler.stats.skip(cancelled=True)
        if observer is not None:
            observer.call_refused(ticket, handler, CancelledError("cancelled before it ran"))
        return None
    start = run.since = _perf()
    run.current = handler
    run.future = future
    scope = None if observer is None else observer.call_started(ticket, run)
    error: BaseException | None = None
    result: Any = None
    try:
        result = await handler.fn(*args, **kwargs)
    except BaseException as exc:
        error = exc
    finally:
        if observer is not None:
            observer.handler_returned(scope)
    elapsed = _perf() - start
    run.current = None
    run.future = None
    future._task = run.task = None
    cancelled = isinstance(error, asyncio.CancelledError)
    if cancelled:
        handler.stats.finish(elapsed, None)
        handler.stats.interrupted()
    else:
        handler.stats.finish(elapsed, error)
    late = not cancelled and future.gave_up
    if late:
        _late_reply(runtime, handler, future, elapsed)
    if observer is not None:
        observer.call_ended(ticket, scope, handler, run, error, elapsed, result)
    if cancelled:
        future._cancel_running()  # False when cancel() or close() ended it first
    elif not settle(future, result, error) and not late:
        # cancel() or close() ended the future since the look above.
        _late_reply(runtime, handler, future, elapsed)
    ok = error is None or cancelled
    del error
    return ok


def _late_reply(runtime: Runtime, handler: Handler, future: CommandFuture, elapsed: float) -> None:
    if future.cancelled():
        after = "it was cancelled"
    elif future.done():
        after = "the bus closed"
    else:
        after = "its caller stopped waiting"
    handler.stats.late_reply()
    log.warning(
        "late reply: %s on %r finished after %.3fs, after %s",
        handler.name,
        runtime.name,
        elapsed,
        after,
    )


async def deliver_async(
    runtime: Runtime,
    run: Worker,
    handler: Handler,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    event: str,
    ticket: Any,
) -> bool:
    """``run_delivery`` for an async listener."""
    current_run.set(run)
    run.task = asyncio.current_task()
    run.event = (handler, args, kwargs, event, ticket)  # for current_event()
    observer = runtime.bus.observer if ticket is not None else None
    start = run.since = _perf()
    run.current = handler
    scope = run.scope = None if observer is None else observer.delivery_started(ticket, run)
    error: BaseException | None = None
    try:
        await handler.fn(*args, **kwargs)
    except BaseException as exc:
        error = exc
        runtime.listener_failed(handler, event, exc)
    finally:
        if observer is not None:
            observer.handler_returned(scope)
    elapsed = _perf() - start
    run.current = None
    run.event = None
    run.task = None
    handler.stats.finish(elapsed, error)
    if observer is not None:
        observer.delivery_ended(ticket, scope, handler, run, event, error, elapsed)
    return error is None
