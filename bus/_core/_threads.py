"""The one place where the bus starts threads, and its timer thread.

Every thread is named (``bus:NAME/service``) so that stack dumps, profilers and
the console's thread column say whose it is, and every thread is a daemon:
``Bus.close()`` joins them, but a handler stuck forever must not keep the
interpreter from exiting.

On Linux the threads that serve mailboxes (``batch=True``: services and the
shared pool) run under ``SCHED_BATCH``: the same share of the CPU as any
other thread (their nice value is kept), but waking one never preempts the
thread that is running. Threads of one Python process hand work to each
other while holding the GIL: a service woken by a caller's
``execute_command`` that preempted the caller could only wait for the GIL
the caller still holds, and the caller would then switch back to give it
up. On one CPU that made a round trip take five to seven context switches
where two do, most of its wall time (``docs/benchmarks.md``, "Where a
traced round trip's wall time goes"). The other threads stay ordinary: a
thread woken by a timer or a socket while another process runs should
preempt it, and the trace thread, which waits on both, measured up to three
times slower under ``SCHED_BATCH`` on a loaded CPU. Threads and processes
that a handler starts inherit the policy, as they inherit a nice value
(``os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))`` puts one
back, unprivileged); ``BUS_SCHED_BATCH=0`` leaves every thread ordinary.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TimerHandle", "Timers", "start_thread"]

log = logging.getLogger("bus")

# Linux only; elsewhere threads keep the platform's policy.
_BATCH: int | None = getattr(os, "SCHED_BATCH", None)
# Set on the threads put under SCHED_BATCH here, whose children inherit it.
_batched = threading.local()


def batch_scheduling() -> bool:
    """Whether mailbox threads run under ``SCHED_BATCH`` (Linux, unless ``BUS_SCHED_BATCH=0``)."""
    return _BATCH is not None and os.environ.get("BUS_SCHED_BATCH", "").strip() != "0"


def _not_preempting_on_wake() -> None:
    """Put the calling thread under ``SCHED_BATCH``, if the bus does and the OS lets it."""
    if _BATCH is None or not batch_scheduling():
        return
    try:
        if os.sched_getscheduler(0) == _BATCH:  # the process's own choice (chrt -b): kept
            return
        os.sched_setscheduler(0, _BATCH, os.sched_param(0))
    except OSError as exc:  # a sandbox may refuse the call: the thread runs as it was
        log.debug("could not put %s under SCHED_BATCH: %s", threading.current_thread().name, exc)
    else:
        _batched.on = True


def _ordinary() -> None:
    """Put back ``SCHED_OTHER`` in a thread started from one put under ``SCHED_BATCH`` here."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:
        name = threading.current_thread().name
        log.debug("could not put %s back under SCHED_OTHER: %s", name, exc)


def start_thread(name: str, target: Callable[[], None], *, batch: bool = False) -> threading.Thread:
    """Start a named daemon thread running ``target``.

    Args:
        name: the thread's name, ``bus:BUS/WHAT``.
        target: what it runs.
        batch: a thread that serves a mailbox: under ``SCHED_BATCH`` on Linux
            (see the module), so that waking it never preempts its waker.
    """
    if batch:
        setup = _not_preempting_on_wake
    elif getattr(_batched, "on", False):
        setup = _ordinary  # a bus made or closed in a handler: its threads are ordinary
    else:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def run() -> None:
        setup()
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


class TimerHandle:
    """A scheduled callback; ``cancel()`` stops it from running (again).

    Thread-safe.
    """

    __slots__ = ("_cancelled", "interval")

    def __init__(self, interval: float | None) -> None:
        self.interval = interval
        self._cancelled = False

    def cancel(self) -> None:
        """Stop the callback: once this returns, no run of it starts.

        A run already under way finishes.
        """
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` was called."""
        return self._cancelled


class Timers:
    """One thread running callbacks at their due time (a heap of deadlines).

    The callbacks run on the timer thread and must be quick: the bus's own only
    post work to a service mailbox or look at a clock.
    """

    def __init__(self, thread_name: str) -> None:
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], Any]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = start_thread(thread_name, self._run)

    def schedule(
        self, delay: float, callback: Callable[[], Any], interval: float | None = None
    ) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds, then every ``interval`` if given.

        Thread-safe; returns at once.
        """
        handle = TimerHandle(interval)
        with self._cond:
            if self._stopped:
                handle.cancel()
                return handle
            heapq.heappush(
                self._heap, (time.monotonic() + delay, next(self._seq), handle, callback)
            )
            self._cond.notify()
        return handle

    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        with self._cond:
            return sum(1 for _, _, handle, _ in self._heap if not handle.cancelled)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every timer and join the thread."""
        with self._cond:
            self._stopped = True
            for _, _, handle, _ in self._heap:
                handle.cancel()
            self._heap.clear()
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                due, _, handle, callback = heapq.heappop(self._heap)
                if handle.cancelled:
                    continue
                if handle.interval is not None:
                    # Keep the cadence: the next run is due one interval after
                    # this one was due, not after it ran.
                    next_due = max(due + handle.interval, time.monotonic())
                    heapq.heappush(self._heap, (next_due, next(self._seq), handle, callback))
            try:
                callback()
            except Exception:
                log.exception("a timer callback failed")
