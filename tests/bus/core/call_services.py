"""Services the accelerator's call tests share (``test_accel_calls``, ``test_accel_traced``)."""

from __future__ import annotations

import threading
from typing import Any

from bus import Bus, Service, command


class Calls(Service):
    """``slow`` waits for ``gate``; ``echo`` answers; ``boom`` raises; ``ask`` calls ``other``."""

    def __init__(self, name: str = "calls") -> None:
        super().__init__(name=name)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.ran: list[Any] = []
        self.threads: set[str] = set()

    @command("slow")
    def slow(self, x: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(20)
        self.ran.append(("slow", x))
        return x

    @command("echo")
    def echo(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.add(threading.current_thread().name)
        self.ran.append(("echo", args, kwargs))
        return (args, kwargs)

    @command("double")
    def double(self, x: Any) -> Any:
        self.ran.append(("double", x))
        return x * 2

    @command("boom")
    def boom(self, message: str) -> None:
        self.ran.append(("boom", message))
        raise ValueError(message)


class Asker(Service):
    """``ask`` calls ``echo`` on the other service and waits for it."""

    name = "asker"

    @command("ask")
    def ask(self, x: Any) -> Any:
        return self.bus.execute_command("echo", x).result(10)


def command_entry(b: Bus, name: str) -> dict[str, Any]:
    """The ``inspect()`` entry of command ``name``."""
    return next(c for c in b.inspect()["commands"] if c["name"] == name)


def service_entry(b: Bus, name: str) -> dict[str, Any]:
    """The ``inspect()`` entry of service ``name``."""
    return next(s for s in b.inspect()["services"] if s["name"] == name)
