"""Notifier: sends messages to the household, slowly, two at a time.

    from bus import Bus
    from sample_services import Notifier

    with Bus(name="demo") as bus:
        bus.add_service(Notifier(delay=0.2))
        print(bus.execute_command("notifier.send", "Door open").result(timeout=2))  # push-0001

Delivery stands for a network call: by default it sleeps ``delay`` seconds.
The service runs two threads (``concurrency=2``), so two messages are in
flight at once, the way an I/O-bound service should be run; its state is
therefore guarded by a lock, which single-threaded services never need.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypedDict

from bus import Service, command

__all__ = ["CHANNELS", "DEFAULT_DELAY", "Delivery", "Notifier", "Transport"]

CHANNELS: tuple[str, ...] = ("email", "push", "sms")
"""The channels a message can go out on."""
DEFAULT_DELAY = 0.2
"""Seconds the default transport takes to deliver one message."""

Transport = Callable[[str, str], None]
"""``transport(message, channel)``: delivers one message, blocking until done."""


class Delivery(TypedDict):
    """One message sent, as ``notifier.history`` lists it."""

    id: str
    message: str
    channel: str
    sent_at: float


class Notifier(Service):
    """Delivers messages over a slow transport, ``concurrency`` at a time.

    Args:
        delay: seconds the default transport sleeps per message.
        transport: delivers a message; replaces the sleeping default (tests use
            it to observe the parallelism).
        concurrency: how many messages may be in flight at once.
        keep: how many deliveries ``notifier.history`` remembers.
    """

    name = "notifier"

    def __init__(
        self,
        delay: float = DEFAULT_DELAY,
        *,
        transport: Transport | None = None,
        concurrency: int = 2,
        keep: int = 100,
    ) -> None:
        super().__init__(concurrency=concurrency)
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay}")
        self.delay = delay
        self._transport = transport or self._sleep
        self._lock = threading.Lock()  # two threads run the handlers
        self._ids = itertools.count(1)
        self._history: deque[Delivery] = deque(maxlen=keep)

    @command("notifier.send")
    def send(self, message: str, channel: str = "push") -> str:
        """Send ``message`` on ``channel`` (push, email or sms); returns the delivery id.

        Raises:
            ValueError: the message is empty or the channel unknown.
        """
        if not isinstance(message, str) or not message.strip():
            raise ValueError("message must be a non-empty string")
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
        self._transport(message, channel)
        with self._lock:
            delivery = Delivery(
                id=f"{channel}-{next(self._ids):04d}",
                message=message,
                channel=channel,
                sent_at=time.time(),
            )
            self._history.append(delivery)
        return delivery["id"]

    @command("notifier.history", readonly=True)
    def history(self, limit: int = 20) -> list[Delivery]:
        """The last ``limit`` messages delivered, oldest first."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit}")
        with self._lock:
            items = list(self._history)
        return items[-limit:] if limit else []

    def _sleep(self, message: str, channel: str) -> None:
        time.sleep(self.delay)
