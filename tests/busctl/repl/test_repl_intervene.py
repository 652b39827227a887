"""The REPL steps into a real bus: holds, stubs, history, copy and --safe.

The REPL runs on its own thread, typed into through a pipe, against a bus
reached through its real control socket (``test_repl``'s fixtures); a caller
a hold makes wait runs on a thread of its own.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest
from prompt_toolkit.output import DummyOutput

from bus import Bus, DroppedByConsoleError
from busctl.repl.session import Repl
from tests.busctl.repl import test_repl as base
from tests.busctl.repl.test_repl import Probe, Session, Transcript, completions

# test_repl's fixtures: a bus with the sample services, a client, a REPL session.
home_bus = base.home_bus
client = base.client
session = base.session

pytestmark = pytest.mark.timeout(30)


def _call_in_background(bus: Bus, name: str, *args: Any, **kwargs: Any) -> Future[Any]:
    """A call from this thread: it returns at once with the future the hold keeps waiting."""
    return bus.execute_command(name, *args, **kwargs)


def _until_held(bus: Bus, count: int) -> list[Any]:
    pause = threading.Event()
    for _ in range(2000):
        held = bus.holds.held()
        if len(held) >= count:
            return held
        pause.wait(0.005)
    raise AssertionError(f"fewer than {count} held")


def test_hold_release_edited_and_drop(session: Session, home_bus: tuple[Bus, Probe]) -> None:
    bus, _ = home_bus
    text = session.line("hold lights.turn_on --calls --for 2m", "2 min")
    assert "hold 1: lights.turn_on (calls), ends in 2 min" in text
    edited = _call_in_background(bus, "lights.turn_on", "hall", brightness=90)
    dropped = _call_in_background(bus, "lights.turn_on", "kitchen")
    first, second = _until_held(bus, 2)
    text = session.line("held", "kitchen")
    assert "lights.turn_on" in text
    assert "\n\nID  KIND" in text  # the holds, a blank line, what they hold
    assert '("hall", brightness=90)' in text

    text = session.line(f"release {first.id} brightness=oops", "\n")
    assert "error" in text
    assert not edited.done()  # refused: still held
    assert f"released {first.id} (edited)" in session.line(
        f"release {first.id} brightness=25", "(edited)"
    )
    assert edited.result(5)["brightness"] == 25

    assert f"dropped {second.id}" in session.line(f"drop {second.id}", f"dropped {second.id}")
    with pytest.raises(DroppedByConsoleError):
        dropped.result(5)
    text = session.line("drop 99", "\n")
    assert "99" in text
    assert "hold 1 on lights.turn_on ended" in session.line("unhold lights.turn_on", "ended")
    assert "no holds are set" in session.line("held", "set")


def test_unhold_lets_what_was_held_go_on(session: Session, home_bus: tuple[Bus, Probe]) -> None:
    bus, probe = home_bus
    session.line("hold probe.* --events", "ends in")
    bus.fire_event("probe.ping", "held-value")  # the firer never waits
    [item] = _until_held(bus, 1)
    assert (item.kind, item.name) == ("event", "probe.ping")
    assert probe.pings.empty()
    assert f"released {item.id}" in session.line("unhold 1", f"released {item.id}")
    assert probe.pings.get(timeout=5) == "held-value"


def test_stub_is_marked_and_unstub_puts_the_real_one_back(session: Session) -> None:
    text = session.line(
        "stub thermostat.read_sensor --raises 'TimeoutError: off' --times 2", "ends in"
    )
    assert (
        "stubbed thermostat.read_sensor on thermostat: raises TimeoutError: off, for 2 calls"
        in text
    )
    assert "error: TimeoutError: off" in session.line("thermostat.read_sensor living_room", "off\n")
    text = session.line("stubs", "TimeoutError")
    assert "thermostat.read_sensor" in text
    assert "read_sensor [stubbed]" in session.line("commands", "stubbed]")
    assert "STUBBED" in session.line("help thermostat.read_sensor", "STUBBED")
    assert "the real handler is back" in session.line("unstub thermostat.read_sensor", "back")
    assert "no command is stubbed" in session.line("stubs", "stubbed")
    text = session.line("stub thermostat.read_sensor", "\n")
    assert "--returns JSON | --raises" in text


def test_history_and_copy(session: Session) -> None:
    session.line("lights.turn_on hall brightness=33", "}")
    text = session.line("history lights.turn_on -n 1", "brightness=33)")
    assert " call " in text
    text = session.line("copy python", "timeout=30)")
    assert 'bus.execute_command("lights.turn_on", "hall", brightness=33)' in text
    text = session.line("copy", "brightness=33")
    assert "busctl call lights.turn_on hall brightness=33" in text
    assert completions(session.repl, "copy ") == ["busctl", "json-rpc", "python"]
    text = session.line("copy json-rpc say_hello Ann", '"Ann"')
    assert '"method": "execute"' in text or '"method":"execute"' in text


def test_safe_asks_before_a_command_not_declared_read_only(client: Any) -> None:
    running = Session(client, safe=True)
    try:
        # The question goes to the terminal; the answer is typed as the next line.
        text = running.line("lights.turn_on hall\rn", "(--safe)")
        assert "not run: lights.turn_on (--safe)" in text
        assert '"brightness": 12' in running.line("lights.turn_on hall brightness=12\ry", "}")
        # Read-only: not asked.
        assert '"room": "hall"' in running.line("lights.get hall", "}")
    finally:
        running.finish()


def test_a_safe_script_does_not_run_what_it_cannot_ask_about(client: Any) -> None:
    out = Transcript()
    repl = Repl(client, stdout=out, colour=False, output=DummyOutput(), safe=True)
    repl.run_script(["lights.turn_off hall\n", "lights.get hall\n"])
    text = out.getvalue()
    assert "--safe: a script cannot be asked, so the command is not run" in text
    assert '"room": "hall"' in text
