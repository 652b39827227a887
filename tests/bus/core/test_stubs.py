"""Live stubs: a command replaced in a running bus, on its owner's thread, for a while."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bus import (
    Bus,
    CommandNotFoundError,
    DeadlockError,
    InvalidArgumentError,
    Service,
    command,
)
from bus._core._stubs import NoSuchStubError, exception_from
from bus.schema import convert_call

pytestmark = pytest.mark.timeout(30)


class Thermostat(Service):
    name = "thermostat"

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    @command("thermostat.read_sensor")
    def read_sensor(self, zone: str) -> float:
        """Read a zone's sensor."""
        self.reads.append(zone)
        return 21.5

    @command("thermostat.report", readonly=True)
    def report(self, zone: str) -> float:
        # Waits on its own service's command: the cycle of one, stubbed or not.
        return float(self.bus.execute_command("thermostat.read_sensor", zone).result(5))


@pytest.fixture
def thermostat(bus: Bus) -> Thermostat:
    return bus.add_service(Thermostat())  # type: ignore[return-value]


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a change made on another thread (the timer thread): look until it shows."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        pause.wait(0.005)


def test_a_stub_returns_its_value_and_the_real_handler_is_not_called(
    bus: Bus, thermostat: Thermostat
) -> None:
    stub = bus.stubs.add("thermostat.read_sensor", returns={"celsius": 30})
    first = bus.execute_command("thermostat.read_sensor", "office").result(5)
    first["celsius"] = 0  # each call gets its own copy
    assert bus.execute_command("thermostat.read_sensor", "office").result(5) == {"celsius": 30}
    assert thermostat.reads == []
    assert stub.calls == 2
    [entry] = [c for c in bus.inspect()["commands"] if c["name"] == "thermostat.read_sensor"]
    assert entry["stub"]["returns"] == '{"celsius":30}'
    assert entry["stub"]["calls"] == 2
    assert entry["handler"] == "stub of Thermostat.read_sensor"
    assert entry["doc"] == "Read a zone's sensor."
    assert entry["calls"] == 2  # the command's statistics go on
    assert bus.inspect()["totals"]["stubs"] == 1


def test_a_stub_raises_a_builtin_type_or_a_runtime_error_naming_the_type(
    bus: Bus, thermostat: Thermostat
) -> None:
    bus.stubs.add("thermostat.read_sensor", raises="TimeoutError: the sensor did not answer")
    with pytest.raises(TimeoutError, match=r"^the sensor did not answer$"):
        bus.execute_command("thermostat.read_sensor", "office").result(5)
    bus.stubs.add("thermostat.read_sensor", raises="SensorError: zone offline")
    with pytest.raises(RuntimeError, match=r"SensorError: zone offline .*not a builtin"):
        bus.execute_command("thermostat.read_sensor", "office").result(5)
    assert thermostat.reads == []


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("ValueError: no room", ValueError, "no room"),
        ("KeyError", KeyError, ""),
        ("just words here", RuntimeError, "just words here"),
        ("a b: c", RuntimeError, "a b: c"),
        ("SystemExit: bye", RuntimeError, "SystemExit: bye (the stub raises RuntimeError"),
        ("UnicodeDecodeError: x", RuntimeError, "UnicodeDecodeError: x (the stub"),
    ],
)
def test_exception_from_text(text: str, kind: type, message: str) -> None:
    error = exception_from(text)()
    assert type(error) is kind
    assert str(error).strip("'").startswith(message)


def test_a_stub_runs_on_the_owner_s_thread_so_the_deadlock_rules_hold(
    bus: Bus, thermostat: Thermostat
) -> None:
    bus.stubs.add("thermostat.read_sensor", returns=1.0)
    with pytest.raises(DeadlockError, match="thermostat -> thermostat"):
        bus.execute_command("thermostat.report", "office").result(5)


def test_a_stub_keeps_the_real_signature_and_contract(bus: Bus, thermostat: Thermostat) -> None:
    bus.stubs.add("thermostat.read_sensor", returns=1.0)
    with pytest.raises(TypeError, match=r"thermostat.read_sensor\(zone: str\) -> float"):
        bus.execute_command("thermostat.read_sensor")
    with pytest.raises(InvalidArgumentError, match="zone"):
        convert_call(bus, "thermostat.read_sensor", [42], {})


def test_times_puts_the_real_handler_back_after_that_many_calls(
    bus: Bus, thermostat: Thermostat
) -> None:
    bus.stubs.add("thermostat.read_sensor", returns=0.0, times=2)
    results = [bus.execute_command("thermostat.read_sensor", "a").result(5) for _ in range(3)]
    assert results == [0.0, 0.0, 21.5]
    assert thermostat.reads == ["a"]
    assert bus.stubs.stubs() == []
    assert "stub" not in bus.router.command("thermostat.read_sensor").describe()


def test_a_stub_ends_after_its_time(bus: Bus, thermostat: Thermostat) -> None:
    bus.stubs.add("thermostat.read_sensor", returns=0.0, seconds=0.2)
    _until(lambda: not bus.stubs.stubs())
    assert bus.execute_command("thermostat.read_sensor", "a").result(5) == 21.5


def test_unstub_puts_the_real_handler_back(bus: Bus, thermostat: Thermostat) -> None:
    bus.stubs.add("thermostat.read_sensor", returns=0.0)
    removed = bus.stubs.remove("thermostat.read_sensor")
    assert removed.name == "thermostat.read_sensor"
    assert bus.execute_command("thermostat.read_sensor", "a").result(5) == 21.5
    with pytest.raises(NoSuchStubError, match="is not stubbed"):
        bus.stubs.remove("thermostat.read_sensor")


def test_stubbing_what_is_not_there_is_refused_clearly(bus: Bus, thermostat: Thermostat) -> None:
    with pytest.raises(CommandNotFoundError, match=r"thermostat\.read_sensor"):
        bus.stubs.add("thermostat.read_senso", returns=1)
    with pytest.raises(ValueError, match="not both"):
        bus.stubs.add("thermostat.read_sensor", returns=1, raises="ValueError")
    with pytest.raises(ValueError, match="times"):
        bus.stubs.add("thermostat.read_sensor", returns=1, times=0)
    with pytest.raises(ValueError, match="seconds"):
        bus.stubs.add("thermostat.read_sensor", returns=1, seconds=float("inf"))


def test_a_stub_leaves_with_the_real_registration(bus: Bus) -> None:
    registration = bus.register_command("temp.read", lambda: 1)
    bus.stubs.add("temp.read", returns=2)
    assert bus.execute_command("temp.read").result(5) == 2
    registration.dispose()
    with pytest.raises(CommandNotFoundError):
        bus.execute_command("temp.read")
    assert bus.stubs.stubs() == []
    with pytest.raises(NoSuchStubError):
        bus.stubs.remove("temp.read")


def test_close_puts_the_real_handlers_back(make_bus: Callable[..., Bus]) -> None:
    b = make_bus()
    b.add_service(Thermostat())
    original = b.router.command("thermostat.read_sensor")
    b.stubs.add("thermostat.read_sensor", returns=0.0)
    b.close()
    assert b.router.local_command("thermostat.read_sensor") in (original, None)
    assert b.stubs.stubs() == []


def test_stubbed_spans_carry_the_mark_on_client_and_server(
    traced_bus: Bus, finished_spans: Callable[[Bus], list[Any]]
) -> None:
    traced_bus.add_service(Thermostat())
    traced_bus.stubs.add("thermostat.read_sensor", returns=0.0)
    traced_bus.execute_command("thermostat.read_sensor", "a").result(5)
    traced_bus.stubs.remove("thermostat.read_sensor")
    traced_bus.execute_command("thermostat.read_sensor", "b").result(5)
    spans = [s for s in finished_spans(traced_bus) if s.name == "thermostat.read_sensor"]
    marked = {
        (s.attributes["bus.args"], s.kind.name): s.attributes.get("bus.stubbed") for s in spans
    }
    assert marked == {
        ('["a"]', "CLIENT"): True,
        ('["a"]', "SERVER"): True,
        ('["b"]', "CLIENT"): None,
        ('["b"]', "SERVER"): None,
    }
    [server] = [s for s in spans if s.kind.name == "SERVER" and s.attributes["bus.args"] == '["a"]']
    assert server.attributes["thread.name"] == "bus:traced/thermostat"


class AsyncThermostat(Service):
    name = "async_thermostat"

    @command("async_thermostat.read_sensor")
    async def read_sensor(self, zone: str) -> float:
        return 19.5


def test_an_async_command_s_stub_answers_and_gives_way_to_the_awaited_real_one(
    bus: Bus,
) -> None:
    bus.add_service(AsyncThermostat())
    name = "async_thermostat.read_sensor"
    bus.stubs.add(name, returns=0.0)
    assert bus.router.command(name).is_async  # the stand-in runs on the service's loop
    assert bus.execute_command(name, "a").result(5) == 0.0
    # Queued for the stand-in (held), let go once the stub has ended: the
    # real handler is awaited, not called for a coroutine never awaited.
    bus.holds.add(name, kind="call")
    future = bus.execute_command(name, "b")
    _until(lambda: bool(bus.holds.held()))
    bus.stubs.remove(name)
    bus.holds.release_all()
    assert future.result(5) == 19.5
