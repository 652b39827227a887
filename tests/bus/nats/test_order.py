"""What order holds across processes: per sender for commands, per listener for events."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bus import Bus, Service, command, listener

pytestmark = pytest.mark.timeout(120)

COUNT = 1000


class Log(Service):
    name = "log"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.events: list[int] = []
        self.all_events = threading.Event()

    @command("log.call")
    def call(self, i: int) -> None:
        self.calls.append(i)

    @listener("log.event")
    def event(self, i: int) -> None:
        self.events.append(i)
        if len(self.events) == COUNT:
            self.all_events.set()


@pytest.fixture
def pair(nats_bus: Callable[..., Bus]) -> tuple[Bus, Log]:
    """A sender, and a process hosting ``log``."""
    host = nats_bus()
    log = Log()
    host.add_service(log)
    sender = nats_bus()
    assert sender.wait_for_command("log.call", 5)
    for b in (host, sender):
        assert b._nats is not None
        b._nats.settle()
    return sender, log


def test_commands_from_one_thread_run_in_the_order_sent_in_another_process(
    pair: tuple[Bus, Log],
) -> None:
    sender, log = pair
    futures = [sender.execute_command("log.call", i) for i in range(COUNT)]
    for future in futures:
        future.result(timeout=30)
    assert log.calls == list(range(COUNT))


def test_events_from_one_thread_reach_a_listener_in_another_process_in_order(
    pair: tuple[Bus, Log],
) -> None:
    sender, log = pair
    for i in range(COUNT):
        sender.fire_event("log.event", i)
    assert log.all_events.wait(30)
    assert log.events == list(range(COUNT))
