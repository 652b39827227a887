"""The event loop of a service with async handlers, on the service's own thread.

A service whose handlers are all plain functions has no loop: its thread
blocks on its mailbox, and nothing here costs it anything. Once it has an
``async def`` handler (decorated, registered in ``on_start`` or later on
its thread), an async timer, or an async ``on_start``/``on_stop``, its one
thread runs an asyncio event loop, and the loop drains the mailbox
(``ServiceLoop``):

* items start in mailbox order. An async handler starts as a task, which
  runs until it first suspends before the next item starts; a sync handler
  runs on the loop thread at once, so the loop waits for it;
* at most ``concurrency`` of them run at once (a sync one counts while it
  runs); the next item waits in the mailbox until one ends;
* every task runs in a context of its own, copied from the loop thread's;
* posting to the mailbox wakes the loop (``call_soon_threadsafe``), once
  per batch of posts.

The shared pool, which has no one thread, runs an async handler to its end
on the pool thread that took it, on that thread's own loop (``_tasks.run_on``).

This module and ``_tasks`` are imported once a loop is needed, so that a bus
with no async handler never imports asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ._dispatch import is_async_callable, run_call, run_delivery, run_task, settle
from ._tasks import coroutine_of
from ._worker import STOP, SWITCH, TASK, Worker

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["ServiceLoop", "close_loop"]

log = logging.getLogger("bus")

_BATCH = 64  # items one look at the mailbox takes before the loop's other work runs


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a bus thread's loop, on that thread, leaving nothing pending.

    Tasks a handler started and left running are cancelled and awaited, as
    ``asyncio.run`` does; async generators and the default executor are
    shut down.
    """
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


class ServiceLoop:
    """A service's event loop and the draining of its mailbox, on its one thread.

    Only ``wake`` may be called from other threads; the rest runs on the
    loop's thread.
    """

    def __init__(self, runtime: Runtime, worker: Worker) -> None:
        self.runtime = runtime
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        worker.loop = self.loop
        worker.tasks = set()
        # The pump runs in this context and each task in a copy of it: a
        # poster's context (its current span, say) must not leak into them.
        self.context = contextvars.copy_context()
        self.running = 0  # handlers started and not finished: tasks, and a sync one
        self.unstarted: set[Worker] = set()  # tasks created, not at their first step yet
        self.held: tuple[Any, Any, Any, Any, Any] | None = None  # taken, not started yet
        self.serving = False  # not before serve(): on_start runs on the loop first
        self.stopping = False  # the stop is taken: end once nothing runs
        self.closing = False  # serving is over: the mailbox is left to close_mailbox
        self.dead = False  # the service failed (see die)
        self.wake_pending = False

    # -- any thread ------------------------------------------------------------

    def wake(self) -> None:
        """Something was posted: have the loop look at the mailbox."""
        if self.wake_pending:
            return
        self.wake_pending = True
        try:
            self.loop.call_soon_threadsafe(self._pump, context=self.context)
        except RuntimeError:
            # The loop has closed, and so has the mailbox, since after the
            # closer drained it: fail what was posted, as post() does.
            self.runtime.fail_queued()

    # -- the loop's thread ------------------------------------------------------

    def run_until_complete(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` (an async ``on_start`` or ``on_stop``) before or after serving."""
        return self.loop.run_until_complete(coroutine)

    def serve(self) -> None:
        """Drain the mailbox on the loop until the service stops, then close the loop."""
        runtime, loop = self.runtime, self.loop
        runtime._after_post = self.wake  # a post from now on wakes the loop
        self.serving = True
        self.wake_pending = True
        loop.call_soon(self._pump, context=self.context)
        try:
            while True:
                try:
                    loop.run_forever()
                    break
                except BaseException as exc:
                    # KeyboardInterrupt and SystemExit leave a task and the
                    # loop: the service fails, and the loop runs on until
                    # its tasks have ended.
                    self.die(None, exc)
            self.closing = True
            if not self.dead:
                runtime._exit_thread()  # on_stop, then the mailbox closes
        finally:
            self.worker.loop = None
            close_loop(loop)

    def die(self, tag: Any, exc: BaseException) -> None:
        """The service fails on an error of the bus's own (see ``Runtime._died``).

        What it runs now fails with ``ServiceFailedError`` and its tasks are
        cancelled; the loop ends once they have.
        """
        runtime = self.runtime
        if self.dead:  # one more while the tasks wind down: its item is lost too
            log.error("service %r: another error while failing", runtime.name, exc_info=exc)
            if tag is not None:
                runtime.lost(self.worker, tag)
            return
        self.dead = self.closing = True
        runtime._died(self.worker, tag, exc)
        for run in tuple(self.worker.tasks or ()):
            future = run.future
            if future is not None:
                future.gave_up = True
                settle(future, None, runtime.failure())
            if run.task is not None:
                run.task.cancel("the service failed")
        if self.running == 0:
            self.loop.stop()

    def _again(self) -> None:
        """Look at the mailbox again once the loop's ready work has run."""
        if not self.wake_pending:
            self.wake_pending = True
            self.loop.call_soon(self._pump, context=self.context)

    def _pump(self) -> None:
        """Start the items waiting in the mailbox, in order, while slots are free."""
        self.wake_pending = False
        if not self.serving:
            return
        if self.closing:
            if self.dead and self.running == 0:
                self.loop.stop()
            return
        runtime = self.runtime
        get = runtime._queue.get_nowait
        limit = runtime.concurrency
        tag: Any = None
        try:
            for _ in range(_BATCH):
                tag = None
                item = self.held
                if item is None:
                    try:
                        item = get()
                    except queue.Empty:
                        break
                else:
                    self.held = None
                if item is STOP:
                    self.stopping = True
                    continue
                handler, args, kwargs, tag, record = item
                if tag is TASK:
                    if handler is SWITCH:  # asked for a loop this service now has
                        self.worker.done += 1
                        continue
                    is_async = is_async_callable(handler)
                else:
                    is_async = handler.is_async
                if self.running >= limit or (not is_async and self.unstarted):
                    # No slot free, or a sync handler must wait until the
                    # tasks started before it have reached their first await.
                    self.held = item
                    if self.running < limit:
                        self._again()
                    break
                if is_async:
                    self._start(item)
                else:
                    self._run_inline(handler, args, kwargs, tag, record, item)
            else:
                self._again()  # more may wait: let the tasks run first
        except BaseException as exc:
            self.die(tag, exc)
            return
        if self.stopping and self.running == 0 and self.held is None:
            self.loop.stop()

    def _start(self, item: tuple[Any, Any, Any, Any, Any]) -> None:
        run = Worker(self.runtime, self.worker.thread_name)
        task = self.loop.create_task(self._run(run, item), context=self.context.copy())
        self.running += 1
        self.unstarted.add(run)
        task.add_done_callback(lambda t: self._ended(t, run, item))

    async def _run(self, run: Worker, item: tuple[Any, Any, Any, Any, Any]) -> bool | None:
        self.unstarted.discard(run)
        if self.dead:  # started after the service failed: fail it unrun
            self.runtime.fail_item(item)
            return None
        tasks = self.worker.tasks
        assert tasks is not None
        tasks.add(run)
        try:
            return await coroutine_of(item, self.runtime, run)  # type: ignore[no-any-return]
        finally:
            tasks.discard(run)

    def _ended(
        self, task: asyncio.Task[bool | None], run: Worker, item: tuple[Any, Any, Any, Any, Any]
    ) -> None:
        self.running -= 1
        worker = self.worker
        if task.cancelled():
            # Cancelled before its first step, by code other than the bus's
            # (once started, the coroutines of _tasks end every run).
            self.unstarted.discard(run)
            self.runtime.fail_item(item)
            worker.done += 1
        elif (error := task.exception()) is not None:
            self.die(item[3], error)  # the bus's own code failed: see Runtime._died
        else:
            ok = task.result()
            if ok is not None:
                worker.handled += 1
                if not ok:
                    worker.failed += 1
            worker.done += 1
        if self.dead:
            if self.running == 0:
                self.loop.stop()
            return
        self._again()  # a slot is free

    def _run_inline(
        self,
        handler: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tag: Any,
        record: Any,
        item: tuple[Any, Any, Any, Any, Any],
    ) -> None:
        worker = self.worker
        runtime = self.runtime
        ok: bool | None
        self.running += 1
        try:
            if type(tag) is str:
                worker.event = item
                ok = run_delivery(runtime, worker, handler, args, kwargs, tag, record)
            elif tag is TASK:
                ok = run_task(runtime, worker, handler, args, kwargs)
            else:
                ok = run_call(runtime, worker, handler, args, kwargs, tag, record)
        finally:
            self.running -= 1
        if ok is not None:
            worker.handled += 1
            if not ok:
                worker.failed += 1
        worker.done += 1
