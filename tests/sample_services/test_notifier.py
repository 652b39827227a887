"""Notifier: slow delivery, two at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus
from sample_services import Notifier

Call = Callable[..., Any]

pytestmark = pytest.mark.timeout(30)


def test_send_returns_a_delivery_id_per_channel(bus: Bus, call: Call) -> None:
    bus.add_service(Notifier(delay=0))

    assert call("notifier.send", "hello") == "push-0001"
    assert call("notifier.send", "hi", channel="sms") == "sms-0002"


def test_history_lists_the_last_deliveries(bus: Bus, call: Call) -> None:
    bus.add_service(Notifier(delay=0))
    for n in range(3):
        call("notifier.send", f"message {n}")

    history = call("notifier.history")
    assert [d["message"] for d in history] == ["message 0", "message 1", "message 2"]
    assert [d["message"] for d in call("notifier.history", limit=2)] == ["message 1", "message 2"]
    assert call("notifier.history", 0) == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("",), "message must be a non-empty string"),
        (("  ",), "message must be a non-empty string"),
        (("hi", "pigeon"), "unknown channel 'pigeon'; use one of email, push, sms"),
    ],
)
def test_bad_messages_fail_through_the_future(
    bus: Bus, args: tuple[str, ...], error: str, call: Call
) -> None:
    bus.add_service(Notifier(delay=0))

    future = bus.execute_command("notifier.send", *args)

    with pytest.raises(ValueError, match=error):
        future.result(timeout=10)
    assert call("notifier.history") == []


def test_history_limit_is_checked(bus: Bus, call: Call) -> None:
    bus.add_service(Notifier(delay=0))

    with pytest.raises(ValueError, match="limit must not be negative"):
        call("notifier.history", -1)


def test_two_messages_are_delivered_in_parallel(bus: Bus) -> None:
    # Each delivery waits for the other to arrive: only overlapping deliveries
    # get past the barrier; one at a time, the first would break it.
    barrier = threading.Barrier(2, timeout=10)
    threads: list[str] = []

    def transport(message: str, channel: str) -> None:
        threads.append(threading.current_thread().name)
        barrier.wait()

    bus.add_service(Notifier(transport=transport))

    first = bus.execute_command("notifier.send", "one")
    second = bus.execute_command("notifier.send", "two")

    assert {first.result(timeout=10), second.result(timeout=10)} == {"push-0001", "push-0002"}
    assert len(set(threads)) == 2


def test_the_notifier_runs_two_threads(bus: Bus) -> None:
    bus.add_service(Notifier(delay=0))

    (service,) = [s for s in bus.inspect()["services"] if s["name"] == "notifier"]
    assert service["concurrency"] == 2
    assert len(service["threads"]) == 2


def test_the_default_transport_takes_the_delay(bus: Bus, call: Call) -> None:
    bus.add_service(Notifier(delay=0.01))

    assert call("notifier.send", "slow") == "push-0001"
    (command,) = [c for c in bus.inspect()["commands"] if c["name"] == "notifier.send"]
    assert command["calls"] == 1


def test_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="delay must not be negative"):
        Notifier(delay=-1)
