"""Services for the console's typed-contract and cancellation tests (not a test module).

Every handler counts what reached it, so a test proves that a refused value
dispatched nothing (the counter stays 0) and that a cancelled async command
saw ``CancelledError``. ``busctl run tests/busctl/counted_services.py`` hosts
them in a subprocess; ``counted.counts`` reads the counters from outside.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from bus import Service, command, event_type, listener


class Mode(Enum):
    """A heating mode."""

    HEAT = "heat"
    OFF = "off"
    AWAY = "away"


@dataclass(frozen=True)
class Change:
    """What ``counted.set_mode`` returns."""

    zone: str
    mode: Mode
    at: datetime


@event_type("counted.changed")
@dataclass(frozen=True)
class Changed:
    """The payload of ``counted.changed``."""

    zone: str
    level: int
    mode: Mode = Mode.HEAT


class Counted(Service):
    """Typed commands, a declared event, and commands that wait to be cancelled."""

    name = "counted"
    events = (Changed,)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.calls = 0
        self.heard = 0
        self.cancelled = 0
        self.finished = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self._wake: asyncio.Event | None = None

    def _count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)

    @command("counted.set_mode")
    def set_mode(self, zone: str, mode: Mode, level: int = 1) -> Change:
        """Set the mode of ``zone``; count the call."""
        self._count("calls")
        return Change(zone, mode, datetime(2026, 3, 1, 12, 30, tzinfo=UTC))

    @command("counted.size")
    def size(self, size: Literal["s", "m", "l"], note: str | None = None) -> str:
        """One of three sizes."""
        self._count("calls")
        return size

    @listener("counted.changed")
    def on_changed(self, zone: str, level: int, mode: Any = None) -> None:
        self._count("heard")

    @command("counted.wait_async")
    async def wait_async(self) -> str:
        """Wait on an asyncio.Event that nothing sets: only cancelling ends it."""
        self._wake = asyncio.Event()
        self.started.set()
        try:
            await self._wake.wait()
        except asyncio.CancelledError:
            self._count("cancelled")
            raise
        return "woken"

    @command("counted.wait_sync")
    def wait_sync(self, seconds: float = 30.0) -> str:
        """Block the service thread until released (or ``seconds``): nothing interrupts it."""
        self.started.set()
        self.release.wait(seconds)
        self._count("finished")
        return "finished"

    @command("counted.counts", readonly=True)
    def counts(self) -> dict[str, int]:
        """The counters: calls, heard, cancelled, finished."""
        with self.lock:
            return {
                "calls": self.calls,
                "heard": self.heard,
                "cancelled": self.cancelled,
                "finished": self.finished,
            }


class Releaser(Service):
    """Its own thread, so that releasing a blocked ``counted`` does not queue behind it."""

    name = "releaser"

    def __init__(self, counted: Counted | None = None) -> None:
        super().__init__()
        self.counted = counted

    @command("releaser.release")
    def release(self) -> None:
        """Let ``counted.wait_sync`` return."""
        if self.counted is not None:
            self.counted.release.set()


def start(bus: Any) -> None:
    """Add both services (``busctl run`` calls this)."""
    counted = Counted()
    bus.add_service(counted)
    bus.add_service(Releaser(counted))
