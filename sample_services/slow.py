"""Slow: a command that takes as long as you ask, to try waiting, Ctrl-C and timeouts on.

    $ busctl run sample_services sample_services.slow --name home
    $ busctl call slow.nap 10          # Ctrl-C: busctl stops waiting; the nap goes on
    $ busctl call --timeout 1 slow.nap 3

It is not among the services ``sample_services.start`` adds: name it to run it.
"""

from __future__ import annotations

import time

from bus import Service, command

__all__ = ["MAX_NAP", "Slow"]

MAX_NAP = 3600.0
"""The longest nap ``slow.nap`` takes, in seconds."""


class Slow(Service):
    """One command that blocks its service's thread for a while, as slow work does."""

    name = "slow"

    @command("slow.nap")
    def nap(self, seconds: float) -> str:
        """Sleep ``seconds`` (0 to 3600) on the service's thread, then say how long it took.

        Raises:
            TypeError: ``seconds`` is not a number.
            ValueError: ``seconds`` is out of range.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
        if not 0 <= seconds <= MAX_NAP:
            raise ValueError(f"seconds must be between 0 and {MAX_NAP:g}, not {seconds}")
        started = time.monotonic()
        time.sleep(seconds)
        return f"slept {time.monotonic() - started:.1f} s"
