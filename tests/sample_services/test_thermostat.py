"""Thermostat: targets, validation, and the sensor that fails now and then."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus
from bus.testing import capture_events
from sample_services import SensorError, Thermostat
from sample_services.thermostat import START_CELSIUS, Mode, ModeChange

Call = Callable[..., Any]

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def thermostat(bus: Bus) -> Bus:
    bus.add_service(Thermostat(failure_rate=0.0))
    return bus


def read_outcomes(bus: Bus, reads: int, zone: str = "office") -> list[bool]:
    """Read the sensor ``reads`` times; ``True`` for each read that succeeded."""
    outcomes = []
    for _ in range(reads):
        future = bus.execute_command("thermostat.read_sensor", zone)
        error = future.exception(timeout=10)
        if error is not None:
            assert isinstance(error, SensorError)
            assert error.zone == zone
        outcomes.append(error is None)
    return outcomes


def test_zones_start_at_the_start_temperature(thermostat: Bus, call: Call) -> None:
    assert call("thermostat.get", "office") == {
        "zone": "office",
        "target": START_CELSIUS,
        "current": START_CELSIUS,
        "heating": False,
    }


def test_set_target_starts_heating_and_fires_changed(thermostat: Bus, call: Call) -> None:
    with capture_events(thermostat, "thermostat.changed") as events:
        state = call("thermostat.set_target", "office", 21)

    assert state == {"zone": "office", "target": 21.0, "current": 18.0, "heating": True}
    assert call("thermostat.get", "office") == state
    assert [e.kwargs for e in events] == [{"zone": "office", "target": 21.0, "current": 18.0}]


def test_sensor_reads_move_towards_the_target(thermostat: Bus, call: Call) -> None:
    call("thermostat.set_target", "office", 19.2)

    readings = [call("thermostat.read_sensor", "office") for _ in range(4)]

    assert readings == [18.5, 19.0, 19.2, 19.2]
    assert call("thermostat.get", "office")["heating"] is False


@pytest.mark.parametrize("celsius", [4.9, 30.5, -40])
def test_target_out_of_range_fails_through_the_future(thermostat: Bus, celsius: float) -> None:
    future = thermostat.execute_command("thermostat.set_target", "office", celsius)

    with pytest.raises(ValueError, match=r"out of range \(5.0 to 30.0\)"):
        future.result(timeout=10)


def test_target_of_another_type_fails(thermostat: Bus, call: Call) -> None:
    with pytest.raises(TypeError, match="celsius must be a number, not str"):
        call("thermostat.set_target", "office", "21")


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("thermostat.set_target", ("garage", 20.0)),
        ("thermostat.get", ("garage",)),
        ("thermostat.read_sensor", ("garage",)),
    ],
)
def test_unknown_zone_fails(thermostat: Bus, call: Call, command: str, args: tuple[object]) -> None:
    with pytest.raises(
        ValueError, match="unknown zone 'garage'; known zones: bedroom, living_room"
    ):
        call(command, *args)


def test_a_sensor_that_always_fails(bus: Bus, call: Call) -> None:
    bus.add_service(Thermostat(failure_rate=1.0))

    with pytest.raises(SensorError, match=r"sensor in 'office' did not answer \(read #1\)"):
        call("thermostat.read_sensor", "office")
    assert read_outcomes(bus, 5) == [False] * 5
    assert call("thermostat.get", "office")["current"] == START_CELSIUS


def test_failures_follow_the_seed(call: Call, bus: Bus) -> None:
    bus.add_service(Thermostat(failure_rate=0.1, seed=4))

    outcomes = read_outcomes(bus, 60)

    draws = random.Random(4)
    assert outcomes == [draws.random() >= 0.1 for _ in range(60)]
    assert 0 < outcomes.count(False) < 20  # now and then, not always


def test_the_same_seed_fails_the_same_way() -> None:
    runs = []
    for _ in range(2):
        with Bus(name="seeded") as bus:
            bus.add_service(Thermostat(seed=11))
            runs.append(read_outcomes(bus, 40))

    assert runs[0] == runs[1]
    assert False in runs[0]


def test_failure_rate_is_checked() -> None:
    with pytest.raises(ValueError, match="failure_rate must be between 0 and 1"):
        Thermostat(failure_rate=1.5)


def test_set_mode_takes_a_mode_and_returns_a_mode_change(thermostat: Bus, call: Call) -> None:
    call("thermostat.set_target", "office", 21.0)
    with capture_events(thermostat, "thermostat.*") as events:
        change = call("thermostat.set_mode", "office", Mode.OFF)
    assert isinstance(change, ModeChange)
    assert (change.zone, change.mode, change.previous) == ("office", Mode.OFF, Mode.HEAT)
    assert change.at.tzinfo is not None
    assert call("thermostat.get", "office")["heating"] is False
    assert [e.kwargs for e in events] == [{"zone": "office", "target": 21.0, "current": 18.0}]
    # Off: a read measures, but the temperature no longer moves.
    assert call("thermostat.read_sensor", "office") == START_CELSIUS
    # In process nothing converts; the handler takes the mode's value too.
    assert call("thermostat.set_mode", "office", "heat").mode is Mode.HEAT
    assert call("thermostat.get", "office")["heating"] is True


def test_set_mode_refuses_an_unknown_mode(thermostat: Bus) -> None:
    with pytest.raises(ValueError, match="'warm' is not a valid Mode"):
        thermostat.execute_command("thermostat.set_mode", "office", "warm").result(timeout=10)
