"""``inspect()``: the bus's state as one JSON-ready snapshot.

Read while the bus runs, without blocking on handlers: every figure is read
once from structures that their owners write (a ``Worker`` is written only
by its thread), so a snapshot is consistent per item, not across items.
"""

from __future__ import annotations

import time
from typing import Any

from .._core import _accel
from .._core._bus import BusCore
from .._core._errors import error_text
from .._core._runtime import Runtime
from .._core._worker import Worker

__all__ = ["snapshot"]


def snapshot(bus: BusCore, tracing: dict[str, Any]) -> dict[str, Any]:
    """Services, commands, listeners, waits and totals; ``tracing`` as given."""
    now = time.perf_counter()
    described = [_describe_runtime(rt, now, bus.hung_after) for rt in bus.runtimes()]
    services = [service for service, _ in described]
    commands = [h.describe() for h in bus.router.commands()]
    listeners = [h.describe() for h in bus.router.listeners()]
    totals = {
        "services": sum(1 for s in services if s["kind"] == "service"),
        "commands": len(commands),
        "listeners": len(listeners),
        "handled": sum(s["handled"] for s in services),
        "failed": sum(s["failed"] for s in services),
        "rejected": sum(s["rejected"] for s in services),
        "dropped": sum(s["dropped"] for s in services),
        "late_replies": sum(c["late_replies"] for c in commands),
        "hung": sum(hung for _, hung in described),  # on threads, and as tasks
    }
    return {
        "bus": {
            "name": bus.name,
            "pid": bus.pid,
            "started_at": bus.started_at,
            "uptime": round(time.time() - bus.started_at, 3),
            "state": bus.state,
            "mailbox_size": bus.mailbox_size,
            "hung_after": bus.hung_after,
            # Which code delivers untraced events: the C accelerator or Python.
            "speedups": _accel.mode(),
        },
        "totals": totals,
        "services": services,
        "commands": commands,
        "listeners": listeners,
        "waits": [{"waiter": w, "target": t, "threads": n} for w, t, n in bus.waits()],
        "tracing": tracing,
    }


def _describe_run(run: Worker, now: float, hung_after: float) -> dict[str, Any]:
    """What one thread, or one task on a loop, runs now."""
    current, waiting = run.current, run.waiting
    running_for = now - run.since if current is not None else None
    return {
        "state": "waiting" if waiting is not None else "busy" if current is not None else "idle",
        "handler": current.name if current is not None else None,
        "running_for": None if running_for is None else round(running_for, 3),
        "hung": running_for is not None and running_for > hung_after,
        "waiting_on": waiting.command if waiting is not None else None,
    }


def _describe_runtime(
    runtime: Runtime, now: float, hung_after: float
) -> tuple[dict[str, Any], int]:
    """The service's entry, and how many of its handlers are hung."""
    hung = 0
    threads = []
    for worker in list(runtime.workers):
        thread = {"name": worker.thread_name, **_describe_run(worker, now, hung_after)}
        hung += thread["hung"]
        if worker.tasks is not None:
            # A loop thread: each async handler running on it, as a task.
            tasks = []
            for run in tuple(worker.tasks):
                if run.current is not None:
                    task = {"kind": run.current.kind, **_describe_run(run, now, hung_after)}
                    tasks.append(task)
                    hung += task["hung"]
            tasks.sort(key=lambda t: -(t["running_for"] or 0.0))  # the oldest first
            thread["tasks"] = tasks
            thread["hung"] = thread["hung"] or any(t["hung"] for t in tasks)
        threads.append(thread)
    busy = any(t["state"] != "idle" or t.get("tasks") for t in threads)
    _, handled, failed = runtime.totals()
    entry = {
        "name": runtime.name,
        "kind": "pool" if runtime.elastic else "service",
        "class": type(runtime.service).__qualname__ if runtime.service else None,
        "state": runtime.state,
        "activity": "busy" if busy else "idle",
        "concurrency": runtime.concurrency,  # threads; with a loop, handlers at once
        "async": runtime.aio is not None,
        "threads": threads,
        "mailbox": runtime.depth(),
        "mailbox_size": runtime.maxsize,
        "handled": handled,
        "failed": failed,
        "rejected": runtime.rejected,
        "dropped": runtime.dropped,
        "error": None if runtime.error is None else error_text(runtime.error),
    }
    return entry, hung
