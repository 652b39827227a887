"""The sample services' typed values end to end, as the console sees them.

A bus with every sample service on its control socket, and the raw line client:
an enum goes in as its value and a dataclass comes back as JSON; a wrong
value and a wrong event payload are refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from bus.control.protocol import ErrorCode
from tests.bus.control.control_client import LineClient
from tests.busctl.served_buses import control_bus

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client() -> Iterator[LineClient]:
    with control_bus("walk", samples={"tick_interval": 3600.0, "notifier_delay": 0.0}) as bus:
        assert bus.address is not None
        with LineClient(bus.address) as c:
            yield c


def test_an_enum_in_and_a_dataclass_out(client: LineClient) -> None:
    reply = client.result(
        "execute", {"name": "thermostat.set_mode", "args": ["office"], "kwargs": {"mode": "off"}}
    )
    assert "lossy" not in reply
    change = reply["value"]
    assert {k: change[k] for k in ("zone", "mode", "previous")} == {
        "zone": "office",
        "mode": "off",
        "previous": "heat",
    }
    assert datetime.fromisoformat(change["at"]).tzinfo is not None


def test_a_mode_that_does_not_exist_is_refused_naming_the_modes(client: LineClient) -> None:
    error = client.error("execute", {"name": "thermostat.set_mode", "args": ["office", "warm"]})
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["message"] == (
        "thermostat.set_mode(zone: str, mode: Mode) -> ModeChange: argument 'mode' must be "
        "Mode, not 'warm' (Input should be 'heat' or 'off')"
    )
    state = client.result("execute", {"name": "thermostat.get", "args": ["office"]})["value"]
    assert state["heating"] is False  # at its start temperature and target: nothing changed


def test_a_number_for_a_room_is_refused_before_the_handler(client: LineClient) -> None:
    error = client.error("execute", {"name": "lights.turn_on", "args": [42]})
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert (error["data"]["param"], error["data"]["expected"], error["data"]["value"]) == (
        "room",
        "str",
        42,
    )


def test_lights_changed_is_declared_and_checked_at_the_console(client: LineClient) -> None:
    error = client.error(
        "fire", {"name": "lights.changed", "kwargs": {"room": "hall", "on": "yes"}}
    )
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["data"]["param"] == "brightness"
    fired = client.result(
        "fire", {"name": "lights.changed", "kwargs": {"room": "hall", "on": "yes", "brightness": 5}}
    )
    assert fired == {"listeners": 1}  # the automation's *.changed
    schema = client.result("schema", {"name": "lights.changed"})
    assert schema["events"]["lights.changed"]["type"] == "LightsChanged"
