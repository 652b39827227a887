"""Holds: work caught where it is posted, let go (edited or not) or dropped, never lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest

from bus import (
    Bus,
    BusClosedError,
    DroppedByConsoleError,
    InvalidArgumentError,
    Service,
    command,
    listener,
)
from bus._core._holds import NoSuchHoldError
from bus._core._runtime import Runtime
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


class Lights(Service):
    name = "lights"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.heard: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.threads: list[str] = []

    @command("lights.turn_on")
    def turn_on(self, room: str, brightness: int = 100) -> dict[str, Any]:
        self.calls.append((room, brightness))
        self.threads.append(threading.current_thread().name)
        return {"room": room, "brightness": brightness}

    @command("lights.get", readonly=True)
    def get(self, room: str) -> str:
        return room

    @listener("lights.changed")
    def on_changed(self, room: str, on: bool = True) -> None:
        self.heard.append(((room,), {"on": on}))


class Thermostat(Service):
    name = "thermostat"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[str] = []

    @listener("lights.changed")
    def on_changed(self, room: str, on: bool = True) -> None:
        self.heard.append(room)


@pytest.fixture
def lights(bus: Bus) -> Lights:
    return bus.add_service(Lights())  # type: ignore[return-value]


def _attrs(span: Any) -> dict[str, Any]:
    return {k: v for k, v in span.attributes.items() if k.startswith("bus.")}


# -- calls -------------------------------------------------------------------------------


def test_a_held_call_waits_until_released_and_then_runs_as_sent(bus: Bus, lights: Lights) -> None:
    hold = bus.holds.add("lights.turn_on")
    future = bus.execute_command("lights.turn_on", "hall", brightness=80)
    [item] = bus.holds.held()
    assert (item.id, item.hold is hold, item.kind, item.name) == (1, True, "call", "lights.turn_on")
    assert (item.args, item.kwargs, item.runtime.name) == (("hall",), {"brightness": 80}, "lights")
    assert not future.done()
    assert lights.calls == []
    # Other work for the service goes on meanwhile.
    assert bus.execute_command("lights.get", "den").result(5) == "den"
    bus.holds.release(item.id)
    assert future.result(5) == {"room": "hall", "brightness": 80}
    assert lights.threads == ["bus:test/lights"]
    assert bus.holds.held() == []
    assert bus.holds.holds()[0]["caught"] == 1


def test_release_with_edits_converts_like_a_console_call(bus: Bus, lights: Lights) -> None:
    bus.holds.add("lights.*", kind="call")
    by_position = bus.execute_command("lights.turn_on", "hall", 80)
    by_keyword = bus.execute_command("lights.turn_on", "den", brightness=80)
    replaced = bus.execute_command("lights.turn_on", "attic")
    first, second, third = bus.holds.held()
    # ``set`` changes a parameter where it was given: in its place, or as a keyword.
    bus.holds.release(first.id, set={"brightness": "40"})  # JSON text converts to int
    bus.holds.release(second.id, set={"brightness": 30})
    bus.holds.release(third.id, args=["cellar"], kwargs={"brightness": 5})
    assert by_position.result(5) == {"room": "hall", "brightness": 40}
    assert by_keyword.result(5) == {"room": "den", "brightness": 30}
    assert replaced.result(5) == {"room": "cellar", "brightness": 5}


def test_an_edit_that_does_not_convert_or_bind_is_refused_and_the_item_stays_held(
    bus: Bus, lights: Lights
) -> None:
    bus.holds.add("lights.turn_on")
    future = bus.execute_command("lights.turn_on", "hall")
    [item] = bus.holds.held()
    with pytest.raises(InvalidArgumentError, match="brightness"):
        bus.holds.release(item.id, set={"brightness": "bright"})
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        bus.holds.release(item.id, set={"colour": "red"})
    assert [i.id for i in bus.holds.held()] == [item.id]
    assert not future.done()
    bus.holds.release(item.id)
    assert future.result(5) == {"room": "hall", "brightness": 100}


def test_a_dropped_call_fails_with_dropped_by_console_and_never_runs(
    bus: Bus, lights: Lights
) -> None:
    bus.holds.add("lights.turn_on")
    future = bus.execute_command("lights.turn_on", "hall")
    [item] = bus.holds.held()
    bus.holds.drop(item.id)
    with pytest.raises(DroppedByConsoleError, match="dropped by a console") as info:
        future.result(5)
    assert (info.value.command, info.value.hold) == ("lights.turn_on", 1)
    assert lights.calls == []
    [entry] = [c for c in bus.inspect()["commands"] if c["name"] == "lights.turn_on"]
    assert (entry["dropped"], entry["in_flight"], entry["calls"]) == (1, 0, 0)


def test_a_cancelled_held_call_never_runs_once_released(bus: Bus, lights: Lights) -> None:
    bus.holds.add("lights.turn_on")
    future = bus.execute_command("lights.turn_on", "hall")
    assert future.cancel()
    [item] = bus.holds.held()
    assert item.describe()["cancelled"] is True
    bus.holds.release(item.id)
    wait_idle(bus)
    assert lights.calls == []
    with pytest.raises(CancelledError):
        future.result(0)


def test_kind_and_service_narrow_what_a_hold_catches(bus: Bus, lights: Lights) -> None:
    thermostat = bus.add_service(Thermostat())
    bus.holds.add("lights.*", kind="event", service="thermostat")
    assert bus.execute_command("lights.turn_on", "hall").result(5)["room"] == "hall"
    bus.fire_event("lights.changed", "hall")
    wait_idle(bus)
    assert lights.heard == [(("hall",), {"on": True})]
    [item] = bus.holds.held()
    assert (item.kind, item.name, item.runtime.name) == ("event", "lights.changed", "thermostat")
    assert thermostat.heard == []  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="no service named 'nobody'"):
        bus.holds.add("lights.*", service="nobody")
    with pytest.raises(ValueError, match="kind must be"):
        bus.holds.add("lights.*", kind="calls")  # type: ignore[arg-type]


# -- events ------------------------------------------------------------------------------


def test_a_held_delivery_never_makes_the_firer_wait_and_runs_when_released(
    bus: Bus, lights: Lights
) -> None:
    bus.holds.add("lights.changed", kind="event")
    fired = threading.Event()

    def fire() -> None:
        bus.fire_event("lights.changed", "hall", on=False)
        fired.set()

    threading.Thread(target=fire).start()
    assert fired.wait(5)  # the firer went on while the delivery is held
    [item] = bus.holds.held()
    assert item.describe()["pattern"] == "lights.changed"
    assert lights.heard == []
    # An event with no declared payload type is delivered as given, as ``fire`` does.
    bus.holds.release(item.id, set={"on": "yes"})
    wait_idle(bus)
    assert lights.heard == [(("hall",), {"on": "yes"})]


def test_a_dropped_delivery_is_counted_as_dropped(bus: Bus, lights: Lights) -> None:
    bus.holds.add("lights.changed")
    bus.fire_event("lights.changed", "hall")
    [item] = bus.holds.held()
    bus.holds.drop(item.id)
    wait_idle(bus)
    assert lights.heard == []
    snapshot = bus.inspect()
    [listener_entry] = snapshot["listeners"]
    [service] = [s for s in snapshot["services"] if s["name"] == "lights"]
    assert (listener_entry["dropped"], service["dropped"]) == (1, 1)


def test_a_declared_event_is_converted_to_its_payload_type_on_release(bus: Bus) -> None:
    from dataclasses import dataclass

    @dataclass
    class Changed:
        room: str
        level: int

    got: list[Any] = []
    bus.declare_event("room.changed", Changed)
    bus.register_listener("room.changed", lambda room, level: got.append((room, level)))
    bus.holds.add("room.changed")
    bus.fire_event("room.changed", "hall", 1)
    [item] = bus.holds.held()
    with pytest.raises(InvalidArgumentError, match="level"):
        bus.holds.release(item.id, set={"level": "high"})
    bus.holds.release(item.id, set={"level": "7"})
    wait_idle(bus)
    assert got == [("hall", 7)]


# -- holds end, nothing is lost ----------------------------------------------------------


def test_unhold_by_pattern_or_id_lets_what_it_held_go_in_order(bus: Bus, lights: Lights) -> None:
    first = bus.holds.add("lights.turn_on")
    futures = [bus.execute_command("lights.turn_on", room) for room in ("a", "b", "c")]
    ended, released = bus.holds.remove("lights.turn_on")
    assert ended == [first]
    assert released == [1, 2, 3]
    assert [f.result(5)["room"] for f in futures] == ["a", "b", "c"]
    assert lights.calls == [("a", 100), ("b", 100), ("c", 100)]
    second = bus.holds.add("lights.turn_on", kind="call")
    held = bus.execute_command("lights.turn_on", "d")
    bus.holds.remove(second.id)
    assert held.result(5)["room"] == "d"
    with pytest.raises(NoSuchHoldError, match=r"no hold 'lights\.turn_on'"):
        bus.holds.remove("lights.turn_on")
    with pytest.raises(NoSuchHoldError, match="nothing held with id 99"):
        bus.holds.release(99)
    with pytest.raises(NoSuchHoldError):
        bus.holds.drop(99)


def test_a_hold_ends_after_its_time_and_releases_what_it_holds(bus: Bus, lights: Lights) -> None:
    bus.holds.add("lights.turn_on", seconds=0.2)
    future = bus.execute_command("lights.turn_on", "hall")
    assert future.result(10) == {"room": "hall", "brightness": 100}
    assert bus.holds.holds() == []
    assert bus.execute_command("lights.turn_on", "den").result(5)["room"] == "den"


def test_close_releases_everything_held_and_leaves_nothing_pending(
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus()
    lights = b.add_service(Lights())
    b.holds.add("lights.*")
    future = b.execute_command("lights.turn_on", "hall")
    b.fire_event("lights.changed", "den")
    assert len(b.holds.held()) == 2
    b.close()
    assert future.result(0) == {"room": "hall", "brightness": 100}
    assert lights.heard == [(("den",), {"on": True})]  # type: ignore[attr-defined]
    with pytest.raises(BusClosedError):
        b.holds.add("lights.*")


def test_close_fails_a_held_call_whose_service_has_stopped_meanwhile(bus: Bus) -> None:
    lights = bus.add_service(Lights())
    bus.holds.add("lights.turn_on")
    future = bus.execute_command("lights.turn_on", "hall")
    [item] = bus.holds.held()
    runtime = item.runtime
    runtime.stop()  # as close() stops it
    for thread in runtime.threads:
        thread.join(5)
    bus.holds.release(item.id)
    with pytest.raises(BusClosedError, match="has stopped"):
        future.result(5)
    assert lights.calls == []  # type: ignore[attr-defined]


def test_a_service_added_while_a_hold_is_set_is_held_too(bus: Bus) -> None:
    bus.holds.add("lights.turn_on")
    bus.add_service(Lights())
    future = bus.execute_command("lights.turn_on", "hall")
    assert len(bus.holds.held()) == 1
    bus.holds.release_all()
    assert future.result(5)["room"] == "hall"


def test_with_no_hold_set_posting_is_the_runtime_s_own(bus: Bus, lights: Lights) -> None:
    runtime = bus._runtimes["lights"]
    assert "post" not in vars(runtime)
    hold = bus.holds.add("lights.turn_on")
    assert "post" in vars(runtime)
    bus.holds.remove(hold.id)
    assert "post" not in vars(runtime)
    assert runtime.post.__func__ is Runtime.post  # type: ignore[attr-defined]


def test_drop_all_and_release_all(bus: Bus, lights: Lights) -> None:
    bus.holds.add("lights.turn_on")
    dropped = [bus.execute_command("lights.turn_on", "a") for _ in range(2)]
    assert bus.holds.drop_all() == [1, 2]
    for future in dropped:
        with pytest.raises(DroppedByConsoleError):
            future.result(5)
    kept = bus.execute_command("lights.turn_on", "b")
    assert bus.holds.release_all() == [3]
    assert kept.result(5)["room"] == "b"


# -- spans -------------------------------------------------------------------------------


def test_spans_say_how_long_work_was_held_and_what_was_edited(
    traced_bus: Bus, finished_spans: Callable[[Bus], list[Any]]
) -> None:
    traced_bus.add_service(Lights())
    traced_bus.holds.add("lights.*")
    edited = traced_bus.execute_command("lights.turn_on", "hall", brightness=80)
    as_sent = traced_bus.execute_command("lights.turn_on", "den")
    dropped = traced_bus.execute_command("lights.turn_on", "attic")
    traced_bus.fire_event("lights.changed", "cellar")
    first, second, third, delivery = traced_bus.holds.held()
    traced_bus.holds.release(first.id, set={"brightness": 40})
    traced_bus.holds.release(second.id)
    traced_bus.holds.drop(third.id)
    traced_bus.holds.release(delivery.id, args=["loft"])
    edited.result(5), as_sent.result(5)
    with pytest.raises(DroppedByConsoleError):
        dropped.result(5)
    wait_idle(traced_bus)
    spans = finished_spans(traced_bus)
    calls = {
        (s.attributes["bus.args"], s.kind.name): _attrs(s)
        for s in spans
        if s.name == "lights.turn_on"
    }
    for kind in ("CLIENT", "SERVER"):
        span = calls[('["hall"]', kind)]
        assert span["bus.edited"] is True
        assert span["bus.held_ms"] > 0
        assert span["bus.kwargs"] == '{"brightness":40}'
        assert span["bus.original_args"] == '["hall"]'
        assert span["bus.original_kwargs"] == '{"brightness":80}'
        assert calls[('["den"]', kind)]["bus.edited"] is False
        assert "bus.original_args" not in calls[('["den"]', kind)]
    [failed] = [s for s in spans if s.attributes.get("bus.args") == '["attic"]']
    assert failed.attributes["error.type"] == "DroppedByConsoleError"
    assert failed.attributes["bus.held_ms"] >= 0
    [consumer] = [s for s in spans if s.name == "process lights.changed"]
    assert consumer.attributes["bus.edited"] is True
    assert consumer.attributes["bus.args"] == '["loft"]'
    assert consumer.attributes["bus.original_args"] == '["cellar"]'


@pytest.mark.parametrize(
    "options",
    [{"tracing": False}, {"tracing": False, "validate": True}],
    ids=["untraced", "untraced+validate"],
)
def test_an_untraced_bus_holds_its_own_events_and_pays_nothing_once_no_hold_is_left(
    options: dict[str, Any],
) -> None:
    # An untraced fire_event puts a delivery straight into a local mailbox,
    # past the runtime's post where holds catch it: it was never held.
    with Bus(name="quiet", **options) as quiet:
        lights = Lights()
        quiet.add_service(lights)
        plain_fire = vars(quiet).get("fire_event")
        hold = quiet.holds.add("lights.changed", kind="event")
        quiet.fire_event("lights.changed", "hall")
        [item] = quiet.holds.held()
        assert (item.kind, item.name) == ("event", "lights.changed")
        assert lights.heard == []
        quiet.holds.remove(hold.id)  # what it held goes on
        wait_idle(quiet)
        assert lights.heard == [(("hall",), {"on": True})]
        # No hold left: fire_event is the verb it was, with no detour.
        assert vars(quiet).get("fire_event") == plain_fire
        quiet.fire_event("lights.changed", "den")
        wait_idle(quiet)
        assert lights.heard[-1] == (("den",), {"on": True})
        assert quiet.holds.held() == []
