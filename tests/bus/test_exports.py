"""The public face: what ``bus`` exports, and what importing it must not load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bus
import bus.testing

ROOT = Path(__file__).resolve().parents[2]


def test_every_name_in_all_exists_once_and_is_documented() -> None:
    assert len(bus.__all__) == len(set(bus.__all__))
    for name in bus.__all__:
        value = getattr(bus, name)
        if name != "__version__":
            assert getattr(value, "__doc__", None), f"bus.{name} has no docstring"


def test_public_names_are_exported() -> None:
    expected = {
        "Bus",
        "Service",
        "command",
        "listener",
        "Registration",
        "BusError",
        "BusClosedError",
        "CommandExistsError",
        "CommandNotFoundError",
        "DeadlockError",
        "DroppedByConsoleError",
        "MailboxFullError",
        "current_event",
        "EventInfo",
        "ServiceUnavailableError",
        "RemoteError",
        "TransportError",
    }
    assert expected <= set(bus.__all__)
    for error in (
        "BusClosedError",
        "CommandExistsError",
        "CommandNotFoundError",
        "DeadlockError",
        "DroppedByConsoleError",
        "ServiceUnavailableError",
        "RemoteError",
        "TransportError",
    ):
        assert issubclass(getattr(bus, error), bus.BusError)
    assert set(bus.testing.__all__) >= {"wait_idle", "capture_events", "stub_command"}
    for name in bus.testing.__all__:
        assert hasattr(bus.testing, name)


@pytest.mark.timeout(60)
def test_importing_bus_loads_no_console_or_ui_package() -> None:
    code = (
        "import sys, bus, bus.testing\n"
        "b = bus.Bus(name='hygiene')\n"
        "b.close()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'busctl', 'textual', 'prompt_toolkit', 'rich', 'click'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
