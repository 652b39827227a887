"""A bus thread's own state, and the counts ``wait_idle`` reads.

Each thread of a runtime has a ``Worker``: what it runs now, since when, what
it waits on, and what it has finished. Only its own thread writes it; the
watchdog, ``inspect()`` and the deadlock check read it.

An async handler running as a task on a service's event loop has a
``Worker`` of its own for what it runs (``current``, ``since``, ``future``,
``event``, ``waiting``, ``task``); the loop thread's ``Worker`` keeps the
counts and, in ``tasks``, the workers of the tasks running now.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from ._future import CommandFuture
    from ._router import Handler
    from ._runtime import Runtime

__all__ = [
    "STOP",
    "SWITCH",
    "TASK",
    "Job",
    "Ledger",
    "Worker",
    "current_run",
    "current_worker",
    "workers",
]

# What a mailbox holds besides work (see _runtime): the tag of a job to run
# on the service's thread, the stop that ends a thread, and the handler of
# the job that gives a running service its event loop (see _loop).
TASK = object()
STOP = None
SWITCH = object()

workers: dict[int, Worker] = {}
"""Each bus thread's state, by ``threading.get_ident()``; written only by that thread."""

current_run: ContextVar[Worker | None] = ContextVar("bus_current_run", default=None)
"""In an async handler's task, the ``Worker`` of that run (see ``_loop``)."""


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
        "loop",
        "runtime",
        "scope",
        "since",
        "task",
        "tasks",
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
        self.scope: Any = None  # what the observer returned for the delivery running now
        self.hung_reported = 0.0  # the ``since`` of the run reported hung
        self.waiting: CommandFuture | None = None
        self.done = 0  # items taken off the mailbox and finished with, run or not
        self.handled = 0
        self.failed = 0
        # The thread's event loop, once it has async work (see _loop).
        self.loop: asyncio.AbstractEventLoop | None = None
        # A loop thread's running tasks, each a Worker of its own; else None.
        self.tasks: set[Worker] | None = None
        self.task: asyncio.Task[Any] | None = None  # the task this worker runs as


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
