"""bus.testing: wait_idle, capture_events, stub_command."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from bus import Bus, BusError, Service, command, listener
from bus.testing import capture_events, stub_command, wait_idle

pytestmark = pytest.mark.timeout(30)


class Motion(Service):
    """Turns the light on when motion is seen, and tells the notifier."""

    def __init__(self) -> None:
        super().__init__()
        self.handled: list[str] = []

    @listener("motion.detected")
    def on_motion(self, room: str) -> None:
        self.handled.append(room)
        self.bus.execute_command("notify.send", message=f"light on in {room}")
        self.bus.fire_event("lights.changed", room, on=True)

    @command("notify.send")
    def send(self, message: str) -> str:
        raise AssertionError("the real notifier must not run under a stub")


def test_wait_idle_waits_for_chains_of_work(bus: Bus) -> None:
    seen: list[int] = []

    class Relay(Service):
        @listener("relay.*")
        def relay(self, n: int) -> None:
            seen.append(n)
            if n < 50:
                self.bus.fire_event("relay.next", n + 1)

    bus.add_service(Relay())
    bus.fire_event("relay.start", 0)
    wait_idle(bus)

    assert seen == list(range(51))


def test_wait_idle_times_out_naming_the_busy_service(bus: Bus) -> None:
    release = threading.Event()
    started = threading.Event()

    class Slow(Service):
        @command("slow.run")
        def run(self) -> None:
            started.set()
            release.wait(10)

    bus.add_service(Slow())
    bus.execute_command("slow.run")
    assert started.wait(5)
    with pytest.raises(TimeoutError, match=r"still busy.*'slow'"):
        wait_idle(bus, timeout=0.05)
    release.set()
    wait_idle(bus)


def test_wait_idle_from_a_handler_is_refused(bus: Bus) -> None:
    bus.register_command("selfwait", lambda: bus.wait_idle(1))
    with pytest.raises(BusError, match="wait forever"):
        bus.execute_command("selfwait").result(timeout=5)


def test_capture_events_records_in_firing_order_with_arguments(bus: Bus) -> None:
    motion = Motion()
    bus.add_service(motion)

    with (
        stub_command(bus, "notify.send", return_value="sent") as notify,
        capture_events(bus, "lights.*") as events,
    ):
        bus.fire_event("motion.detected", "hall")
        bus.fire_event("unrelated.event")
        wait_idle(bus)
        first = events.wait_for("lights.changed", timeout=5)

    assert events.names() == ["lights.changed"]
    assert (first[0].args, first[0].kwargs) == (("hall",), {"on": True})
    assert notify.calls == [((), {"message": "light on in hall"})]
    assert motion.handled == ["hall"]
    # The capture registers no listener: statistics show only the service's own.
    assert [entry["pattern"] for entry in bus.inspect()["listeners"]] == ["motion.detected"]


def test_capture_stops_at_the_end_of_the_block(bus: Bus) -> None:
    with capture_events(bus) as events:
        bus.fire_event("one")
    bus.fire_event("two")
    assert [e.name for e in events] == ["one"]
    assert len(events) == 1
    assert events.named("one")[0].args == ()


def test_capture_wait_for_times_out(bus: Bus) -> None:
    with capture_events(bus) as events, pytest.raises(TimeoutError, match="0 of 1 'never'"):
        events.wait_for("never", timeout=0.05)


def test_stub_command_replaces_and_restores_the_original(bus: Bus) -> None:
    class Real(Service):
        @command("real.value")
        def value(self, x: int) -> str:
            return f"real {x}"

    bus.add_service(Real())

    with stub_command(bus, "real.value", lambda x: f"stub {x}") as stub:
        assert bus.execute_command("real.value", 1).result(timeout=5) == "stub 1"
        assert [c["owner"] for c in bus.inspect()["commands"]] == ["pool"]
    assert stub.calls == [((1,), {})]
    assert bus.execute_command("real.value", 2).result(timeout=5) == "real 2"
    assert [c["owner"] for c in bus.inspect()["commands"]] == ["real"]


def test_stub_command_raises_and_need_not_exist(bus: Bus) -> None:
    with stub_command(bus, "missing.cmd", raises=KeyError("nope")) as stub:
        with pytest.raises(KeyError, match="nope"):
            bus.execute_command("missing.cmd", 1, two=2).result(timeout=5)
        assert stub.calls == [((1,), {"two": 2})]
    assert "missing.cmd" not in [c["name"] for c in bus.inspect()["commands"]]


def test_stub_default_returns_none(make_bus: Callable[..., Bus]) -> None:
    b = make_bus(tracing=False)
    with stub_command(b, "x") as stub:
        assert b.execute_command("x", 1).result(timeout=5) is None
    assert stub.name == "x"


def test_an_async_stub_is_awaited_and_its_caller_gets_the_value(bus: Bus) -> None:
    # A stub whose fn is an async def used to hand back the coroutine unawaited.
    class Real(Service):
        @command("real.fetch")
        async def fetch(self, key: str) -> str:
            return f"real {key}"

    bus.add_service(Real())

    async def fake(key: str) -> str:
        await asyncio.sleep(0)
        return f"stub {key}"

    with stub_command(bus, "real.fetch", fake) as stub:
        assert bus.execute_command("real.fetch", "a").result(timeout=5) == "stub a"
        with pytest.raises(TypeError):  # it still wears the real signature
            bus.execute_command("real.fetch", "a", "b")
    with stub_command(bus, "other.fetch", fake) as loose:
        assert bus.execute_command("other.fetch", key="b").result(timeout=5) == "stub b"
    assert stub.calls == [(("a",), {})]
    assert loose.calls == [((), {"key": "b"})]
    assert bus.execute_command("real.fetch", "c").result(timeout=5) == "real c"
