"""Async handlers: they run on their service's own loop, in order, and interleave.

Before issue 11 an ``async def`` command returned an unawaited coroutine as
its result and an ``async def`` listener never ran. Every test here runs
real services on real threads and loops; each synchronises on events and
gates, never on sleeps, except the one whose point is the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bus import (
    Bus,
    BusError,
    DeadlockError,
    MailboxFullError,
    Service,
    command,
    current_event,
    listener,
)
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


def _service(bus: Bus, name: str) -> dict[str, Any]:
    return next(s for s in bus.inspect()["services"] if s["name"] == name)


def _tasks(bus: Bus, name: str) -> list[dict[str, Any]]:
    return [t for thread in _service(bus, name)["threads"] for t in thread.get("tasks", ())]


# -- running ---------------------------------------------------------------------


def test_an_async_command_returns_its_value_and_an_async_listener_runs(bus: Bus) -> None:
    heard = threading.Event()
    seen: list[Any] = []

    class Greeter(Service):
        @command("greet")
        async def greet(self, name: str) -> str:
            await asyncio.sleep(0)
            return f"Hello, {name}!"

        @listener("greeted")
        async def on_greeted(self, name: str, *, loud: bool = False) -> None:
            await asyncio.sleep(0)
            seen.append((name, loud, threading.current_thread().name))
            heard.set()

    bus.add_service(Greeter())
    assert bus.execute_command("greet", "Alice").result(timeout=5) == "Hello, Alice!"
    bus.fire_event("greeted", "Bob", loud=True)
    assert heard.wait(5)
    assert seen == [("Bob", True, "bus:test/greeter")]
    described = _service(bus, "greeter")
    assert described["async"] is True
    assert [c["async"] for c in bus.inspect()["commands"]] == [True]


def test_async_handlers_run_on_the_services_own_thread_with_its_sync_ones(bus: Bus) -> None:
    class Mixed(Service):
        @command("where.async")
        async def where_async(self) -> tuple[str, bool]:
            asyncio.get_running_loop()  # there is one
            return threading.current_thread().name, True

        @command("where.sync")
        def where_sync(self) -> tuple[str, bool]:
            running = True
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                running = False
            return threading.current_thread().name, running

    bus.add_service(Mixed())
    assert bus.execute_command("where.async").result(timeout=5) == ("bus:test/mixed", True)
    # A sync handler of a service with async ones runs on the loop's thread.
    assert bus.execute_command("where.sync").result(timeout=5) == ("bus:test/mixed", True)


def test_three_sleeping_commands_finish_together_not_one_after_another(bus: Bus) -> None:
    class Sleeper(Service):
        @command("nap")
        async def nap(self, i: int) -> int:
            await asyncio.sleep(0.6)
            return i

    bus.add_service(Sleeper())
    begun = time.monotonic()
    futures = [bus.execute_command("nap", i) for i in range(3)]
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2]
    elapsed = time.monotonic() - begun
    # One after another would take 1.8 s; together, 0.6 s and the hand-offs.
    assert elapsed < 1.4, elapsed


def test_sync_services_have_no_loop_and_show_no_tasks(bus: Bus) -> None:
    class Plain(Service):
        @command("plain")
        def plain(self) -> str:
            return "plain"

    bus.add_service(Plain())
    assert bus.execute_command("plain").result(timeout=5) == "plain"
    described = _service(bus, "plain")
    assert described["async"] is False
    assert described["concurrency"] == 1
    assert all("tasks" not in t for t in described["threads"])
    assert bus._runtimes["plain"].aio is None


def test_a_runtime_keeps_its_instance_dict_small_enough_to_stay_specialised(bus: Bus) -> None:
    # CPython 3.11 shares the keys of an instance dict of at most 30 entries;
    # beyond that, every method call on a runtime (post, on the hot path of
    # every command and event) goes the slow way. The loop's attributes are
    # class attributes until a service has one.
    class Plain(Service):
        @command("plain")
        def plain(self) -> str:
            return "plain"

    class Async(Service):
        @command("async")
        async def run(self) -> str:
            return "async"

    bus.add_service(Plain())
    bus.add_service(Async())
    bus.register_command("pooled", lambda: "pool")
    assert bus.execute_command("pooled").result(timeout=5) == "pool"
    for runtime in (bus._runtimes["plain"], bus._runtimes["async"], bus._pool):
        assert len(vars(runtime)) <= 30, sorted(vars(runtime))
    assert "aio" not in vars(bus._runtimes["plain"])


def test_an_async_generator_is_refused_as_a_handler(bus: Bus) -> None:
    async def numbers() -> Any:
        yield 1

    with pytest.raises(TypeError, match="the command 'numbers' is an async generator"):
        bus.register_command("numbers", numbers)
    with pytest.raises(TypeError, match="the listener 'tick' is an async generator"):
        bus.register_listener("tick", numbers)


def test_an_object_with_an_async_call_is_an_async_handler(bus: Bus) -> None:
    class Doubler:
        async def __call__(self, x: int) -> int:
            await asyncio.sleep(0)
            return 2 * x

    bus.register_command("double", Doubler())
    assert bus.execute_command("double", 21).result(timeout=5) == 42


# -- order and concurrency -------------------------------------------------------


def test_async_handlers_start_in_mailbox_order_and_interleave(bus: Bus, gate: Any) -> None:
    opened = gate()
    log: list[str] = []

    class Ordered(Service):
        @command("step")
        async def step(self, i: int) -> int:
            log.append(f"start {i}")
            await opened.wait()
            log.append(f"end {i}")
            return i

        @command("mark")
        def mark(self, what: str) -> None:
            log.append(what)

    bus.add_service(Ordered())
    futures = [bus.execute_command("step", i) for i in range(5)]
    marked = bus.execute_command("mark", "sync")
    # Every task has started before the sync handler queued after them runs,
    # and they all wait together: none finished first.
    marked.result(timeout=5)
    assert log == ["start 0", "start 1", "start 2", "start 3", "start 4", "sync"]
    opened.open()
    assert [f.result(timeout=5) for f in futures] == [0, 1, 2, 3, 4]
    assert log[6:] == ["end 0", "end 1", "end 2", "end 3", "end 4"]


def test_a_sync_handler_waits_for_the_task_before_it_to_reach_its_await(bus: Bus) -> None:
    log: list[str] = []

    class Ordered(Service):
        @command("slow_start")
        async def slow_start(self) -> None:
            log.append("async begins")
            for _ in range(3):  # synchronous work before the first await
                log.append("async works")
            await asyncio.sleep(0)
            log.append("async ends")

        @command("sync")
        def sync(self) -> None:
            log.append("sync")

    bus.add_service(Ordered())
    first = bus.execute_command("slow_start")
    second = bus.execute_command("sync")
    first.result(timeout=5)
    second.result(timeout=5)
    assert log[:4] == ["async begins", "async works", "async works", "async works"]
    assert set(log[4:]) == {"sync", "async ends"}


def test_concurrency_bounds_how_many_async_handlers_run_at_once(bus: Bus, gate: Any) -> None:
    opened = gate()
    running = 0
    most = 0

    class Bounded(Service):
        concurrency = 2

        @command("work")
        async def work(self, i: int) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await opened.wait()
            running -= 1
            return i

    bus.add_service(Bounded())
    futures = [bus.execute_command("work", i) for i in range(5)]
    # Two run; the other three wait their turn (one taken, two in the mailbox).
    assert _until(lambda: len(_tasks(bus, "bounded")) == 2)
    described = _service(bus, "bounded")
    assert described["concurrency"] == 2
    assert described["mailbox"] == 2
    assert described["activity"] == "busy"
    assert not any(f.done() for f in futures)
    opened.open()
    assert [f.result(timeout=5) for f in futures] == [0, 1, 2, 3, 4]
    assert most == 2
    assert len(bus._runtimes["bounded"].threads) == 1  # one loop thread, not two threads


# -- awaiting commands --------------------------------------------------------------


def test_awaiting_a_command_does_not_block_the_loop(bus: Bus, gate: Any) -> None:
    opened = gate()

    class Front(Service):
        @command("front.ask")
        async def ask(self) -> str:
            return str(await self.bus.execute_command("back.slow"))

        @command("front.ping")
        async def ping(self) -> str:
            return "pong"

    class Back(Service):
        @command("back.slow")
        async def slow(self) -> str:
            await opened.wait()
            return "slow answer"

    bus.add_service(Front())
    bus.add_service(Back())
    asked = bus.execute_command("front.ask")
    assert _until(lambda: any(t["waiting_on"] == "back.slow" for t in _tasks(bus, "front")))
    # front awaits back, and still answers.
    assert bus.execute_command("front.ping").result(timeout=5) == "pong"
    assert bus.inspect()["waits"] == [{"waiter": "front", "target": "back", "threads": 1}]
    opened.open()
    assert asked.result(timeout=5) == "slow answer"
    wait_idle(bus)
    assert bus.inspect()["waits"] == []


def test_a_command_future_is_awaitable_from_any_asyncio_program(bus: Bus) -> None:
    bus.register_command("echo", lambda x: x)

    async def main() -> Any:
        return await bus.execute_command("echo", "from main")

    assert asyncio.run(main()) == "from main"


def test_errors_of_async_commands_reach_the_future_with_their_type(bus: Bus) -> None:
    class Failing(Service):
        @command("fail")
        async def fail(self, reason: str) -> None:
            await asyncio.sleep(0)
            raise KeyError(reason)

        @command("fail.through")
        async def through(self) -> None:
            await self.bus.execute_command("fail", "nested")

    bus.add_service(Failing())
    with pytest.raises(KeyError, match="why") as info:
        bus.execute_command("fail", "why").result(timeout=5)
    assert any(frame.name == "fail" for frame in info.traceback)
    with pytest.raises(KeyError, match="nested"):
        bus.execute_command("fail.through").result(timeout=5)
    (fail, _) = bus.inspect()["commands"]
    assert (fail["calls"], fail["errors"], fail["last_error"]) == (2, 2, "KeyError: 'nested'")


def test_a_failing_async_listener_is_logged_and_counted_and_others_still_run(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    heard = threading.Event()

    class Listeners(Service):
        @listener("ping")
        async def broken(self) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("listener broke")

        @listener("ping")
        async def fine(self) -> None:
            heard.set()

    bus.add_service(Listeners())
    with caplog.at_level(logging.ERROR, logger="bus"):
        bus.fire_event("ping")
        assert heard.wait(5)
        wait_idle(bus)
    broken = next(x for x in bus.inspect()["listeners"] if x["handler"].endswith("broken"))
    assert (broken["deliveries"], broken["errors"]) == (1, 1)
    assert broken["last_error"] == "RuntimeError: listener broke"
    assert any("failed on event 'ping'" in r.getMessage() for r in caplog.records)


def test_current_event_works_in_an_async_listener_across_its_awaits(bus: Bus) -> None:
    got: list[Any] = []
    done = threading.Event()

    class Watcher(Service):
        @listener("lights.*")
        async def on_lights(self, *args: Any) -> None:
            before = current_event()
            await asyncio.sleep(0.01)
            after = current_event()
            got.append((before, after))
            done.set()

        @command("outside")
        async def outside(self) -> Any:
            return current_event()

    bus.add_service(Watcher())
    bus.fire_event("lights.kitchen.on", 3)
    assert done.wait(5)
    ((before, after),) = got
    assert before == after
    assert (after.name, after.args, after.pattern, after.service) == (
        "lights.kitchen.on",
        (3,),
        "lights.*",
        "watcher",
    )
    assert after.trace_id is not None
    assert after.span_id is not None
    assert bus.execute_command("outside").result(timeout=5) is None


# -- deadlocks ----------------------------------------------------------------------


class _Ping(Service):
    """``NAME.call(chain)`` calls the next in ``chain``: sync waits, async awaits."""

    def __init__(self, name: str, *, asynchronous: bool, concurrency: int | None = None) -> None:
        super().__init__(name=name, concurrency=concurrency)
        self.asynchronous = asynchronous

    def on_start(self) -> None:
        me = self.service_name()
        handler = self.call_async if self.asynchronous else self.call_sync
        self.bus.register_command(f"{me}.call", handler)

    def call_sync(self, chain: list[str]) -> Any:
        if not chain:
            return [self.service_name()]
        rest = self.bus.execute_command(f"{chain[0]}.call", chain[1:]).result(10)
        return [self.service_name(), *rest]

    async def call_async(self, chain: list[str]) -> Any:
        if not chain:
            return [self.service_name()]
        rest = await self.bus.execute_command(f"{chain[0]}.call", chain[1:])
        return [self.service_name(), *rest]


def test_an_awaiting_service_with_a_free_slot_is_no_deadlock(bus: Bus) -> None:
    bus.add_service(_Ping("a", asynchronous=True))
    bus.add_service(_Ping("b", asynchronous=False))
    # a awaits b, b waits (blocking) on a: a has slots left, so a runs it.
    assert bus.execute_command("a.call", ["b", "a"]).result(timeout=10) == ["a", "b", "a"]
    # a awaiting its own command is no deadlock either.
    assert bus.execute_command("a.call", ["a", "a"]).result(timeout=10) == ["a", "a", "a"]


def test_an_awaiting_service_with_no_slot_left_closes_the_cycle(bus: Bus) -> None:
    bus.add_service(_Ping("a", asynchronous=True, concurrency=1))
    bus.add_service(_Ping("b", asynchronous=False))

    with pytest.raises(DeadlockError) as info:
        bus.execute_command("a.call", ["b", "a"]).result(timeout=10)
    assert info.value.cycle == ["b", "a", "b"]
    with pytest.raises(DeadlockError) as own:
        bus.execute_command("a.call", ["a"]).result(timeout=10)
    assert own.value.cycle == ["a", "a"]
    wait_idle(bus)
    assert bus.inspect()["waits"] == []


def test_a_blocking_wait_in_an_async_handler_stops_its_whole_service(bus: Bus) -> None:
    class Blocker(Service):
        @command("blocker.block")
        async def block(self) -> Any:
            # .result() blocks the loop: nothing else runs on it, whatever the slots.
            return self.bus.execute_command("blocker.other").result(timeout=10)

        @command("blocker.other")
        async def other(self) -> str:
            return "other"

    bus.add_service(Blocker())
    with pytest.raises(DeadlockError) as info:
        bus.execute_command("blocker.block").result(timeout=10)
    assert info.value.cycle == ["blocker", "blocker"]


def test_a_blocking_wait_on_a_loop_counts_when_another_service_closes_the_cycle(
    bus: Bus,
) -> None:
    class Blocker(Service):
        @command("blocker.block")
        async def block(self) -> Any:
            return self.bus.execute_command("other.back").result(timeout=10)

        @command("blocker.free")
        async def free(self) -> str:
            return "free"

    class Other(Service):
        @command("other.back")
        def back(self) -> Any:
            return self.bus.execute_command("blocker.free").result(timeout=10)

    bus.add_service(Blocker())
    bus.add_service(Other())
    # other waits on blocker, whose thread is blocked on other: a cycle,
    # although every one of blocker's 1024 slots is free.
    with pytest.raises(DeadlockError) as info:
        bus.execute_command("blocker.block").result(timeout=10)
    assert info.value.cycle == ["other", "blocker", "other"]


# -- timers, hooks, late registration ---------------------------------------------------


def test_async_timers_run_on_the_loop_and_a_periodic_one_never_overlaps(
    bus: Bus, gate: Any
) -> None:
    opened = gate()
    runs: list[str] = []
    later_ran = threading.Event()
    state = {"running": 0, "most": 0, "started": 0}
    two = threading.Event()

    class Ticker(Service):
        def on_start(self) -> None:
            self.call_later(0.01, self.later, "x")
            self.handle = self.call_every(0.01, self.tick)

        async def later(self, value: str) -> None:
            await asyncio.sleep(0)
            runs.append(f"{value} on {threading.current_thread().name}")
            later_ran.set()

        async def tick(self) -> None:
            state["running"] += 1
            state["started"] += 1
            state["most"] = max(state["most"], state["running"])
            if state["started"] == 2:
                two.set()
            await opened.wait()
            state["running"] -= 1

    ticker = bus.add_service(Ticker())
    assert later_ran.wait(5)
    assert runs == ["x on bus:test/ticker"]
    # The first run waits at the gate over many intervals; no second run starts.
    assert _until(lambda: any(t["handler"].endswith("Ticker.tick") for t in _tasks(bus, "ticker")))
    assert _until(lambda: _tasks(bus, "ticker")[0]["running_for"] > 0.1)
    assert state["started"] == 1
    opened.open()
    assert two.wait(5)
    ticker.handle.cancel()
    assert state["most"] == 1


def test_async_on_start_and_on_stop_run_on_the_services_loop(make_bus: Callable[..., Bus]) -> None:
    b = make_bus()
    seen: list[str] = []

    class Hooked(Service):
        async def on_start(self) -> None:
            await asyncio.sleep(0)
            seen.append(f"start on {threading.current_thread().name}")
            self.loop = asyncio.get_running_loop()

        async def on_stop(self) -> None:
            await asyncio.sleep(0)
            seen.append(f"stop on {threading.current_thread().name}")

        @command("hooked.ping")
        def ping(self) -> bool:
            return asyncio.get_running_loop() is self.loop

    service = b.add_service(Hooked())
    assert seen == ["start on bus:test/hooked"]
    assert b.execute_command("hooked.ping").result(timeout=5) is True
    b.close()
    assert seen == ["start on bus:test/hooked", "stop on bus:test/hooked"]
    assert service.loop.is_closed()


def test_a_sync_service_that_registers_an_async_handler_later_moves_onto_a_loop(
    bus: Bus,
) -> None:
    order: list[str] = []

    class Late(Service):
        @command("late.add")
        def add(self) -> None:
            self.bus.register_command("late.async", self.later)

        @command("late.sync")
        def sync(self, i: int) -> int:
            order.append(f"sync {i}")
            return i

        async def later(self) -> str:
            await asyncio.sleep(0)
            order.append("async")
            return threading.current_thread().name

    bus.add_service(Late())
    assert _service(bus, "late")["async"] is False
    first = bus.execute_command("late.sync", 1)
    bus.execute_command("late.add").result(timeout=5)
    assert bus.execute_command("late.async").result(timeout=5) == "bus:test/late"
    assert bus.execute_command("late.sync", 2).result(timeout=5) == 2
    assert first.result(timeout=5) == 1
    assert order == ["sync 1", "async", "sync 2"]
    described = _service(bus, "late")
    assert described["async"] is True
    assert described["concurrency"] == 1024


def test_an_async_timer_from_another_thread_moves_a_sync_service_onto_a_loop(
    bus: Bus,
) -> None:
    ran = threading.Event()
    where: list[str] = []

    class Plain(Service):
        @command("plain.ping")
        def ping(self) -> str:
            return "pong"

    plain = bus.add_service(Plain())

    async def job() -> None:
        where.append(threading.current_thread().name)
        ran.set()

    plain.call_later(0.01, job)
    assert ran.wait(5)
    assert where == ["bus:test/plain"]
    assert bus.execute_command("plain.ping").result(timeout=5) == "pong"
    assert _service(bus, "plain")["async"] is True


def test_a_running_multi_thread_sync_service_refuses_async_work_with_a_clear_error(
    bus: Bus,
) -> None:
    class Wide(Service):
        concurrency = 3

        @command("wide.add")
        def add(self) -> None:
            async def late() -> None:
                pass

            self.bus.register_command("wide.late", late)

    wide = bus.add_service(Wide())
    with pytest.raises(BusError, match="runs 3 threads without an event loop"):
        bus.execute_command("wide.add").result(timeout=5)

    async def job() -> None:
        pass

    with pytest.raises(BusError, match=r"the async timer .*'wide', which runs 3 threads"):
        wide.call_later(1, job)


def test_a_multi_thread_service_with_async_handlers_starts_on_one_loop_thread(
    bus: Bus,
) -> None:
    class Wide(Service):
        concurrency = 3

        @command("wide.where")
        async def where(self) -> str:
            return threading.current_thread().name

    bus.add_service(Wide())
    assert bus.execute_command("wide.where").result(timeout=5) == "bus:test/wide-0"
    described = _service(bus, "wide")
    assert (described["concurrency"], len(described["threads"])) == (3, 1)


# -- the shared pool -------------------------------------------------------------


def test_async_handlers_on_the_pool_run_and_await(bus: Bus) -> None:
    heard = threading.Event()
    got: list[Any] = []

    async def ask(x: int) -> int:
        return int(await bus.execute_command("pool.double", x)) + 1

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def on_tick(x: int) -> None:
        got.append((x, current_event().name, threading.current_thread().name))  # type: ignore[union-attr]
        heard.set()

    bus.register_command("pool.ask", ask)
    bus.register_command("pool.double", double)
    bus.register_listener("tick", on_tick)
    assert bus.execute_command("pool.ask", 20).result(timeout=5) == 41
    bus.fire_event("tick", 7)
    assert heard.wait(5)
    ((x, name, thread),) = got
    assert (x, name) == (7, "tick")
    assert thread.startswith("bus:test/pool-")


def test_an_async_on_start_awaiting_its_own_command_is_a_deadlock_not_a_hang(
    bus: Bus,
) -> None:
    class Early(Service):
        async def on_start(self) -> None:
            await self.bus.execute_command("early.echo", 1)

        @command("early.echo")
        async def echo(self, x: int) -> int:
            return x

    # The loop serves nothing until on_start returns: the wait could never end.
    with pytest.raises(DeadlockError) as info:
        bus.add_service(Early(), timeout=10)
    assert info.value.cycle == ["early", "early"]


def test_a_bus_with_no_async_handler_never_imports_asyncio() -> None:
    # Sync services pay nothing for async ones, not even the import.
    script = textwrap.dedent(
        """
        import sys
        from bus import Bus, Service, command, listener

        class Plain(Service):
            @command("plain.echo")
            def echo(self, x):
                return x

            @listener("plain.*")
            def heard(self, x):
                pass

        with Bus(name="plain") as bus:
            bus.add_service(Plain())
            bus.register_command("pooled", lambda: "pool")
            assert bus.execute_command("plain.echo", 1).result(timeout=5) == 1
            assert bus.execute_command("pooled").result(timeout=5) == "pool"
            bus.fire_event("plain.ping", 2)
            bus.wait_idle()
        print("asyncio" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False", done.stderr


def test_an_async_services_mailbox_is_still_bounded(
    make_bus: Callable[..., Bus], gate: Any
) -> None:
    b = make_bus(mailbox_size=2)
    opened = gate()

    class One(Service):
        concurrency = 1

        @command("one")
        async def one(self) -> str:
            await opened.wait()
            return "one"

    b.add_service(One())
    running = b.execute_command("one")
    assert _until(lambda: len(_tasks(b, "one")) == 1)
    # One runs; the next is taken and held for the slot; two more fill the mailbox.
    queued = [b.execute_command("one")]
    assert _until(lambda: _service(b, "one")["mailbox"] == 0)
    queued += [b.execute_command("one") for _ in range(2)]
    assert _service(b, "one")["mailbox"] == 2
    with pytest.raises(MailboxFullError):
        b.execute_command("one")
    opened.open()
    assert [f.result(timeout=5) for f in [running, *queued]] == ["one"] * 4


def test_an_async_handler_can_send_work_to_its_own_service(bus: Bus) -> None:
    heard = threading.Event()

    class Self(Service):
        @command("self.kick")
        async def kick(self) -> int:
            self.bus.fire_event("self.kicked", 1)
            return int(await self.bus.execute_command("self.double", 21))

        @command("self.double")
        def double(self, x: int) -> int:
            return 2 * x

        @listener("self.kicked")
        async def kicked(self, n: int) -> None:
            heard.set()

    bus.add_service(Self())
    assert bus.execute_command("self.kick").result(timeout=5) == 42
    assert heard.wait(5)


def test_a_running_async_handler_on_the_pool_can_be_cancelled(bus: Bus) -> None:
    started, ended = threading.Event(), threading.Event()
    saw: list[str] = []

    async def sleepy() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            saw.append(str(exc))
            raise
        finally:
            ended.set()

    bus.register_command("pool.sleepy", sleepy)
    future = bus.execute_command("pool.sleepy")
    assert started.wait(5)
    assert future.cancellable
    assert future.cancel()
    assert future.cancelled()
    assert ended.wait(5)
    assert saw == ["cancelled by its caller"]
    wait_idle(bus)
    (entry,) = bus.inspect()["commands"]
    assert (entry["cancelled"], entry["errors"]) == (1, 0)
