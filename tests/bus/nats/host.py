"""A process hosting services on a bus across processes, for the tests.

    python tests/bus/nats/host.py URL BUS_NAME REMOTE_TIMEOUT [--peer-timeout=S] SERVICE...

Prints ``ready LABEL`` once its services are announced, then runs until its
standard input ends (or it is killed). The services are small and known to
the tests by name.
"""

from __future__ import annotations

import datetime
import enum
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from bus import Bus, Service, command, listener


class Greeter(Service):
    """Greets people."""

    name = "greeter"

    @command("greet")
    def greet(self, name: str, *, punctuation: str = "!") -> str:
        """Greet someone."""
        return f"Hello, {name}{punctuation}"

    @command("greeter.fail")
    def fail(self, kind: str) -> None:
        if kind == "key":
            raise KeyError("nope")
        if kind == "local":
            raise HostOnlyError("made here")
        if kind == "json":
            json.loads("{oops")
        if kind == "unprintable":
            raise UnprintableError()
        raise ValueError(kind)

    @command("greeter.sleep")
    def sleep(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @command("greeter.card")
    def card(self, name: str) -> Card:
        return Card(name, datetime.date(2026, 12, 1), Mode.HEAT)

    @command("greeter.where")
    def where(self) -> str:
        return LABEL

    @command("greeter.nap")
    def nap(self, seconds: float) -> str:
        """Sleep, then say which process did."""
        time.sleep(seconds)
        return LABEL


class Mode(enum.Enum):
    HEAT = "heat"


@dataclass
class Card:
    """A typed result of a class the test process does not have."""

    name: str
    issued: datetime.date
    mode: Mode


class HostOnlyError(Exception):
    """An exception type the test process has not imported."""


class UnprintableError(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class B(Service):
    """Calls back into service ``a`` of the test process."""

    name = "b"

    @command("b.call_a")
    def call_a(self, wait: bool) -> str:
        future = self.bus.execute_command("a.pong")
        if wait:
            return str(future.result(timeout=20))
        return "sent"


class Recorder(Service):
    """Remembers the events it heard."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @listener("rec.*")
    def on_rec(self, *args: Any, **kwargs: Any) -> None:
        self.heard.append([list(args), kwargs])

    @command("recorder.heard")
    def recorded(self) -> list[Any]:
        return self.heard


SERVICES = {"greeter": Greeter, "b": B, "recorder": Recorder}
LABEL = ""


def main() -> None:
    global LABEL
    url, name, timeout, *services = sys.argv[1:]
    options = {"remote_timeout": float(timeout)}
    for option in [s for s in services if s.startswith("--peer-timeout=")]:
        options["peer_timeout"] = float(option.partition("=")[2])
        services.remove(option)
    bus = Bus(name=name, nats=url, **options)
    assert bus._nats is not None
    LABEL = bus._nats.label
    for service in services:
        bus.add_service(SERVICES[service]())
    bus._nats.settle()
    print("ready", LABEL, flush=True)
    done = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    done.wait()
    bus.close()


if __name__ == "__main__":
    main()
