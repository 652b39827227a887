"""A wait that would close a cycle of services raises DeadlockError naming it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bus import Bus, DeadlockError, Service, command
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


class Hop(Service):
    """``NAME.call(chain)``: call the next service in ``chain`` and wait for it."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)

    def on_start(self) -> None:
        self.bus.register_command(f"{self.service_name()}.call", self.call)

    def call(self, chain: list[str]) -> Any:
        if not chain:
            return self.service_name()
        return self.bus.execute_command(f"{chain[0]}.call", chain[1:]).result(timeout=10)


def _chain(bus: Bus, *names: str) -> None:
    for name in names:
        bus.add_service(Hop(name))


def test_two_service_cycle_raises_naming_the_cycle(bus: Bus) -> None:
    _chain(bus, "a", "b")

    with pytest.raises(DeadlockError) as info:
        bus.execute_command("a.call", ["b", "a"]).result(timeout=10)

    assert info.value.cycle == ["b", "a", "b"]
    assert "b -> a -> b" in str(info.value)
    wait_idle(bus)
    assert bus.inspect()["waits"] == []


def test_three_service_cycle_raises_naming_the_cycle(bus: Bus) -> None:
    _chain(bus, "a", "b", "c")

    with pytest.raises(DeadlockError) as info:
        bus.execute_command("a.call", ["b", "c", "a"]).result(timeout=10)

    assert info.value.cycle == ["c", "a", "b", "c"]
    assert str(info.value) == "waiting here would deadlock: c -> a -> b -> c"


def test_own_command_from_own_thread_is_the_cycle_of_one(bus: Bus) -> None:
    _chain(bus, "solo")

    with pytest.raises(DeadlockError) as info:
        bus.execute_command("solo.call", ["solo"]).result(timeout=10)

    assert info.value.cycle == ["solo", "solo"]
    assert "solo -> solo" in str(info.value)


def test_deadlock_is_raised_at_once_by_exception_too(bus: Bus) -> None:
    class Self(Service):
        @command("self.ask")
        def ask(self) -> str:
            future = self.bus.execute_command("self.other")
            error = None
            try:
                future.exception(timeout=10)
            except DeadlockError as exc:
                error = exc
            return " -> ".join(error.cycle) if error else "no error"

        @command("self.other")
        def other(self) -> int:
            return 1

    bus.add_service(Self())
    assert bus.execute_command("self.ask").result(timeout=10) == "self -> self"


def test_non_cyclic_chain_is_not_a_deadlock(bus: Bus) -> None:
    _chain(bus, "a", "b", "c", "d")

    assert bus.execute_command("a.call", ["b", "c", "d"]).result(timeout=10) == "d"
    # The same services in another non-cyclic order.
    assert bus.execute_command("d.call", ["c", "b", "a"]).result(timeout=10) == "a"


def test_waiting_on_a_service_that_waits_elsewhere_is_fine(bus: Bus) -> None:
    """a -> b while b -> c: a chain, even when every wait overlaps."""
    release = threading.Event()
    started = threading.Event()

    class C(Service):
        name = "c"

        @command("c.block")
        def block(self) -> str:
            started.set()
            release.wait(10)
            return "c"

    class B(Service):
        name = "b"

        @command("b.via_c")
        def via_c(self) -> str:
            return str(self.bus.execute_command("c.block").result(timeout=10))

    class A(Service):
        name = "a"

        @command("a.via_b")
        def via_b(self) -> str:
            return str(self.bus.execute_command("b.via_c").result(timeout=10))

    for service in (C(), B(), A()):
        bus.add_service(service)
    future = bus.execute_command("a.via_b")
    assert started.wait(5)
    waits = {(w["waiter"], w["target"]) for w in bus.inspect()["waits"]}
    states = {s["name"]: s["threads"][0] for s in bus.inspect()["services"]}
    release.set()

    assert future.result(timeout=10) == "c"
    assert waits == {("a", "b"), ("b", "c")}
    assert states["a"]["state"] == "waiting"
    assert states["a"]["waiting_on"] == "b.via_c"
    assert states["c"]["state"] == "busy"


def test_concurrent_service_is_in_a_cycle_only_when_all_threads_wait(bus: Bus) -> None:
    class Wide(Service):
        name = "wide"
        concurrency = 2

        @command("wide.ask_self")
        def ask_self(self) -> int:
            # One thread waits; the other is free to run the inner command.
            return int(self.bus.execute_command("wide.inner").result(timeout=10))

        @command("wide.inner")
        def inner(self) -> int:
            return 5

    bus.add_service(Wide())
    assert bus.execute_command("wide.ask_self").result(timeout=10) == 5


def test_pool_handlers_never_take_part(bus: Bus) -> None:
    bus.register_command("pool.inner", lambda: 3)
    bus.register_command(
        "pool.outer", lambda: bus.execute_command("pool.inner").result(timeout=10) + 1
    )
    assert bus.execute_command("pool.outer").result(timeout=10) == 4


def test_deadlock_error_leaves_the_bus_usable(bus: Bus) -> None:
    _chain(bus, "a", "b")
    with pytest.raises(DeadlockError):
        bus.execute_command("a.call", ["b", "a"]).result(timeout=10)
    wait_idle(bus)
    assert bus.execute_command("a.call", ["b"]).result(timeout=10) == "b"
    assert bus.inspect()["waits"] == []


def test_concurrent_service_deadlocks_when_all_its_threads_wait_on_itself(bus: Bus) -> None:
    both_running = threading.Barrier(2, timeout=5)

    class Wide(Service):
        name = "wide"
        concurrency = 2

        @command("wide.outer")
        def outer(self) -> str:
            both_running.wait()  # both threads are now busy
            try:
                return str(self.bus.execute_command("wide.inner").result(timeout=10))
            except DeadlockError as exc:
                return " -> ".join(exc.cycle)

        @command("wide.inner")
        def inner(self) -> str:
            return "inner"

    bus.add_service(Wide())
    futures = [bus.execute_command("wide.outer") for _ in range(2)]
    results = sorted(f.result(timeout=10) for f in futures)

    # The second thread to wait closes the cycle; once it gives up, its thread
    # is free to run the first one's inner command.
    assert results == ["inner", "wide -> wide"]


def test_a_pool_with_every_thread_waiting_on_itself_is_a_cycle(
    make_bus: Any,
) -> None:
    b: Bus = make_bus(max_pool_threads=1)
    b.register_command("pool.inner", lambda: 1)

    def outer() -> str:
        try:
            return str(b.execute_command("pool.inner").result(timeout=10))
        except DeadlockError as exc:
            return " -> ".join(exc.cycle)

    b.register_command("pool.outer", outer)
    # One pool thread, busy waiting: the inner command could never run.
    assert b.execute_command("pool.outer").result(timeout=10) == "pool -> pool"


def test_a_pool_below_its_cap_grows_instead(make_bus: Any) -> None:
    b: Bus = make_bus(max_pool_threads=3)
    both = threading.Barrier(2, timeout=5)
    b.register_command("pool.inner", lambda: "inner")

    def outer() -> str:
        both.wait()  # two pool threads busy at once; a third can still start
        return str(b.execute_command("pool.inner").result(timeout=10))

    b.register_command("pool.outer", outer)
    futures = [b.execute_command("pool.outer") for _ in range(2)]
    assert [f.result(timeout=10) for f in futures] == ["inner", "inner"]


def test_the_command_a_deadlocked_wait_gave_up_on_is_a_late_reply(bus: Bus) -> None:
    class Self(Service):
        name = "selfish"

        @command("selfish.ask")
        def ask(self) -> str:
            with pytest.raises(DeadlockError):
                self.bus.execute_command("selfish.other").result(timeout=10)
            return "gave up"

        @command("selfish.other")
        def other(self) -> int:
            return 1

    bus.add_service(Self())
    assert bus.execute_command("selfish.ask").result(timeout=10) == "gave up"
    wait_idle(bus)
    other = next(c for c in bus.inspect()["commands"] if c["name"] == "selfish.other")
    assert (other["calls"], other["late_replies"]) == (1, 1)
