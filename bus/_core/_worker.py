"""A bus thread's own state, and the counts ``wait_idle`` reads.

Each thread of a runtime has a ``Worker``: what it runs now, since when, what
it waits on, and what it has finished. Only its own thread writes it; the
watchdog, ``inspect()`` and the deadlock check read it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._future import CommandFuture
    from ._router import Handler
    from ._runtime import Runtime

__all__ = ["Job", "Ledger", "Worker", "current_worker", "workers"]

workers: dict[int, Worker] = {}
"""Each bus thread's state, by ``threading.get_ident()``; written only by that thread."""


def current_worker() -> Worker | None:
    """The state of the calling thread if it is a bus thread, else ``None``."""
    return workers.get(threading.get_ident())


class Worker:
    """One bus thread: what it runs now, and what it has finished.

    Only its own thread writes it; the watchdog and ``inspect`` read it.
    """

    __slots__ = (
        "current",
        "done",
        "event",
        "failed",
        "future",
        "handled",
        "hung_reported",
        "runtime",
        "since",
        "thread_name",
        "waiting",
    )

    def __init__(self, runtime: Runtime, thread_name: str) -> None:
        self.runtime = runtime
        self.thread_name = thread_name
        self.current: Handler | Job | None = None
        self.since = 0.0
        self.event: tuple[Handler, tuple[Any, ...], dict[str, Any], str, Any] | None = None
        self.future: CommandFuture | None = None  # of the command running now
        self.hung_reported = 0.0  # the ``since`` of the run reported hung
        self.waiting: CommandFuture | None = None
        self.done = 0  # items taken off the mailbox and finished with, run or not
        self.handled = 0
        self.failed = 0


class Ledger:
    """Counts shared by a bus's runtimes, from which ``wait_idle`` tells quiet.

    ``posted`` counts every item queued; each thread counts what it finished
    in its ``Worker``, and ``unrun`` counts what was taken out of a mailbox
    without running (at close, or when a service failed). ``next()`` on an
    ``itertools.count`` is atomic, so no lock is taken on the hot path.
    """

    __slots__ = ("posted", "unrun")

    def __init__(self) -> None:
        self.posted = itertools.count()
        self.unrun = itertools.count()


class Job:
    """A timer callback running on a service thread, as ``inspect()`` shows it."""

    __slots__ = ("name",)
    kind = "timer"

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.name: str = getattr(fn, "__qualname__", None) or repr(fn)
