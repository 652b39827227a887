"""Finding a wait that would close a cycle of services.

The graph has a node per service and an edge S -> T for every thread of S
blocked on a future that T's handler will resolve. A service is *stuck* when
all its threads are blocked in such waits. A new wait S -> T deadlocks if T is
stuck and, following edges only through stuck services, T reaches S, which is
stuck itself once this wait begins. For the usual one-thread service that is
any cycle, including S waiting on itself; a ``Service(concurrency=N)`` joins a
cycle only when all N of its threads wait.

The shared pool is a node like any other, with ``max_pool_threads`` threads:
it grows a thread whenever all are busy, so it is stuck only when it has
grown to its cap and every one of those threads waits.

A service with async handlers runs them on one thread's event loop, and its
``concurrency`` counts the handlers that may run at once there: an ``await``
on a command holds one of those slots, not the thread, so the service is
stuck when every slot awaits. A blocking wait (``.result()``) on that thread
stops the loop and every handler on it: such a wait is entered ``whole``,
and the service is stuck for as long as it lasts.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Protocol

from ._errors import DeadlockError

__all__ = ["Node", "WaitGraph"]


class Node(Protocol):
    """A node of the graph: a service (local or remote), or the pool."""

    @property
    def name(self) -> str:
        """What the cycle names it by."""

    @property
    def concurrency(self) -> int:
        """How many of its threads must wait before it is stuck."""


class WaitGraph:
    """Who waits on whom, for one bus. Thread-safe; used only on blocking waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._edges: dict[Node, Counter[Node]] = {}
        self._blocked: Counter[Node] = Counter()
        self._whole: Counter[Node] = Counter()  # waits that stop every slot of a node

    def enter(self, waiter: Node, target: Node, *, whole: bool = False) -> None:
        """Record that a thread (or slot) of ``waiter`` starts waiting on ``target``.

        ``whole``: the wait stops all of ``waiter`` (a blocking wait on the
        thread of an event loop), which is then stuck whatever its
        ``concurrency``.

        Raises:
            DeadlockError: the wait would never end; nothing is recorded.
        """
        with self._lock:
            self._blocked[waiter] += 1
            if whole:
                self._whole[waiter] += 1
            self._edges.setdefault(waiter, Counter())[target] += 1
            cycle = self._cycle(waiter, target)
            if cycle is not None:
                self._remove(waiter, target, whole)
                raise DeadlockError([r.name for r in cycle])

    def leave(self, waiter: Node, target: Node, *, whole: bool = False) -> None:
        """Record that the wait recorded by ``enter`` is over."""
        with self._lock:
            self._remove(waiter, target, whole)

    def waits(self) -> list[tuple[str, str, int]]:
        """Current waits as ``(waiter, target, threads)``, for ``inspect()``."""
        with self._lock:
            return [
                (w.name, t.name, n)
                for w, targets in self._edges.items()
                for t, n in targets.items()
                if n
            ]

    def _remove(self, waiter: Node, target: Node, whole: bool) -> None:
        if whole:
            self._whole[waiter] -= 1
            if not self._whole[waiter]:
                del self._whole[waiter]
        self._blocked[waiter] -= 1
        if not self._blocked[waiter]:
            del self._blocked[waiter]
        targets = self._edges[waiter]
        targets[target] -= 1
        if not targets[target]:
            del targets[target]
            if not targets:
                del self._edges[waiter]

    def _stuck(self, runtime: Node) -> bool:
        return self._blocked[runtime] >= runtime.concurrency or runtime in self._whole

    def _cycle(self, waiter: Node, target: Node) -> list[Node] | None:
        if not self._stuck(waiter) or not self._stuck(target):
            return None
        # Depth-first from target through stuck services, back to the waiter.
        path = [waiter, target]
        if target is waiter:
            return path
        seen = {target}
        stack = [iter(self._edges.get(target, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                path.pop()
                continue
            if nxt is waiter:
                return [*path, waiter]
            if nxt in seen or not self._stuck(nxt):
                continue
            seen.add(nxt)
            path.append(nxt)
            stack.append(iter(self._edges.get(nxt, ())))
        return None
