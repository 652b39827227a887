"""Pinning the benchmark to one CPU, and seeing that the threads it starts are.

On Linux a thread's CPU affinity is its own, and a thread inherits the
affinity of the thread that starts it. Pinning the thread that runs the
benchmarks before it starts any other therefore pins every thread a scenario
starts (the services' threads, the pools', the trace thread, the SDK's export
thread), and :func:`thread_cpus` reads them back to show it.

Hand-offs between threads on two idle vCPUs mostly measure wake-ups (10-20
µs), not the code under test; on one CPU they measure the code.

Example::

    from benchmarks._pinning import pinned

    with pinned(True) as cpu:
        ...  # every thread started here runs on CPU ``cpu`` (None: not pinned)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["can_pin", "pinned", "thread_cpus"]


def can_pin() -> bool:
    """Whether this platform lets a thread choose its CPUs (Linux does, macOS not)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def _allowed() -> set[int]:
    return set(os.sched_getaffinity(0))


@contextmanager
def pinned(pin: bool, cpu: int | None = None) -> Iterator[int | None]:
    """Pin the calling thread, and so every thread it starts, to one CPU.

    The calling thread's affinity is put back afterwards; threads started
    inside keep theirs (the scenarios join every thread they start).

    Args:
        pin: ``False`` leaves everything as it is.
        cpu: which CPU; by default the last one the process may use.

    Yields:
        The CPU pinned to, or ``None`` when not pinned (``pin`` false, or a
        platform without ``sched_setaffinity``).

    Raises:
        ValueError: ``cpu`` is not one the process may use.
    """
    if not pin or not can_pin():
        yield None
        return
    before = _allowed()
    if cpu is None:
        cpu = max(before)
    elif cpu not in before:
        raise ValueError(f"CPU {cpu} is not one this process may use ({sorted(before)})")
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def thread_cpus(threads: Iterable[threading.Thread]) -> frozenset[int]:
    """The union of the CPUs ``threads`` may run on, read from the kernel.

    Threads that have ended (or not started) are left out; empty where the
    platform cannot tell.
    """
    if not can_pin():
        return frozenset()
    cpus: set[int] = set()
    for thread in threads:
        native = thread.native_id
        if native is None or not thread.is_alive():
            continue
        try:
            cpus |= os.sched_getaffinity(native)
        except OSError:  # it ended between the check and the read
            continue
    return frozenset(cpus)
