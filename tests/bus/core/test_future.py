"""``CommandFuture`` is a ``concurrent.futures.Future`` in every respect.

It keeps the base class's state but not its per-future ``Condition``: that
is made only when something asks for it (``wait()``, ``as_completed()``,
or the base class's own methods), over the future's own lock. These tests
drive it with the standard library's functions, from several threads at
once, on a real bus.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, CancelledError, Future
from typing import Any

import pytest

from bus import Bus, CommandFuture, Service, command

pytestmark = pytest.mark.timeout(30)


class Gated(Service):
    """``slow`` waits for its gate; ``echo`` answers at once; ``boom`` raises."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.ran: list[int] = []

    @command("slow")
    def slow(self, x: int) -> int:
        self.entered.set()
        assert self.gate.wait(20)
        self.ran.append(x)
        return x

    @command("echo")
    def echo(self, x: int) -> int:
        self.ran.append(x)
        return x

    @command("boom")
    def boom(self, message: str) -> None:
        raise ValueError(message)


@pytest.fixture
def gated() -> Iterator[tuple[Bus, Gated]]:
    bus = Bus(name="futures")
    service = Gated()
    bus.add_service(service)
    try:
        yield bus, service
    finally:
        service.gate.set()
        bus.close()


def test_it_is_a_future_and_makes_no_condition_until_asked(gated: tuple[Bus, Gated]) -> None:
    bus, _ = gated
    future = bus.execute_command("echo", 1)
    assert isinstance(future, Future)
    assert isinstance(future, CommandFuture)
    assert future.result(5) == 1
    assert future._made is None  # nothing asked for a Condition
    condition = future._condition
    assert isinstance(condition, threading.Condition)
    assert future._condition is condition  # made once
    assert future._made is condition


def test_wait_first_completed_returns_the_one_that_finished(gated: tuple[Bus, Gated]) -> None:
    bus, service = gated
    slow = bus.execute_command("slow", 1)
    assert service.entered.wait(5)
    other = Bus(name="other")
    try:
        other.add_service(Gated())
        quick = other.execute_command("echo", 2)
        done, pending = concurrent.futures.wait(
            [slow, quick], timeout=10, return_when=FIRST_COMPLETED
        )
        assert done == {quick}
        assert pending == {slow}
        service.gate.set()
        done, pending = concurrent.futures.wait(
            [slow, quick], timeout=10, return_when=ALL_COMPLETED
        )
        assert done == {slow, quick}
        assert not pending
        assert (slow.result(), quick.result()) == (1, 2)
    finally:
        other.close()


def test_a_wait_that_begins_before_the_result_is_woken_by_it(gated: tuple[Bus, Gated]) -> None:
    """wait() installs its waiter under the future's lock; set_result must see it."""
    bus, service = gated
    futures = [bus.execute_command("slow", i) for i in range(3)]
    assert service.entered.wait(5)
    results: list[set[Future[Any]]] = []
    waiting = threading.Event()

    def waiter() -> None:
        waiting.set()
        done, _ = concurrent.futures.wait(futures, timeout=20)
        results.append(done)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(5)
    service.gate.set()
    thread.join(25)
    assert not thread.is_alive()
    assert results == [set(futures)]
    assert [f.result() for f in futures] == [0, 1, 2]


def test_as_completed_yields_every_future_once(gated: tuple[Bus, Gated]) -> None:
    bus, _ = gated
    futures: list[Future[Any]] = [bus.execute_command("echo", i) for i in range(200)]
    seen = [f.result() for f in concurrent.futures.as_completed(futures, timeout=20)]
    assert sorted(seen) == list(range(200))


def test_the_base_class_methods_still_wait_and_wake(gated: tuple[Bus, Gated]) -> None:
    """``Future.result(f)`` waits on the Condition: set_result must notify it."""
    bus, service = gated
    future = bus.execute_command("slow", 7)
    assert service.entered.wait(5)
    got: list[Any] = []
    # No timeout: without the notify it would wait for ever (a daemon, so
    # the failure is the assertion below, not a hung run).
    thread = threading.Thread(target=lambda: got.append(Future.result(future)), daemon=True)
    thread.start()
    # The base class's result() makes the Condition before it waits on it.
    while future._made is None:
        thread.join(0.001)
    service.gate.set()
    thread.join(10)
    assert not thread.is_alive()
    assert got == [7]


def test_done_callbacks_run_once_with_the_future(gated: tuple[Bus, Gated]) -> None:
    bus, service = gated
    future = bus.execute_command("slow", 3)
    calls: list[tuple[Future[Any], bool]] = []
    called = threading.Event()

    def callback(f: Future[Any]) -> None:
        calls.append((f, f.done()))
        called.set()

    future.add_done_callback(callback)
    assert not calls
    service.gate.set()
    assert called.wait(5)
    future.add_done_callback(callback)  # already done: called at once, here
    assert calls == [(future, True), (future, True)]


def test_a_failed_command_gives_its_exception_everywhere(gated: tuple[Bus, Gated]) -> None:
    bus, _ = gated
    future = bus.execute_command("boom", "no")
    error = future.exception(5)
    assert isinstance(error, ValueError)
    assert str(error) == "no"
    with pytest.raises(ValueError, match="no") as raised:
        future.result()
    assert raised.value is error
    assert future.done()
    assert not future.cancelled()
    assert not future.running()


def test_cancel_before_it_runs_is_seen_by_waiters_and_the_handler_never_runs(
    gated: tuple[Bus, Gated],
) -> None:
    bus, service = gated
    first = bus.execute_command("slow", 1)
    assert service.entered.wait(5)
    queued = bus.execute_command("echo", 2)
    assert queued.cancel() is True
    assert queued.cancel() is True  # again: still cancelled
    assert queued.cancelled()
    assert queued.done()
    with pytest.raises(CancelledError):
        queued.result(5)
    with pytest.raises(CancelledError):
        queued.exception(5)
    # wait() counts a cancelled future once its service has seen the cancel.
    service.gate.set()
    done, _ = concurrent.futures.wait([queued, first], timeout=10)
    assert done == {queued, first}
    assert service.ran == [1]
    assert first.cancel() is False


def test_cancel_racing_the_start_has_exactly_one_outcome(gated: tuple[Bus, Gated]) -> None:
    """Every future either ran (and has its result) or was cancelled (and never ran)."""
    bus, service = gated
    futures = [bus.execute_command("echo", i) for i in range(2000)]
    cancelled = [i for i, f in enumerate(futures) if f.cancel()]
    outcomes = []
    for i, f in enumerate(futures):
        if f.cancelled():
            outcomes.append("cancelled")
        else:
            assert f.result(10) == i
            outcomes.append("ran")
    assert [i for i, o in enumerate(outcomes) if o == "cancelled"] == cancelled
    ran = set(service.ran)
    assert ran == {i for i, o in enumerate(outcomes) if o == "ran"}
    assert len(service.ran) == len(ran)  # none ran twice


def test_setting_a_result_twice_is_refused(gated: tuple[Bus, Gated]) -> None:
    bus, _ = gated
    future = bus.execute_command("echo", 1)
    assert future.result(5) == 1
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_result(2)
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_exception(ValueError())
    assert future.result() == 1


def test_asyncio_wraps_it(gated: tuple[Bus, Gated]) -> None:
    bus, _ = gated

    async def main() -> int:
        return int(await asyncio.wrap_future(bus.execute_command("echo", 5)))

    assert asyncio.run(main()) == 5


def test_many_threads_wait_on_one_future(gated: tuple[Bus, Gated]) -> None:
    bus, service = gated
    future = bus.execute_command("slow", 9)
    assert service.entered.wait(5)
    got: list[Any] = []
    lock = threading.Lock()

    def wait() -> None:
        value = future.result(20)
        with lock:
            got.append(value)

    threads = [threading.Thread(target=wait) for _ in range(8)]
    for thread in threads:
        thread.start()
    service.gate.set()
    for thread in threads:
        thread.join(25)
    assert got == [9] * 8
