"""Lights: commands, validation through the future, and ``lights.changed``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus
from bus.testing import capture_events, wait_idle
from sample_services import Lights
from sample_services.lights import DEFAULT_ROOMS

Call = Callable[..., Any]

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def lights(bus: Bus) -> Bus:
    bus.add_service(Lights())
    return bus


def test_turn_on_defaults_to_full_brightness(lights: Bus, call: Call) -> None:
    assert call("lights.turn_on", "hall") == {"room": "hall", "on": True, "brightness": 100}
    assert call("lights.get", "hall") == {"room": "hall", "on": True, "brightness": 100}


def test_turn_on_at_a_brightness_then_off(lights: Bus, call: Call) -> None:
    assert call("lights.turn_on", "kitchen", brightness=30)["brightness"] == 30
    assert call("lights.turn_off", "kitchen") == {"room": "kitchen", "on": False, "brightness": 0}
    assert call("lights.get", "kitchen")["on"] is False


def test_list_gives_every_room_sorted(lights: Bus, call: Call) -> None:
    call("lights.turn_on", "bedroom", 10)

    states = call("lights.list")

    assert [s["room"] for s in states] == sorted(DEFAULT_ROOMS)
    assert [s for s in states if s["on"]] == [{"room": "bedroom", "on": True, "brightness": 10}]


def test_rooms_are_configurable(bus: Bus, call: Call) -> None:
    bus.add_service(Lights(rooms=["attic"]))

    assert call("lights.list") == [{"room": "attic", "on": False, "brightness": 0}]


def test_lights_need_a_room() -> None:
    with pytest.raises(ValueError, match="at least one room"):
        Lights(rooms=[])


def test_changes_fire_lights_changed(lights: Bus, call: Call) -> None:
    with capture_events(lights, "lights.*") as events:
        call("lights.turn_on", "hall", 50)
        call("lights.turn_off", "hall")

    assert [(e.name, e.kwargs) for e in events] == [
        ("lights.changed", {"room": "hall", "on": True, "brightness": 50}),
        ("lights.changed", {"room": "hall", "on": False, "brightness": 0}),
    ]


def test_a_command_that_changes_nothing_fires_nothing(lights: Bus, call: Call) -> None:
    call("lights.turn_on", "hall", 50)
    with capture_events(lights, "lights.*") as events:
        call("lights.turn_on", "hall", 50)
        call("lights.turn_off", "bedroom")  # already off
        call("lights.get", "hall")
        call("lights.list")
        wait_idle(lights)

    assert events.names() == []


@pytest.mark.parametrize("command", ["lights.turn_on", "lights.turn_off", "lights.get"])
def test_unknown_room_fails_through_the_future(lights: Bus, command: str) -> None:
    future = lights.execute_command(command, "garage")

    with pytest.raises(ValueError, match=r"unknown room 'garage'; known rooms: bathroom, bedroom"):
        future.result(timeout=10)


@pytest.mark.parametrize("brightness", [-1, 101, 1000])
def test_brightness_out_of_range_fails(lights: Bus, call: Call, brightness: int) -> None:
    with pytest.raises(ValueError, match=f"between 0 and 100, not {brightness}"):
        call("lights.turn_on", "hall", brightness)
    assert call("lights.get", "hall")["on"] is False


@pytest.mark.parametrize("brightness", ["50", 50.0, True])
def test_brightness_of_another_type_fails(lights: Bus, call: Call, brightness: object) -> None:
    with pytest.raises(TypeError, match="brightness must be an int"):
        call("lights.turn_on", "hall", brightness)


def test_room_of_another_type_fails(lights: Bus, call: Call) -> None:
    with pytest.raises(TypeError, match="room must be a str, not list"):
        call("lights.get", ["hall"])


def test_reads_are_declared_readonly_and_documented(lights: Bus) -> None:
    commands = {c["name"]: c for c in lights.inspect()["commands"]}

    readonly = {name for name, c in commands.items() if c["readonly"]}
    assert readonly == {"lights.get", "lights.list"}
    assert all(c["doc"] for c in commands.values())
