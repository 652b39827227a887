"""Slow: the README's REPL walkthrough naps on it; shipped, not started by default."""

from __future__ import annotations

import pytest

import sample_services
from bus import Bus
from sample_services import Slow

pytestmark = pytest.mark.timeout(30)


def test_nap_blocks_its_own_thread_then_says_so(bus: Bus) -> None:
    bus.add_service(Slow())
    assert bus.execute_command("slow.nap", 0.05).result(timeout=10).startswith("slept 0.")
    assert bus.execute_command("slow.nap", 0).result(timeout=10) == "slept 0.0 s"
    assert bus.inspect()["services"][0]["threads"][0]["name"] == "bus:test/slow"


@pytest.mark.parametrize(
    ("seconds", "error", "words"),
    [
        ("10", TypeError, "seconds must be a number, not str"),
        (True, TypeError, "not bool"),
        (-1, ValueError, "between 0 and 3600, not -1"),
        (4000.5, ValueError, "not 4000.5"),
    ],
)
def test_nap_refuses_what_is_not_a_sensible_time(
    bus: Bus, seconds: object, error: type[Exception], words: str
) -> None:
    bus.add_service(Slow())
    with pytest.raises(error, match=words):
        bus.execute_command("slow.nap", seconds).result(timeout=10)


def test_it_is_not_among_the_services_started_by_default(bus: Bus) -> None:
    started = sample_services.start(bus, tick_interval=3600.0)
    assert "slow" not in [service.service_name() for service in started]


def test_busctl_run_hosts_it_by_module_name(bus: Bus) -> None:
    from busctl.cli.run import _load_target

    started = _load_target("sample_services.slow")(bus)
    assert [service.service_name() for service in started] == ["slow"]
    assert bus.execute_command("slow.nap", 0).result(timeout=10) == "slept 0.0 s"
