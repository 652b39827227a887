"""``execute`` and ``fire`` with ``check``: the arguments converted and checked, nothing run.

A console's form asks this before it sends, so that a bad value is refused
with the bus's own rules (``-32012`` naming the parameter) while the handler
is never called: its counter stays at 0, and no listener hears a thing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, command, listener
from bus.control.protocol import ErrorCode
from tests.bus.control.control_client import LineClient
from tests.bus.control.typed_service import Mode, Moved

pytestmark = pytest.mark.timeout(30)


class Counted(Service):
    """A typed command and a declared event, each counting what reached it."""

    name = "counted"
    events = (Moved,)

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.heard = 0
        self.lock = threading.Lock()

    @command("counted.mode")
    def mode(self, zone: str, mode: Mode) -> str:
        with self.lock:
            self.calls += 1
        return f"{zone}: {mode.value}"

    @listener("typed.moved")
    def on_moved(self, point: Any, mode: Any = None) -> None:
        with self.lock:
            self.heard += 1


@pytest.fixture
def served(serve: Callable[..., Bus]) -> tuple[Bus, Counted]:
    service = Counted()
    return serve("checked", service), service


def test_a_good_call_is_checked_and_not_run(
    served: tuple[Bus, Counted], client: LineClient
) -> None:
    bus, service = served
    params = {"name": "counted.mode", "args": ["hall"], "kwargs": {"mode": "heat"}, "check": True}
    assert client.result("execute", params) == {"checked": True}
    assert bus.wait_idle(5)
    assert service.calls == 0
    # The same call without check runs, once.
    params.pop("check")
    assert client.result("execute", params) == {"value": "hall: heat"}
    assert service.calls == 1


def test_a_bad_value_is_refused_as_execute_would_and_nothing_runs(
    served: tuple[Bus, Counted], client: LineClient
) -> None:
    bus, service = served
    params = {"name": "counted.mode", "args": ["hall", "warm"], "check": True}
    error = client.error("execute", params)
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["data"]["param"] == "mode"
    assert error["data"]["value"] == "warm"
    assert "argument 'mode' must be Mode, not 'warm'" in error["message"]
    not_bound = client.error("execute", {"name": "counted.mode", "args": [], "check": True})
    assert not_bound["code"] == ErrorCode.BAD_ARGUMENTS
    unknown = client.error("execute", {"name": "counted.nope", "check": True})
    assert unknown["code"] == ErrorCode.NO_SUCH_COMMAND
    assert bus.wait_idle(5)
    assert service.calls == 0
    assert bus.inspect()["commands"][0]["calls"] == 0


def test_fire_checks_a_declared_payload_and_fires_nothing(
    served: tuple[Bus, Counted], client: LineClient
) -> None:
    bus, service = served
    good = {"name": "typed.moved", "kwargs": {"point": {"x": 1}}, "check": True}
    assert client.result("fire", good) == {"checked": True}
    bad = {"name": "typed.moved", "kwargs": {"point": {"x": "left"}}, "check": True}
    error = client.error("fire", bad)
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["data"]["param"] == "point"
    bad_name = client.error("fire", {"name": "no good", "check": True})
    assert bad_name["code"] == ErrorCode.INVALID_PARAMS
    assert bad_name["data"]["param"] == "name"
    assert bus.wait_idle(5)
    assert service.heard == 0
    assert bus.inspect()["listeners"][0]["deliveries"] == 0


def test_check_must_be_a_boolean(client: LineClient) -> None:
    error = client.error("execute", {"name": "counted.mode", "check": "yes"})
    assert error["code"] == ErrorCode.INVALID_PARAMS
    assert error["data"]["param"] == "check"
    assert "'check' must be true or false" in error["message"]
