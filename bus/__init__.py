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

Layering, lowest floor first; each floor imports only the floors below it
(``tests/bus/test_layers.py`` checks this on the source, type-only imports
included):

- ``_core``: the verbs, routing (``Router``, each handler's ``Destination``),
  mailboxes and their threads, services, futures, deadlock detection. No
  sockets, no OpenTelemetry SDK. It reports its work through one seam, the
  ``Observer`` protocol, and asks one router where work goes.
- ``_observe``: what watches the core. The ``Hub`` observer turns work into
  trace records (encoded once) and activity; the trace thread builds spans
  from records; the span ring; ``inspect()`` shaping; OTLP JSON.
- ``control``: the console's endpoint: the protocol (``control.protocol``),
  the socket server, connections, methods, subscriptions, addresses.
- ``_nats``: one bus across processes on NATS (``Bus(nats=URL)``): the
  connection's loop thread, the registry, remote commands as handlers
  whose destination is another process, events, NATS micro discovery and
  the control protocol over NATS. Imported only by a bus given a server.
- this package: ``Bus`` (``_bus``), which assembles the floors, ``testing``,
  and the public modules the console uses: ``patterns``, ``otlp``,
  ``replay`` and ``control.protocol``.

This file only re-exports the public names.
"""

from __future__ import annotations

from ._bus import Bus
from ._core._context import EventInfo, current_event
from ._core._contract import InvalidArgumentError
from ._core._errors import (
    BusClosedError,
    BusError,
    CommandExistsError,
    CommandNotFoundError,
    DeadlockError,
    DroppedByConsoleError,
    MailboxFullError,
    RemoteError,
    ServiceFailedError,
    ServiceUnavailableError,
    TransportError,
)
from ._core._events import event_type
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
    "DroppedByConsoleError",
    "EventInfo",
    "InvalidArgumentError",
    "MailboxFullError",
    "Registration",
    "RemoteError",
    "Service",
    "ServiceFailedError",
    "ServiceUnavailableError",
    "TimerHandle",
    "TransportError",
    "__version__",
    "command",
    "current_event",
    "event_type",
    "listener",
    "redact_secrets",
]
