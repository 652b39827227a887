"""Mailboxes and the threads that drain them.

A ``Runtime`` is a mailbox and the thread (or threads) that own it: one per
service, plus the bus's elastic pool for handlers registered from threads that
belong to no service. A mailbox item is a 5-tuple
``(handler, args, kwargs, tag, record)`` whose tag says what it is: a future
(a command), a ``str`` (an event, by name) or ``TASK`` (a callable to run on
the service's thread, from ``call_later`` and friends).

A service with async handlers drains its mailbox on an event loop instead
(``_loop.ServiceLoop``); a service without them has no loop and pays
nothing for it. The shared pool runs an async handler to its end on the
pool thread that took it.

The mailbox itself (posting, refusals, counts, failing what waits) is
``_mailbox.Mailbox``, which ``Runtime`` extends with its threads: starting
them, their serve loops, and how they end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _accel
from ._dispatch import finish_call, is_async_callable, run_call, run_delivery, run_task, settle
from ._errors import BusError
from ._mailbox import FAILED, FULL, STOPPED, Mailbox
from ._threads import start_thread
from ._worker import STOP, SWITCH, TASK, Ledger, Worker, current_worker, workers

if TYPE_CHECKING:
    from ._bus import BusCore
    from ._future import CommandFuture
    from ._loop import ServiceLoop
    from ._observer import Observer
    from ._router import Handler
    from ._service import Service

__all__ = [
    "DEFAULT_SLOTS",
    "FAILED",
    "FULL",
    "STOPPED",
    "TASK",
    "Ledger",
    "Runtime",
    "Worker",
    "current_worker",
]

log = logging.getLogger("bus")

DEFAULT_SLOTS = 1024
"""Async handlers that may run at once on a service that does not set ``concurrency``."""
_STOP = STOP
_time_ns = time.time_ns
_perf = time.perf_counter


class Runtime(Mailbox):
    """A mailbox and its threads: one service's, or the bus's shared pool.

    ``Mailbox`` is what any thread does with it; this class adds the threads
    that drain it. Its attributes are all set in ``Mailbox.__init__`` (see
    there why they are few).
    """

    def __init__(
        self,
        bus: BusCore,
        name: str,
        *,
        service: Service | None,
        concurrency: int,
        maxsize: int,
        elastic: bool = False,
    ) -> None:
        super().__init__(
            bus, name, service=service, concurrency=concurrency, maxsize=maxsize, elastic=elastic
        )
        if elastic:  # the pool grows after a post that finds no thread free
            self._after_post = self._grow_if_busy

    # -- its threads: starting them ------------------------------------------------

    def start(self, ready: Callable[[], None] | None = None) -> None:
        """Start the first thread, which calls ``ready`` before serving."""
        self._spawn(ready, first=True)

    def start_rest(self) -> None:
        """Start the other threads of a ``concurrency`` > 1 service (none with a loop)."""
        if not self.elastic and self.aio is None:
            for _ in range(self.concurrency - 1):
                self._spawn(unless_stopping=True)

    def need_loop(self, what: str) -> None:
        """Make ready for async work (``what``): an async handler or timer is being added.

        Called before the work can be posted. On the service's thread before
        it serves, the loop is made now and the service serves on it; later,
        or from another thread, a job is queued ahead of any such work that
        turns the service's thread into its loop's.

        Raises:
            BusError: the service runs several threads without a loop; async
                work must be known when it starts (decorated, or added in
                ``on_start``).
        """
        if self.elastic or self.aio is not None or self._switching:
            return
        worker = current_worker()
        if self.state == "starting" and worker is not None and worker.runtime is self:
            self.use_loop()
            return
        if self.concurrency > 1:
            raise BusError(
                f"{what} on service {self.name!r}, which runs {self.concurrency} threads "
                "without an event loop: decorate the async handler, or add it in "
                "on_start, so that the service starts on its loop"
            )
        with self._lock:
            if self._switching:
                return
            self._switching = True
        next(self._posted)
        self._queue.put((SWITCH, (), {}, TASK, None))
        if not self.accepting:
            self.fail_queued()

    def use_loop(self) -> ServiceLoop:
        """This service's event loop, made now if need be; on its thread only."""
        aio = self.aio
        if aio is None:
            from ._loop import ServiceLoop  # asyncio, only once a service needs it

            worker = current_worker()
            assert worker is not None
            assert worker.runtime is self
            aio = ServiceLoop(self, worker)
            wanted = self.service.concurrency if self.service is not None else None
            self.concurrency = wanted or DEFAULT_SLOTS
            self.aio = aio
        return aio

    def run_hook(self, hook: Callable[[], Any]) -> None:
        """Call ``on_start`` or ``on_stop`` on this thread; an async one on its loop."""
        if is_async_callable(hook):
            self.use_loop().run_until_complete(hook())
        else:
            hook()

    # -- the runtime's own threads ---------------------------------------------

    def _grow_if_busy(self) -> None:
        # A cheap look first; _spawn decides again under the lock, so two
        # posters racing here cannot take the pool past its size.
        if self._idle_threads <= 0 and len(self.threads) < self.concurrency:
            self._spawn(grow=True)

    def _spawn(
        self,
        ready: Callable[[], None] | None = None,
        *,
        unless_stopping: bool = False,
        first: bool = False,
        grow: bool = False,
    ) -> None:
        with self._lock:
            if grow:
                # Grow only when no thread is free: a pool that stays small
                # keeps quick work in the order it was sent.
                if self._idle_threads > 0 or len(self.threads) >= self.concurrency:
                    return
                if self._stopping:
                    # A pool handler sent work after the pool was told to
                    # stop: the new thread needs a stop of its own to end.
                    self._queue.put(_STOP)
                    self._stops += 1
            if unless_stopping and self._stopping:
                # close() told the threads there were to stop while on_start
                # ran; one started now would never be told.
                return
            if first and self._stopping:
                # close() stopped the service before its thread started: that
                # thread still runs on_start (add_service waits for it), then
                # finds its stop.
                self._queue.put(_STOP)
                self._stops += 1
            index = len(self.threads)
            label = self.name if self.concurrency == 1 else f"{self.name}-{index}"
            thread_name = f"bus:{self.bus.name}/{label}"
            worker = Worker(self, thread_name)
            try:
                thread = start_thread(thread_name, lambda: self._serve(worker, ready), batch=True)
            except RuntimeError as exc:  # the process may start no more threads
                if not grow:
                    raise
                # The work is queued and the pool's threads will take it in
                # turn; the poster must not fail for want of one more.
                self.drop_log.warning("the pool could not grow: %s", exc)
                return
            self.workers.append(worker)
            self._live += 1
            self.threads.append(thread)

    def _serve(self, worker: Worker, ready: Callable[[], None] | None) -> None:
        ident = threading.get_ident()
        workers[ident] = worker
        try:
            if ready is not None:
                ready()
                if self.state == "failed":
                    with self._lock:
                        self._live -= 1
                    # Its handlers were registered before on_start failed, so
                    # work may be queued already: fail it, or its futures
                    # would stay pending and wait_idle() would never return.
                    self.close_mailbox()
                    return
            if self.aio is not None:  # it starts with async work: it serves on its loop
                self.aio.serve()
            elif self.elastic:
                self._serve_pool(worker)
            else:
                self._serve_mailbox(worker)
        except BaseException:
            with self._lock:
                self._live -= 1
            raise
        finally:
            del workers[ident]
            if worker.loop is not None:  # a pool thread's, or one that never served
                from ._loop import close_loop

                if not worker.loop.is_closed():
                    close_loop(worker.loop)

    def _serve_mailbox(self, worker: Worker) -> None:
        """A service thread without an event loop: one item at a time, in order."""
        get = self._queue.get
        stats_unshared = not self.shared  # one thread: its handlers' stats need no lock
        # The C accelerator's loop (_accel), which runs the unobserved
        # deliveries and calls below itself and returns every other item;
        # False when _delivery_failed or _call_finished ended the thread.
        drain = _accel.drain if stats_unshared else None
        failed, finished = self._delivery_failed, self._call_finished
        while True:
            try:
                item = get() if drain is None else drain(get, worker, failed, finished)
            except BaseException as exc:
                # A bus error in the accelerator's loop (see below): the item
                # it ran, if any, is still on the worker.
                event = worker.event
                self._died(worker, worker.future or (event[3] if event else None), exc)
                return
            if item is _STOP:
                self._exit_thread()
                return
            if item is False:
                return
            handler, args, kwargs, tag, record = item
            ok: bool | None
            try:
                if type(tag) is str:
                    worker.event = item
                    if record is None and stats_unshared:
                        # An unobserved delivery on a one-thread service:
                        # run_delivery's work, inlined (it is the commonest
                        # item, and each call and lookup here shows).
                        start = worker.since = _perf()
                        worker.current = handler
                        try:
                            if kwargs:
                                handler.fn(*args, **kwargs)
                            else:  # the call without ** is the faster one
                                handler.fn(*args)
                        except BaseException as exc:
                            if failed(worker, handler, tag, exc, start):
                                continue
                            return
                        elapsed = _perf() - start
                        worker.current = worker.event = None
                        stats = handler.stats
                        stats.calls += 1
                        stats._latencies.append(elapsed)
                        worker.handled += 1
                        worker.done += 1
                        continue
                    ok = run_delivery(self, worker, handler, args, kwargs, tag, record)
                elif tag is TASK:
                    if handler is SWITCH:  # async work came: serve on a loop from now on
                        worker.done += 1
                        self.use_loop().serve()
                        return
                    ok = run_task(self, worker, handler, args, kwargs)
                else:
                    ok = run_call(self, worker, handler, args, kwargs, tag, record)
            except BaseException as exc:
                # Handlers' own errors never get here (see _dispatch): this
                # is a bug in the bus, or a BaseException from a hook it
                # calls. The thread cannot be trusted to go on, but nothing
                # it owed may be left pending.
                self._died(worker, tag, exc)
                return
            if ok is not None:
                worker.handled += 1
                if not ok:
                    worker.failed += 1
            worker.done += 1

    def _delivery_failed(
        self, worker: Worker, handler: Handler, event: str, exc: BaseException, start: float
    ) -> bool:
        """A listener run inline by ``_serve_mailbox`` (or ``_accel.drain``) raised ``exc``.

        Counted, recorded on its statistics and logged, as ``run_delivery``
        does. Returns whether the thread goes on: ``False`` once a bus error
        here has ended it (``_died``).
        """
        try:
            worker.current = worker.event = None
            handler.stats.finish(_perf() - start, exc)
            self.listener_failed(handler, event, exc)
        except BaseException as died:
            self._died(worker, event, died)
            return False
        worker.handled += 1
        worker.failed += 1
        worker.done += 1
        return True

    def _call_finished(
        self,
        worker: Worker,
        handler: Handler,
        future: CommandFuture,
        result: Any,
        error: BaseException | None,
        elapsed: float,
        observer: Observer | None,
        ticket: Any,
        scope: Any,
    ) -> bool:
        """A call run by ``_accel.drain`` whose end needs Python: it failed, or
        its caller gave up.

        Ends it as ``run_call`` does and counts it on the worker, as
        ``_serve_mailbox`` does. Returns whether the thread goes on: ``False``
        once a bus error here has ended it (``_died``).
        """
        try:
            ok = finish_call(
                self, worker, handler, future, result, error, elapsed, observer, ticket, scope
            )
        except BaseException as exc:
            self._died(worker, future, exc)
            return False
        worker.handled += 1
        if not ok:
            worker.failed += 1
        worker.done += 1
        return True

    def _serve_pool(self, worker: Worker) -> None:
        """A thread of the shared pool; it runs an async handler to its end on its own loop."""
        get = self._queue.get
        while True:
            with self._lock:
                self._idle_threads += 1
            item = get()
            with self._lock:
                self._idle_threads -= 1
                short = self._idle_threads <= 0 and self._queue.qsize() > 0
            if item is _STOP:
                if self._requeue_stop():
                    continue
                self._exit_thread()
                return
            if short:
                # A poster that looked while this thread still counted as
                # idle saw no need to grow: grow for it.
                self._grow_if_busy()
            handler, args, kwargs, tag, record = item
            ok: bool | None
            try:
                if handler.is_async:
                    from ._tasks import run_on  # asyncio, only once an async handler runs

                    ok = run_on(self, worker, item)
                elif type(tag) is str:
                    worker.event = item
                    ok = run_delivery(self, worker, handler, args, kwargs, tag, record)
                else:
                    ok = run_call(self, worker, handler, args, kwargs, tag, record)
            except BaseException as exc:  # as in _serve_mailbox
                self._died(worker, tag, exc)
                return
            if ok is not None:
                worker.handled += 1
                if not ok:
                    worker.failed += 1
            worker.done += 1

    def _died(self, worker: Worker, tag: Any, exc: BaseException) -> None:
        """The last line of defence: this thread is ending on an unforeseen error.

        The runtime is marked ``failed``; the item it was running (``tag``,
        ``None`` if none), the items queued and every later post fail at
        once with ``ServiceFailedError`` (events are counted dropped); its
        other threads are told to stop. The death is logged once, with the
        traceback.
        """
        worker.current = worker.event = worker.future = None
        first = self.fail(exc, f"its thread {worker.thread_name} died of")
        with self._lock:
            self._live -= 1
            others = self._live
        if first:
            log.critical(
                "service %r failed: its thread %s died of %s: %s; its work fails from now on",
                self.name,
                worker.thread_name,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        if tag is not None:
            self.lost(worker, tag)
        self.fail_queued()
        for _ in range(others):  # the service's other threads leave too
            self._queue.put(_STOP)

    def lost(self, worker: Worker, tag: Any) -> None:
        """Count the item ``tag`` a bus error cut short as done; fail its future."""
        # It may have died before or after the handler set the future running.
        command = tag is not TASK and not isinstance(tag, str) and not tag.done()
        if command and (tag.running() or tag.set_running_or_notify_cancel()):
            settle(tag, None, self.failure())
        worker.failed += 1
        worker.handled += 1
        worker.done += 1

    def _requeue_stop(self) -> bool:
        """Whether a pool thread that took a stop must keep serving.

        The pool may grow while it stops, and a stop meant for a busy thread
        can reach a new one ahead of work that the busy thread waits for. A
        pool thread leaves only when nothing but stops is left; otherwise the
        stop goes to the back of the mailbox.
        """
        with self._lock:
            self._stops -= 1
            if self._queue.qsize() <= self._stops:
                return False
        self._queue.put(_STOP)
        with self._lock:
            self._stops += 1
        return True

    def _exit_thread(self) -> None:
        with self._lock:
            self._live -= 1
            last = self._live == 0
        if not last:
            return
        if self.service is not None and self.state != "failed":
            try:
                self.run_hook(self.service.on_stop)
            except Exception:
                log.exception("on_stop of service %r failed", self.name)
        self.close_mailbox()
        if self.state != "failed":
            self.state = "stopped"
