"""Cancelling async handlers, and closing a bus that runs them: nothing left pending.

``future.cancel()`` on a running async command cancels its task; on a
running sync handler it returns ``False``, as ``concurrent.futures`` does.
``close()`` cancels the tasks it gives up on and closes each loop on its
own thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from bus import Activity, Bus, BusClosedError, Service, ServiceFailedError, command, listener
from bus._core._stats import HandlerStats
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` (a look at the bus's state) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _command(bus: Bus, name: str) -> dict[str, Any]:
    return next(c for c in bus.inspect()["commands"] if c["name"] == name)


class Sleeper(Service):
    """``sleeper.wait`` awaits until cancelled, and says what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.saw: list[str] = []
        self.ended = threading.Event()

    @command("sleeper.wait")
    async def wait(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            self.saw.append(f"CancelledError: {exc}")
            raise
        finally:
            self.ended.set()
        return "slept"

    @command("sleeper.stubborn")
    async def stubborn(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.saw.append("swallowed")
        self.ended.set()
        return "finished anyway"


def test_cancel_on_a_running_async_command_cancels_its_task(bus: Bus) -> None:
    sleeper = bus.add_service(Sleeper())
    future = bus.execute_command("sleeper.wait")
    assert sleeper.started.wait(5)
    assert future.running()
    assert (future.is_async, future.cancellable) == (True, True)

    assert future.cancel() is True
    assert future.cancelled()
    assert (future.done(), future.cancellable) == (True, False)
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=0)
    assert sleeper.ended.wait(5)
    assert sleeper.saw == ["CancelledError: cancelled by its caller"]
    wait_idle(bus)
    stats = _command(bus, "sleeper.wait")
    assert (stats["calls"], stats["cancelled"], stats["errors"], stats["late_replies"]) == (
        1,
        1,
        0,
        0,
    )
    assert stats["in_flight"] == 0
    # The slot is free again: the service goes on.
    again = bus.execute_command("sleeper.wait")
    assert _until(lambda: again.running())
    assert again.cancel()


def test_cancel_wakes_waiters_and_runs_done_callbacks(bus: Bus) -> None:
    sleeper = bus.add_service(Sleeper())
    future = bus.execute_command("sleeper.wait")
    assert sleeper.started.wait(5)
    called: list[bool] = []
    future.add_done_callback(lambda f: called.append(f.cancelled()))
    waiter_saw: list[str] = []

    def wait() -> None:
        try:
            future.result(timeout=10)
        except concurrent.futures.CancelledError:
            waiter_saw.append("cancelled")

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert future.cancel()
    waiter.join(10)
    assert waiter_saw == ["cancelled"]
    assert called == [True]
    done, _ = concurrent.futures.wait([future], timeout=5)
    assert done == {future}


def test_a_handler_that_swallows_the_cancellation_leaves_its_future_cancelled(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    sleeper = bus.add_service(Sleeper())
    future = bus.execute_command("sleeper.stubborn")
    assert sleeper.started.wait(5)
    with caplog.at_level(logging.WARNING, logger="bus"):
        assert future.cancel() is True
        assert sleeper.ended.wait(5)
        wait_idle(bus)
    assert future.cancelled()
    assert sleeper.saw == ["swallowed"]
    # Its value came after its caller gave up: a late reply, as for sync.
    assert _command(bus, "sleeper.stubborn")["late_replies"] == 1
    late = [r.getMessage() for r in caplog.records if "late reply" in r.getMessage()]
    assert len(late) == 1, late
    assert late[0].startswith("late reply: sleeper.stubborn on 'sleeper' finished after")
    assert late[0].endswith("after it was cancelled")


def test_cancel_on_a_running_sync_handler_returns_false_as_concurrent_futures_does(
    bus: Bus,
) -> None:
    started, release = threading.Event(), threading.Event()

    class Stuck(Service):
        @command("stuck")
        def stuck(self) -> str:
            started.set()
            release.wait(10)
            return "done"

    bus.add_service(Stuck())
    future = bus.execute_command("stuck")
    assert started.wait(5)
    assert (future.is_async, future.cancellable) == (False, False)
    assert future.cancel() is False
    assert not future.cancelled()
    release.set()
    assert future.result(timeout=5) == "done"  # the late reply still lands here
    wait_idle(bus)
    assert _command(bus, "stuck")["late_replies"] == 1


def test_cancel_before_an_async_handler_starts_means_it_never_runs(bus: Bus, gate: Any) -> None:
    opened = gate()
    ran: list[int] = []

    class One(Service):
        concurrency = 1

        @command("one")
        async def one(self, i: int) -> int:
            ran.append(i)
            await opened.wait()
            return i

    bus.add_service(One())
    first = bus.execute_command("one", 1)
    second = bus.execute_command("one", 2)  # waits for the only slot
    assert _until(lambda: ran == [1])
    assert second.cancellable
    assert second.cancel() is True
    opened.open()
    assert first.result(timeout=5) == 1
    wait_idle(bus)
    assert ran == [1]
    assert _command(bus, "one")["cancelled"] == 1


def test_cancelling_an_awaiting_handler_cancels_the_command_it_awaits(bus: Bus) -> None:
    sleeper = bus.add_service(Sleeper())

    class Asker(Service):
        @command("asker.ask")
        async def ask(self) -> Any:
            return await self.bus.execute_command("sleeper.wait")

    bus.add_service(Asker())
    asked = bus.execute_command("asker.ask")
    assert sleeper.started.wait(5)
    assert asked.cancel()
    # As asyncio.wrap_future does: the awaited command is cancelled with it.
    assert sleeper.ended.wait(5)
    assert sleeper.saw == ["CancelledError: cancelled by its caller"]
    wait_idle(bus)
    assert _command(bus, "sleeper.wait")["cancelled"] == 1
    assert bus.inspect()["waits"] == []


def test_a_cancelled_command_says_so_on_its_spans_and_its_return_activity(
    make_bus: Callable[..., Bus], tracer_provider: Any, finished_spans: Any
) -> None:
    b = make_bus(tracer_provider=tracer_provider)
    activities: list[Activity] = []
    b.watch(activities.append)
    sleeper = b.add_service(Sleeper())
    future = b.execute_command("sleeper.wait")
    assert sleeper.started.wait(5)
    assert future.cancel()
    wait_idle(b)

    spans: list[ReadableSpan] = finished_spans(b)
    for kind in (SpanKind.CLIENT, SpanKind.SERVER):
        (span,) = [s for s in spans if s.name == "sleeper.wait" and s.kind == kind]
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "CancelledError: cancelled by its caller"
        assert (span.attributes or {})["error.type"] == "CancelledError"
    (returned,) = [a for a in activities if a.kind == "return"]
    assert returned.error == {"type": "CancelledError", "message": "cancelled by its caller"}


def test_close_cancels_the_tasks_it_gives_up_on_and_fails_their_futures(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    b = make_bus(name="hung", hung_after=60)
    sleeper = b.add_service(Sleeper())
    heard = threading.Event()
    listener_saw: list[str] = []

    class Listening(Service):
        @listener("forever")
        async def forever(self) -> None:
            heard.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                listener_saw.append("cancelled")
                raise

    b.add_service(Listening())
    future = b.execute_command("sleeper.wait")
    b.fire_event("forever")
    assert sleeper.started.wait(5)
    assert heard.wait(5)
    with caplog.at_level(logging.WARNING, logger="bus"):
        b.close(timeout=0.3)
    assert future.done()
    with pytest.raises(
        BusClosedError, match=r"'sleeper\.wait' was still running on thread bus:hung/sleeper"
    ):
        future.result(timeout=0)
    assert sleeper.ended.wait(5)
    assert sleeper.saw == ["CancelledError: bus 'hung' closed while it ran"]
    # The loops close on their own threads, which end.
    for name in ("bus:hung/sleeper", "bus:hung/listening"):
        for thread in threading.enumerate():
            if thread.name == name:
                thread.join(5)
                assert not thread.is_alive()
    assert listener_saw == ["cancelled"]
    assert b.inspect()["commands"][0]["late_replies"] == 0


def test_close_leaves_nothing_pending_on_a_loop_and_cancels_background_tasks(
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus()
    started = threading.Event()
    saw: list[str] = []

    class Spawner(Service):
        @command("spawn")
        async def spawn(self) -> str:
            self.loop = asyncio.get_running_loop()
            self.task = asyncio.create_task(self.background())
            await asyncio.sleep(0)
            return "spawned"

        async def background(self) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                saw.append("background cancelled")
                raise

    spawner = b.add_service(Spawner())
    assert b.execute_command("spawn").result(timeout=5) == "spawned"
    assert started.wait(5)
    b.close(timeout=5)
    assert saw == ["background cancelled"]
    assert spawner.task.cancelled()
    assert spawner.loop.is_closed()


def test_a_bus_error_in_an_async_handlers_bookkeeping_fails_the_service(
    make_bus: Callable[..., Bus],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    gate: Any,
) -> None:
    # As test_robustness plays a bug in the bus: statistics that raise.
    finish = HandlerStats.finish
    doomed: list[HandlerStats] = []

    def faulty(self: HandlerStats, elapsed: float, error: BaseException | None) -> None:
        if self in doomed:
            raise RuntimeError("a bug in the bus")
        finish(self, elapsed, error)

    monkeypatch.setattr(HandlerStats, "finish", faulty)
    b = make_bus(tracing=False)
    opened = gate()
    started = threading.Event()

    class Doomed(Service):
        @command("doomed.boom")
        async def boom(self) -> str:
            return "never delivered"

        @command("doomed.waiting")
        async def waiting(self) -> str:
            started.set()
            await opened.wait()
            return "never either"

    b.add_service(Doomed())
    doomed.append(b.router.command("doomed.boom").stats)
    waiting = b.execute_command("doomed.waiting")
    assert started.wait(5)
    with caplog.at_level(logging.WARNING, logger="bus"):
        with pytest.raises(ServiceFailedError, match="died of RuntimeError: a bug in the bus"):
            b.execute_command("doomed.boom").result(timeout=5)
        # What ran beside it fails too, at once, and later work is refused.
        with pytest.raises(ServiceFailedError):
            waiting.result(timeout=5)
        with pytest.raises(ServiceFailedError):
            b.execute_command("doomed.boom")
    (service,) = [s for s in b.inspect()["services"] if s["name"] == "doomed"]
    assert service["state"] == "failed"
    assert b.wait_idle(timeout=5)  # nothing is left in flight
    deaths = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(deaths) == 1, [r.getMessage() for r in caplog.records]
    for thread in threading.enumerate():
        if thread.name == "bus:test/doomed":
            thread.join(5)
            assert not thread.is_alive()


def test_a_storm_of_awaits_and_cancels_leaves_nothing_pending(
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus(tracing=True)

    class Front(Service):
        concurrency = 8

        @command("front.relay")
        async def relay(self, i: int) -> int:
            return int(await self.bus.execute_command("back.work", i)) + 1

    class Back(Service):
        @command("back.work")
        async def work(self, i: int) -> int:
            await asyncio.sleep(0.001 * (i % 3))
            return i

        @command("back.plain")
        def plain(self, i: int) -> int:
            return i

    b.add_service(Front())
    b.add_service(Back())
    futures = []
    for i in range(600):
        futures.append(b.execute_command("front.relay", i))
        futures.append(b.execute_command("back.plain", i))
        if i % 7 == 0:
            futures[-2].cancel()
        if i % 11 == 0:
            futures[-4 if len(futures) > 3 else -2].cancel()
    # Some now run (a relay awaiting its work, mostly), some still wait.
    running = [(f.cancel(), f) for f in futures[::10] if f.running()]
    concurrent.futures.wait(futures, timeout=20)
    assert all(f.done() for f in futures)
    # Each was async, so cancel() succeeded, unless it had just finished.
    for cancelled, f in running:
        assert cancelled == f.cancelled()
        assert cancelled or f.exception(timeout=0) is None
    for i, f in enumerate(futures):
        if not f.cancelled():
            n = i // 2
            assert f.result(timeout=0) == (n + 1 if i % 2 == 0 else n)
    assert b.wait_idle(timeout=10)
    for entry in b.inspect()["commands"]:
        assert entry["in_flight"] == 0, entry
    assert b.inspect()["waits"] == []
    assert b.flush_traces(timeout=10)
