"""Threaded services that talk through a bus of commands and events.

    from bus import Bus, Service, command, listener

    class Greeter(Service):
        @command("say_hello")
        def say_hello(self, name: str) -> str:
            '''Greet someone.'''
            return f"Hello, {name}!"

    with Bus(name="demo") as bus:
        bus.add_service(Greeter())
        print(bus.execute_command("say_hello", "Alice").result(timeout=2))

Layering: ``_errors``, ``_patterns``, ``_binding``, ``_jsonval`` and
``_stats`` stand alone; ``_records`` and ``_tracing`` turn hot-path records
into OpenTelemetry spans; ``_registry`` is the routing seam; ``_runtime`` owns
mailboxes and threads (created only through ``_threads``); ``_bus`` assembles
them behind the four verbs. This file only re-exports the public names.
"""

from __future__ import annotations

from ._bus import Bus
from ._core._context import EventInfo, current_event
from ._core._errors import (
    BusClosedError,
    BusError,
    CommandExistsError,
    CommandNotFoundError,
    DeadlockError,
    MailboxFullError,
    ServiceFailedError,
)
from ._core._future import CommandFuture
from ._core._router import Registration
from ._core._service import Service, command, listener
from ._core._threads import TimerHandle
from ._core._version import VERSION
from ._observe._activity import Activity
from ._observe._jsonval import redact_secrets

__version__ = VERSION

__all__ = [
    "Activity",
    "Bus",
    "BusClosedError",
    "BusError",
    "CommandExistsError",
    "CommandFuture",
    "CommandNotFoundError",
    "DeadlockError",
    "EventInfo",
    "MailboxFullError",
    "Registration",
    "Service",
    "ServiceFailedError",
    "TimerHandle",
    "__version__",
    "command",
    "current_event",
    "listener",
    "redact_secrets",
]
