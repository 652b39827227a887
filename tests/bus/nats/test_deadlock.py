"""A wait cycle through two processes is a DeadlockError naming service@process."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bus import Bus, DeadlockError, Service, command
from tests.bus.nats.conftest import Host

pytestmark = pytest.mark.timeout(60)


class A(Service):
    """Calls ``b.call_a`` in the other process, which calls ``a.pong`` back."""

    name = "a"

    @command("a.ping")
    def ping(self, wait: bool) -> str:
        return str(self.bus.execute_command("b.call_a", wait).result(timeout=30))

    @command("a.pong")
    def pong(self) -> str:
        return "pong"


def _cycle(
    service: Service, nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> tuple[Bus, DeadlockError, str, str]:
    """``a.ping(wait=True)`` on ``service`` here, ``b`` in another process: the cycle.

    Returns the bus, the ``DeadlockError`` it failed with (within seconds) and
    the labels of this process and of the other.
    """
    other = host("b")
    bus = nats_bus()
    bus.add_service(service)
    assert bus.wait_for_command("b.call_a", 5)
    assert bus._nats is not None
    started = time.monotonic()
    with pytest.raises(DeadlockError) as caught:
        bus.execute_command("a.ping", True).result(timeout=30)
    assert time.monotonic() - started < 5
    return bus, caught.value, bus._nats.label, other.label


def test_a_cycle_through_two_processes_is_found_within_seconds(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    bus, caught, me, other = _cycle(A(), nats_bus, host)
    # b waits on a, which waits on b: b's wait closed the cycle.
    assert caught.cycle == [f"b@{other}", f"a@{me}", f"b@{other}"]
    assert f"b@{other} -> a@{me} -> b@{other}" in str(caught)
    assert bus.inspect()["nats"]["deadlocks_found"] == 1


def test_a_call_back_that_no_one_waits_on_is_not_a_deadlock(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    host("b")
    bus = nats_bus()
    bus.add_service(A())
    assert bus.wait_for_command("b.call_a", 5)
    # b sends a.pong to a (which waits on b) without waiting for it: a
    # finishes, then runs a.pong. Nothing is failed.
    assert bus.execute_command("a.ping", False).result(timeout=10) == "sent"
    assert bus.wait_idle(10)
    pong = next(c for c in bus.inspect()["commands"] if c["name"] == "a.pong")
    assert pong["calls"] == 1
    assert pong["errors"] == 0
    assert bus.inspect()["nats"]["deadlocks_found"] == 0


class AsyncA(Service):
    """``A`` as an async service with one slot: its await holds the slot."""

    name = "a"
    concurrency = 1

    @command("a.ping")
    async def ping(self, wait: bool) -> str:
        return str(await self.bus.execute_command("b.call_a", wait))

    @command("a.pong")
    async def pong(self) -> str:
        return "pong"


def test_a_cycle_through_an_awaiting_async_service_is_found_within_seconds(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    # An await holds one of a's slots, not its thread: a is stuck when every
    # slot awaits, and the awaiting task's call carries its chain. Before,
    # only threads blocked in result() were looked at, and the call hung
    # until its deadline.
    bus, caught, me, other = _cycle(AsyncA(), nats_bus, host)
    assert caught.cycle == [f"b@{other}", f"a@{me}", f"b@{other}"]
    assert bus.inspect()["nats"]["deadlocks_found"] == 1


def test_an_async_service_with_a_free_slot_is_not_a_cycle(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    host("b")
    bus = nats_bus()
    service = AsyncA()
    service.concurrency = 2  # a.pong gets the second slot while a.ping awaits
    bus.add_service(service)
    assert bus.wait_for_command("b.call_a", 5)
    assert bus.execute_command("a.ping", True).result(timeout=20) == "pong"
    assert bus.inspect()["nats"]["deadlocks_found"] == 0
