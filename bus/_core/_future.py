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
import threading
from _thread import allocate_lock as _allocate_lock
from _thread import get_ident
from collections.abc import Callable, Generator
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeoutError

# The base class's states, which concurrent.futures.wait() and as_completed()
# read on the future itself: this class keeps them exactly.
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    LOGGER,
    PENDING,
    RUNNING,
)
from typing import TYPE_CHECKING, Any

from ._errors import DeadlockError
from ._worker import current_run, current_worker, workers

if TYPE_CHECKING:
    import asyncio

    from ._deadlock import WaitGraph
    from ._router import Handler

__all__ = ["CommandFuture"]

_ENDED = frozenset((CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED))
_CANCELLED = frozenset((CANCELLED, CANCELLED_AND_NOTIFIED))

# Makes a future's Condition once, when two threads ask for it at once.
_making = _allocate_lock()


class CommandFuture(Future[Any]):
    """The pending result of one command.

    A ``Future`` without the cost of one on every command: ``Future``
    makes a ``threading.Condition`` (Python code) for each future and takes
    it on every step. This one guards its state with a plain lock, and
    makes the Condition, over that same lock, only when something asks for
    it: ``concurrent.futures.wait()`` and ``as_completed()`` do, and then
    they and this class's methods exclude each other as with any future.
    A caller waits on a second lock, held until the future is done, which
    the completion releases: it wakes the waiter directly.

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
    # The state read on every command, in slots (the C accelerator reads
    # them at their offsets too), and no per-instance dict until a rare
    # attribute above is set.
    __slots__ = (
        "_done_callbacks",
        "_exception",
        "_handler",
        "_lock",
        "_made",
        "_result",
        "_settled",
        "_state",
        "_waiter_list",
        "_waits",
        "gave_up",
    )

    _done_callbacks: list[Callable[[Future[Any]], object]]

    def __init__(self, handler: Handler, waits: WaitGraph) -> None:
        # Future.__init__'s attributes, but for the Condition: made by the
        # first that asks (see _condition) and kept in _made, with the
        # waiters of concurrent.futures.wait() and as_completed(), which take
        # the Condition before they add one. While _made is None, no one
        # waits but on _settled, and _waiter_list is empty.
        self._lock = _allocate_lock()
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._made: threading.Condition | None = None
        self._waiter_list: list[Any] | tuple[()] = ()
        # An empty tuple until the first add_done_callback(): most commands have none.
        self._done_callbacks = ()  # type: ignore[assignment]
        self._handler = handler
        self._waits = waits
        self.gave_up = False
        # Held until the future is done: a caller waits on it, in C.
        self._settled = _allocate_lock()
        self._settled.acquire()

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]  # an attribute there
        """The base class's Condition, made on first use, over this future's lock."""
        condition = self._made
        if condition is None:
            with _making:
                condition = self._made
                if condition is None:
                    self._waiter_list = []
                    condition = self._made = threading.Condition(self._lock)
        return condition

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]  # an attribute there
        """The base class's list of waiters, made with the Condition."""
        self._condition  # noqa: B018 (made together, once)
        assert isinstance(self._waiter_list, list)
        return self._waiter_list

    def _notify(self) -> None:
        """Wake whoever waits on the Condition, if one was made; under the lock."""
        if self._made is not None:
            self._made.notify_all()

    def _ended(self) -> None:
        """After the change to a final state, which happens once: wake the
        callers waiting in ``result()``, then run the callbacks."""
        self._settled.release()
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]  # private, but as old as the class

    def set_running_or_notify_cancel(self) -> bool:
        """As ``Future.set_running_or_notify_cancel``."""
        with self._lock:
            state = self._state
            if state == PENDING:
                self._state = RUNNING
                return True
            if state == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for waiter in self._waiter_list:
                    waiter.add_cancelled(self)
                return False
        LOGGER.critical("Future %s in unexpected state: %s", id(self), state)
        raise RuntimeError("Future in unexpected state")

    def set_result(self, result: Any) -> None:
        """As ``Future.set_result``, and wakes the callers waiting at once."""
        with self._lock:
            if self._state in _ENDED:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = FINISHED
            if self._made is not None:
                for waiter in self._waiter_list:
                    waiter.add_result(self)
                self._made.notify_all()
        # _ended(), inline: this is every command's completion.
        self._settled.release()  # once: a future ends once, under the lock
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]  # private, but as old as the class

    def set_exception(self, exception: BaseException | None) -> None:
        """As ``Future.set_exception``, and wakes the callers waiting at once."""
        with self._lock:
            if self._state in _ENDED:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = FINISHED
            for waiter in self._waiter_list:
                waiter.add_exception(self)
            self._notify()
        self._ended()

    def done(self) -> bool:
        """Whether the command finished or was cancelled."""
        return self._state in _ENDED

    def running(self) -> bool:
        """Whether the command is running now."""
        return self._state == RUNNING

    def cancelled(self) -> bool:
        """Whether the command was cancelled."""
        return self._state in _CANCELLED

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        """As ``Future.add_done_callback``: ``fn(future)`` once done (now, if it is)."""
        with self._lock:
            if self._state not in _ENDED:
                if not isinstance(self._done_callbacks, list):
                    self._done_callbacks = []
                self._done_callbacks.append(fn)
                return
        try:
            fn(self)
        except Exception:
            LOGGER.exception("exception calling callback for %r", self)

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
            CancelledError: the command was cancelled.
            DeadlockError: called on a service thread, the wait would close a
                cycle of services waiting on each other; raised at once.
            TimeoutError: ``timeout`` passed first (the late result is counted).
        """
        if self._state != FINISHED:
            if self._state not in _CANCELLED:
                if timeout is None and workers.get(get_ident()) is None:
                    # _wait's commonest case, inline: no deadline, and not a
                    # service thread, so no cycle to look for.
                    self._settled.acquire()
                    self._settled.release()  # for the next caller waiting, if any
                else:
                    self._wait(timeout)
            if self._state in _CANCELLED:
                raise CancelledError()
        error = self._exception
        if error is None:
            return self._result
        try:
            raise error
        finally:
            del error  # no cycle through this frame's traceback

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the outcome, as ``Future.exception``, with deadlock detection."""
        if self._state != FINISHED:
            if self._state not in _CANCELLED:
                self._wait(timeout)
            if self._state in _CANCELLED:
                raise CancelledError()
        return self._exception

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
        with self._lock:
            state = self._state
            if state == PENDING:
                self._state = CANCELLED
                self._notify()
        if state == PENDING:
            self._ended()
            return True
        if state in _CANCELLED:
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
        with self._lock:
            if self._state != RUNNING:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiter_list:
                waiter.add_cancelled(self)
            self._notify()
        self._ended()
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
