"""The greeter: the README's first example."""

from __future__ import annotations

import pytest

from bus import Bus
from bus.testing import wait_idle
from sample_services import Greeter

pytestmark = pytest.mark.timeout(30)


def test_say_hello_greets_by_name(bus: Bus) -> None:
    bus.add_service(Greeter())

    assert bus.execute_command("say_hello", "Alice").result(timeout=10) == "Hello, Alice!"


def test_say_hello_with_missing_argument_is_refused_at_once(bus: Bus) -> None:
    bus.add_service(Greeter())

    with pytest.raises(TypeError, match=r"say_hello\(name: str\) -> str"):
        bus.execute_command("say_hello")


def test_greet_events_are_recorded_in_order(bus: Bus) -> None:
    greeter = Greeter()
    bus.add_service(greeter)

    bus.fire_event("greet_event", "Bob")
    bus.fire_event("greet_event", name="Carol")
    wait_idle(bus)

    assert greeter.greeted == ["Bob", "Carol"]
