"""The future ``execute_command`` returns.

A ``concurrent.futures.Future`` in every respect, with two additions made
where the waiting happens: a wait from a service thread is checked for a
deadlock before it begins, and a caller that stops waiting (a timeout, or a
``cancel()`` too late to stop the handler) is remembered, so that a result
arriving afterwards is counted as a late reply.

It is awaitable too (``await bus.execute_command(...)`` in an async
handler waits without blocking the loop), and ``cancel()`` on a running
async handler cancels its task.
"""

from __future__ import annotations

import contextlib
from _thread import allocate_lock as _allocate_lock
from collections.abc import Generator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, RUNNING  # see _cancel_running
from typing import TYPE_CHECKING, Any

from ._errors import DeadlockError
from ._worker import current_run, current_worker

if TYPE_CHECKING:
    import asyncio

    from ._deadlock import WaitGraph
    from ._router import Handler

__all__ = ["CommandFuture"]


class CommandFuture(Future[Any]):
    """The pending result of one command.

    Attributes:
        command: the command's name.
        service: the name of the service that handles it.
        is_async: whether its handler is an ``async def``.
        cancellable: whether ``cancel()`` would cancel it now.
    """

    #: For a transport: the chain of remote waits that led to this command
    #: (set on the future of a call that came from another process).
    chain: Any = None
    #: The command the thread waiting on this future is running, if any:
    #: a transport follows it to learn which chain a wait belongs to.
    via: CommandFuture | None = None
    # The task of a running async handler, set before the future runs (so
    # that cancel() finds it the moment it can) and cleared when it ends. A
    # class attribute, so that a command of a sync handler pays nothing.
    _task: asyncio.Task[Any] | None = None

    def __init__(self, handler: Handler, waits: WaitGraph) -> None:
        super().__init__()
        self._handler = handler
        self._waits = waits
        self.gave_up = False
        # Held until the future is done. A caller waits on it, in C, rather
        # than on Future's Condition (Python code, a lock made per wait); the
        # Condition is still notified, for concurrent.futures.wait() and
        # callbacks.
        self._settled = _allocate_lock()
        self._settled.acquire()

    def set_result(self, result: Any) -> None:
        """As ``Future.set_result``, and wakes the callers waiting at once."""
        super().set_result(result)
        self._settle()

    def set_exception(self, exception: BaseException | None) -> None:
        """As ``Future.set_exception``, and wakes the callers waiting at once."""
        super().set_exception(exception)
        self._settle()

    def _settle(self) -> None:
        try:  # noqa: SIM105 (on every command's completion: no context manager here)
            self._settled.release()
        except RuntimeError:  # already released (a second cancel())
            pass

    @property
    def command(self) -> str:
        """The command's name."""
        return self._handler.name

    @property
    def service(self) -> str:
        """The service (or ``"pool"``) that handles the command."""
        return self._handler.destination.name

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result, as ``Future.result``, with deadlock detection.

        Raises:
            DeadlockError: called on a service thread, the wait would close a
                cycle of services waiting on each other; raised at once.
            TimeoutError: ``timeout`` passed first (the late result is counted).
        """
        if not self.done():
            self._wait(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the outcome, as ``Future.exception``, with deadlock detection."""
        if not self.done():
            self._wait(timeout)
        return super().exception(0)

    @property
    def is_async(self) -> bool:
        """Whether the handler is an ``async def``, whose run ``cancel()`` can stop."""
        return bool(self._handler.is_async)

    @property
    def cancellable(self) -> bool:
        """Whether ``cancel()`` would cancel now: not yet started, or an async handler running.

        ``False`` once done, and while a sync handler runs (Python cannot
        interrupt it).
        """
        return not self.done() and (not self.running() or self.is_async)

    def cancel(self) -> bool:
        """Cancel the command, as ``Future.cancel``, and a running async handler too.

        Before the handler starts, it never runs. A running async handler's
        task is cancelled: the handler sees ``asyncio.CancelledError`` at
        its ``await``, and this future is cancelled at once. A running sync
        handler cannot be stopped: ``False``, and its result, when it comes,
        is counted as a late reply.
        """
        if super().cancel():
            self._settle()
            return True
        task = self._task
        if task is not None and self._cancel_running():
            self.gave_up = True  # a value the handler returns anyway is a late reply
            cancel_task(task, "cancelled by its caller")
            return True
        if not self.done():
            self.gave_up = True
        return False

    def _cancel_running(self) -> bool:
        """End a running future as cancelled; ``False`` if it is not running.

        ``concurrent.futures`` cancels only futures that have not started,
        and offers no way to cancel a running one, which an async handler
        can be: this does what ``cancel()`` and ``set_running_or_notify_cancel()``
        do together, under the same lock, on the base class's own state.
        """
        with self._condition:
            if self._state != RUNNING:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._settle()
        self._invoke_callbacks()  # type: ignore[attr-defined]  # private, but as old as the class
        return True

    def __await__(self) -> Generator[Any, None, Any]:
        """Wait for the result in a coroutine, without blocking its event loop.

        In an async handler the wait is checked for a deadlock as ``result()``
        is (it holds one of its service's ``concurrency`` slots, not the
        thread). Cancelling the awaiting task cancels this command, as
        ``asyncio.wrap_future`` does; ``asyncio.shield`` keeps it running.

        Raises:
            DeadlockError: the wait would close a cycle of services; at once.
        """
        if self.done():
            return self.result()
        import asyncio  # here: a bus with no coroutine never imports it

        run = current_run.get()  # an async handler's task holds one slot
        whole = False
        if run is None:
            # Elsewhere on a bus thread (an async on_start, or a loop a sync
            # handler runs), the thread waits: as for result().
            run = current_worker()
            if run is None:  # a coroutine of no bus thread never closes a cycle
                return (yield from asyncio.wrap_future(self).__await__())
            whole = run.tasks is not None
        target = self._handler.destination
        try:
            self._waits.enter(run.runtime, target, whole=whole)
        except DeadlockError:
            self.gave_up = True  # the command still runs: its result will be late
            raise
        run.waiting = self
        self.via = run.future
        try:
            return (yield from asyncio.wrap_future(self).__await__())
        finally:
            run.waiting = None
            self._waits.leave(run.runtime, target, whole=whole)

    def _settled_within(self, timeout: float | None) -> bool:
        """Wait until the future is done; ``False`` if ``timeout`` passed first."""
        settled = self._settled
        if timeout is None:
            got = settled.acquire()
        elif timeout > 0:
            got = settled.acquire(True, timeout)
        else:
            got = settled.acquire(False)
        if got:
            settled.release()  # for the next caller waiting, if any
            return True
        return self.done()

    def _wait(self, timeout: float | None) -> None:
        """Wait until done, with deadlock detection on a service thread.

        Raises:
            DeadlockError: the wait would close a cycle (raised at once).
            TimeoutError: ``timeout`` passed first.
        """
        worker = current_worker()
        if worker is None:  # a thread of no service never closes a cycle
            if not self._settled_within(timeout):
                self.gave_up = True
                raise FutureTimeoutError()
            return
        target = self._handler.destination
        # On an event loop's thread, a blocking wait stops every handler there.
        whole = worker.tasks is not None
        try:
            self._waits.enter(worker.runtime, target, whole=whole)
        except DeadlockError:
            self.gave_up = True  # the command still runs: its result will be late
            raise
        worker.waiting = self
        self.via = worker.future
        try:
            if not self._settled_within(timeout):
                self.gave_up = True
                raise FutureTimeoutError()
        finally:
            worker.waiting = None
            self._waits.leave(worker.runtime, target, whole=whole)

    def __repr__(self) -> str:
        return f"<CommandFuture {self.command!r} on {self.service} {self._state.lower()}>"


def cancel_task(task: asyncio.Task[Any], message: str) -> None:
    """Cancel ``task`` from any thread, on its own loop (a no-op once its loop closed)."""
    with contextlib.suppress(RuntimeError):  # the loop has closed: the task has ended
        task.get_loop().call_soon_threadsafe(task.cancel, message)
