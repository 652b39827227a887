"""A bus's mailbox threads run under ``SCHED_BATCH`` on Linux; its other threads do not.

A thread under ``SCHED_BATCH`` keeps its share of the CPU, but waking it
never preempts the running thread, which in one Python process is most
often the one holding the GIL it would wait for (``bus/_core/_threads.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

from bus import Bus, Service, command

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's"),
]

BATCH = getattr(os, "SCHED_BATCH", -1)
OTHER = getattr(os, "SCHED_OTHER", 0)


class Probe(Service):
    """Reports the scheduling policy of its own thread and of what it starts."""

    name = "probe"

    @command("policy")
    def policy(self) -> int:
        return os.sched_getscheduler(0)

    @command("started_policy")
    def started_policy(self) -> int:
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        thread.start()
        thread.join()
        return seen[0]

    @command("child_policy")
    def child_policy(self) -> list[int]:
        # What it starts with, and what it may put itself back to unprivileged.
        code = (
            "import os; a = os.sched_getscheduler(0); "
            "os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)); "
            "print(a, os.sched_getscheduler(0))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        return [int(value) for value in out.split()]


def _policies(bus: Bus) -> dict[str, int]:
    """The policy of every live thread of ``bus``, by name (read by thread id)."""
    prefix = f"bus:{bus.name}/"
    return {
        thread.name: os.sched_getscheduler(thread.native_id)
        for thread in threading.enumerate()
        if thread.name.startswith(prefix) and thread.native_id is not None
    }


def test_mailbox_threads_run_under_sched_batch_and_the_others_do_not() -> None:
    with Bus(name="sched-all") as bus:
        bus.add_service(Probe())
        bus.add_service(Service(name="pair", concurrency=2))
        bus.register_command("pooled", lambda: os.sched_getscheduler(0))  # the shared pool's
        assert bus.execute_command("policy").result(timeout=10) == BATCH
        assert bus.execute_command("pooled").result(timeout=10) == BATCH
        policies = _policies(bus)
    assert policies["bus:sched-all/probe"] == BATCH
    assert policies["bus:sched-all/pair-0"] == policies["bus:sched-all/pair-1"] == BATCH
    # The trace thread waits on timers and the GIL's timeouts: it stays ordinary.
    assert policies["bus:sched-all/trace"] == OTHER
    assert policies["bus:sched-all/timers"] == OTHER


def test_a_bus_made_in_a_handler_has_ordinary_threads_but_its_mailboxes() -> None:
    seen: dict[str, int] = {}

    def nest() -> None:
        with Bus(name="sched-inner") as inner:
            inner.add_service(Probe())
            seen.update(_policies(inner))

    with Bus(name="sched-outer", tracing=False) as bus:
        bus.add_service(Probe())
        bus.register_command("nest", nest)
        bus.execute_command("nest").result(timeout=30)
    assert seen["bus:sched-inner/trace"] == OTHER
    assert seen["bus:sched-inner/probe"] == BATCH


def test_the_callers_thread_is_left_as_it_was() -> None:
    before = os.sched_getscheduler(0)
    with Bus(name="sched-caller", tracing=False) as bus:
        bus.add_service(Probe())
        bus.execute_command("policy").result(timeout=10)
        assert os.sched_getscheduler(0) == before


def test_what_a_handler_starts_inherits_it_and_may_put_itself_back() -> None:
    with Bus(name="sched-children", tracing=False) as bus:
        bus.add_service(Probe())
        assert bus.execute_command("started_policy").result(timeout=10) == BATCH
        assert bus.execute_command("child_policy").result(timeout=30) == [BATCH, OTHER]


def test_bus_sched_batch_0_leaves_the_threads_ordinary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUS_SCHED_BATCH", "0")
    with Bus(name="sched-off") as bus:
        bus.add_service(Probe())
        assert bus.execute_command("policy").result(timeout=10) == OTHER
        assert set(_policies(bus).values()) == {OTHER}


def test_a_thread_keeps_the_nice_value_it_inherits() -> None:
    # In a child process, so that this one's priority is left alone.
    code = textwrap.dedent(
        """
        import os, threading
        from bus import Bus, Service, command
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 7)

        class Nice(Service):
            name = "nice"

            @command("nice")
            def nice(self) -> tuple[int, int]:
                tid = threading.get_native_id()
                return os.getpriority(os.PRIO_PROCESS, tid), os.sched_getscheduler(0)

        with Bus(name="sched-nice", tracing=False) as bus:
            bus.add_service(Nice())
            print(*bus.execute_command("nice").result(timeout=10))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=50
    ).stdout.split()
    assert [int(value) for value in out] == [7, BATCH]


def test_a_refusing_platform_leaves_the_thread_running(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with Bus(name="sched-refused", tracing=False) as bus:
        bus.add_service(Probe())
        assert bus.execute_command("policy").result(timeout=10) == OTHER


def test_a_process_already_under_sched_batch_keeps_it_everywhere() -> None:
    # chrt -b: the user's choice holds for the bus's other threads too.
    code = textwrap.dedent(
        """
        import os, threading
        from bus import Bus, Service, command
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))

        def nest() -> int:
            with Bus(name="sched-inner-chrt") as inner:
                (trace,) = [t for t in threading.enumerate() if t.name.endswith("chrt/trace")]
                return os.sched_getscheduler(trace.native_id)

        with Bus(name="sched-chrt", tracing=False) as bus:
            bus.register_command("nest", nest)
            print(bus.execute_command("nest").result(timeout=20))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=50
    ).stdout
    assert int(out) == BATCH
