"""Services for the console's tests of a bus across processes (``busctl run FILE:Class``).

Each answers ``where`` with the pid of the process it runs in, so a test
knows which process served a call.
"""

from __future__ import annotations

import os
from typing import Any

from bus import Service, command, listener


class Alpha(Service):
    """Hears pings; asks beta, in another process, where it is."""

    name = "alpha"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @command("alpha.where")
    def where(self) -> int:
        """The pid of the process alpha runs in."""
        return os.getpid()

    @command("alpha.ask_beta")
    def ask_beta(self) -> list[int]:
        """Where alpha and beta run: one trace across two processes."""
        return [os.getpid(), self.bus.execute_command("beta.where").result(timeout=10)]

    @listener("ping.*")
    def on_ping(self, *args: Any) -> None:
        self.heard.append(list(args))

    @command("alpha.heard")
    def pings(self) -> list[Any]:
        """The pings alpha heard."""
        return self.heard


class Beta(Service):
    """Hears pings too, in its own process."""

    name = "beta"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @command("beta.where")
    def where(self) -> int:
        """The pid of the process beta runs in."""
        return os.getpid()

    @listener("ping.*")
    def on_ping(self, *args: Any) -> None:
        self.heard.append(list(args))

    @command("beta.heard")
    def pings(self) -> list[Any]:
        """The pings beta heard."""
        return self.heard


class Shared(Service):
    """Hosted by several processes: its instances share its calls."""

    name = "shared"

    @command("shared.where")
    def where(self) -> int:
        """The pid of the process that took the call."""
        return os.getpid()


class Gamma(Service):
    """Lives in a process a test kills."""

    name = "gamma"

    @command("gamma.where")
    def where(self) -> int:
        """The pid of the process gamma runs in."""
        return os.getpid()
