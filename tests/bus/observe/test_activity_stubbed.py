"""The return of a call a live stub answered says so, in the activity and on every line.

``busctl monitor`` and the TUI's log showed a stubbed call's return as if
the real handler had answered; history and the commands table already said
``[stubbed]``.
"""

from __future__ import annotations

import threading

import pytest

from bus import Activity, Bus, Service, command
from busctl.render.activity import activity_line

pytestmark = pytest.mark.timeout(30)


class Lamp(Service):
    name = "lamp"

    @command("lamp.level")
    def level(self) -> int:
        return 5


def _returns(bus: Bus, calls: int) -> list[Activity]:
    """The ``return`` activities of ``calls`` calls of ``lamp.level``, in order."""
    returns: list[Activity] = []
    done = threading.Event()

    def seen(activity: Activity) -> None:
        if activity.kind == "return":
            returns.append(activity)
            if len(returns) == calls:
                done.set()

    unwatch = bus.watch(seen)
    try:
        for _ in range(calls):
            bus.execute_command("lamp.level").exception(5)  # the outcome, raised or not
        assert done.wait(5)
    finally:
        unwatch.dispose()
    return returns


def test_the_return_of_a_stubbed_call_is_marked_and_the_real_ones_are_not() -> None:
    with Bus(name="stubbed") as bus:
        bus.add_service(Lamp())
        bus.stubs.add("lamp.level", returns=9, times=1)  # once; then the real handler
        stubbed, real = _returns(bus, 2)
        assert (stubbed.result, stubbed.stubbed) == ("9", True)
        assert (real.result, real.stubbed) == ("5", None)
        assert stubbed.to_json()["stubbed"] is True
        assert "stubbed" not in real.to_json()  # None fields are left out of the wire
        assert "lamp = 9  [stubbed]  " in activity_line(stubbed.to_json())
        assert "[stubbed]" not in activity_line(real.to_json())


def test_a_stub_that_raises_keeps_its_error_and_the_mark() -> None:
    with Bus(name="stubbed-raises") as bus:
        bus.add_service(Lamp())
        bus.stubs.add("lamp.level", raises="TimeoutError: no answer")
        [failed] = _returns(bus, 1)
        line = activity_line(failed.to_json())
        assert "!! TimeoutError: no answer  [stubbed]" in line


def test_an_untraced_bus_cannot_tell_and_does_not_pretend() -> None:
    # The mark comes from the span; without tracing there is none to read.
    with Bus(name="untraced-stub", tracing=False) as bus:
        bus.add_service(Lamp())
        bus.stubs.add("lamp.level", returns=9)
        [answered] = _returns(bus, 1)
        assert answered.result == "9"
        assert answered.stubbed is None
