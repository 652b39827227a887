"""A runtime's mailbox: what is posted to it, refused by it, and failed in it.

``Mailbox`` is the half of a ``Runtime`` (``_runtime``) that any thread
touches: ``post`` and its refusals, the counts ``inspect()`` shows, stopping,
and failing what waits once the mailbox closes. The threads that drain it are
the other half, ``Runtime``.

The mailbox is a ``queue.SimpleQueue``: put and get are C calls that release
the GIL while they wait, so a hand-off costs little more than the thread
switch itself. Nothing on the path from ``post`` to the end of a handler takes
a lock: the bus counts posts with ``itertools.count`` and each thread counts
what it finished in its own ``Worker``, which only it writes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from ._errors import BusClosedError, BusError, MailboxFullError, ServiceFailedError, error_text
from ._ratelog import RateLimitedLog
from ._worker import STOP, TASK, Ledger, Worker

if TYPE_CHECKING:
    from ._bus import BusCore
    from ._loop import ServiceLoop
    from ._router import Handler, Registration
    from ._service import Service

__all__ = ["FAILED", "FULL", "NO_KWARGS", "STOPPED", "Mailbox"]

#: The keyword arguments of every item sent without any: one dict, never
#: changed, rather than an empty one per item (64 B of each queued event).
#: Nothing writes to an item's kwargs: a handler is called with a copy
#: (``**kwargs``), ``current_event()`` copies it, and holds edit copies.
NO_KWARGS: dict[str, Any] = {}

log = logging.getLogger("bus")

FULL, STOPPED, FAILED = 1, 2, 3
_STOP = STOP


class Mailbox:
    """A service's mailbox (or the pool's), its state and its counts; any thread.

    Keep a runtime at 30 instance attributes or fewer: beyond that CPython
    3.11 stops sharing the keys of its instances' dicts, and every method
    call on it (``post`` on the hot path) loses its specialisation. What
    only a service with an event loop needs, and the hot path never reads,
    is a class attribute until it is set (3.11 does not specialise reading
    a class attribute through an instance either, so the hot path reads
    only instance attributes).
    """

    # Set on the instance once the service has a loop (see Runtime.need_loop).
    aio: ServiceLoop | None = None  # the event loop, once async work comes
    _switching = False  # the job that gives it one is queued

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
        self.bus = bus
        self.name = name
        self.service = service
        # Threads; once the service has its event loop, the handlers that
        # may run at once on it: what the deadlock check counts.
        self.concurrency = concurrency
        self.elastic = elastic
        self.shared = elastic or concurrency > 1
        self.maxsize = maxsize
        self.state = "starting"
        self.error: BaseException | None = None
        self.failure_reason = ""  # set with state "failed": see fail()
        self.workers: list[Worker] = []
        self.threads: list[threading.Thread] = []
        self.registrations: list[Registration] = []
        self.accepting = True
        self.rejected = 0
        self.dropped = 0
        self.started_at = time.time()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._live = 0
        self._idle_threads = 0
        self._stopping = False
        # Stops in the mailbox, for the elastic pool. Counted only once put, so
        # it may fall short of the stops queued but never exceeds them: a pool
        # thread that compares it with the mailbox errs towards serving on.
        self._stops = 0
        self.ledger: Ledger = bus.ledger
        self._posted = self.ledger.posted
        self.listener_log: dict[int, RateLimitedLog] = {}
        self.drop_log = RateLimitedLog(log)  # deliveries refused by this mailbox
        # Called after each post: the pool grows, a loop wakes (set by Runtime).
        self._after_post: Callable[[], None] | None = None

    # -- any thread ------------------------------------------------------------
    def post(self, item: tuple[Any, Any, Any, Any, Any]) -> int:
        """Queue an item: 0 when queued, ``FULL``, ``STOPPED`` or ``FAILED`` when not."""
        q = self._queue
        if not self.accepting:
            return FAILED if self.state == "failed" else STOPPED
        if q.qsize() >= self.maxsize:
            return FULL
        next(self._posted)
        q.put(item)
        if not self.accepting:
            # The mailbox closed while we posted. The closer drains after it
            # stops accepting, and so do we: whoever drains second finds the
            # item and fails it, so no future is left pending.
            self.fail_queued()
        elif self._after_post is not None:
            self._after_post()
        return 0

    def mark_running(self) -> None:
        """``starting`` becomes ``running`` (its ``on_start`` returned), unless
        ``close()`` has begun stopping it meanwhile (thread-safe)."""
        with self._lock:
            if self.state == "starting":
                self.state = "running"

    def fail(self, error: BaseException, how: str) -> bool:
        """Mark the runtime failed; ``how`` completes "its ... ERROR".

        Returns whether it was the first failure. Its mailbox refuses work
        from now on (``ServiceFailedError``).
        """
        with self._lock:
            first = self.state != "failed"
            self.state = "failed"
            if first:
                self.error = error
                self.failure_reason = f"{how} {error_text(error)}"
            self.accepting = False
        return first

    def failure(self) -> ServiceFailedError:
        """The error for work sent to this runtime once it has failed."""
        return ServiceFailedError(self.name, self.failure_reason)

    def refusal(self, status: int) -> BusError:
        """The error for an item ``post`` refused with ``status``."""
        if status == FULL:
            return MailboxFullError(self.name, self.maxsize)
        if status == FAILED:
            return self.failure()
        return BusClosedError(f"service {self.name!r} has stopped")

    def call_refused(self, status: int) -> BusError:
        """Count a command this mailbox refused (``rejected`` when full); its error."""
        if status == FULL:
            with self._lock:
                self.rejected += 1
        return self.refusal(status)

    def count_dropped(self) -> None:
        """Count one event delivery lost before it reached this mailbox (thread-safe)."""
        with self._lock:
            self.dropped += 1

    def delivery_refused(self, status: int, event: str, handler: Handler) -> BusError:
        """Count and log (rate-limited) an event delivery this mailbox refused."""
        self.count_dropped()
        error = self.refusal(status)
        self.drop_log.warning("event %r dropped for %s: %s", event, handler.qualname, error)
        return error

    def listener_failed(self, handler: Handler, event: str, error: BaseException) -> None:
        """Log a listener's failure (at most once a second per listener)."""
        limiter = self.listener_log.get(handler.seq)
        if limiter is None:
            limiter = self.listener_log[handler.seq] = RateLimitedLog(log)
        limiter.error(
            "listener %s for %r on service %r failed on event %r",
            handler.qualname,
            handler.name,
            self.name,
            event,
            exc=error,
        )

    def depth(self) -> int:
        """Items waiting in the mailbox (not counting those running)."""
        return self._queue.qsize()

    def totals(self) -> tuple[int, int, int]:
        """``(done, handled, failed)`` summed over the threads."""
        workers = list(self.workers)
        return (
            sum(w.done for w in workers),
            sum(w.handled for w in workers),
            sum(w.failed for w in workers),
        )

    def stop(self) -> None:
        """Ask every thread to finish the items before this call and exit.

        The last thread out runs the service's ``on_stop`` and closes the
        mailbox; what is posted after that is refused.
        """
        with self._lock:
            if self.state != "failed":
                self.state = "stopping"
            self._stopping = True
            count = len(self.threads)
        for _ in range(count):
            self._queue.put(_STOP)
        with self._lock:
            self._stops += count
        if self.aio is not None:
            self.aio.wake()

    def close_mailbox(self) -> None:
        """Refuse further items and fail those queued."""
        self.accepting = False
        self.fail_queued()

    def fail_queued(self) -> int:
        """Take every queued item out: futures fail with ``BusClosedError``.

        (``ServiceFailedError`` once the runtime has failed.) Returns how many
        commands were failed. Events are counted as dropped. Any thread; used
        once the mailbox no longer accepts work.
        """
        failed = 0
        stops = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stops += 1
                continue
            failed += self.fail_item(item)
            next(self.ledger.unrun)
        # A thread still busy in a handler (close gave up waiting for it)
        # needs its stop, or it would block on the empty mailbox for ever.
        for _ in range(stops):
            self._queue.put(_STOP)
        if stops and self.aio is not None:
            self.aio.wake()
        return failed

    def fail_item(self, item: tuple[Any, Any, Any, Any, Any]) -> bool:
        """Fail an item taken off the mailbox that will not run; whether it was a command."""
        handler, _, _, tag, record = item
        if tag is TASK:
            return False
        if isinstance(tag, str):
            handler.stats.skip(cancelled=False)
            with self._lock:
                self.dropped += 1
            return False
        running: bool = tag.set_running_or_notify_cancel()
        error: BaseException
        if running:
            if self.state == "failed":
                error = self.failure()
            else:
                error = BusClosedError(f"bus {self.bus.name!r} closed first")
            tag.set_exception(error)
        else:
            error = CancelledError("cancelled before it ran")
        handler.stats.skip(cancelled=not running)
        if record is not None:
            self.bus.observer.call_refused(record, handler, error)  # type: ignore[union-attr]
        return running
