"""The classic first service: a command that greets and a listener that remembers.

    from bus import Bus
    from sample_services import Greeter

    with Bus(name="demo") as bus:
        bus.add_service(Greeter())
        print(bus.execute_command("say_hello", "Alice").result(timeout=2))  # Hello, Alice!
        bus.fire_event("greet_event", "Bob")

It is the README's first example: one command, one listener, no locks.
"""

from __future__ import annotations

import logging

from bus import Service, command, listener

__all__ = ["Greeter"]

log = logging.getLogger(__name__)


class Greeter(Service):
    """Says hello on request and keeps a list of who was greeted by event.

    Attributes:
        greeted: the names received by ``greet_event``, oldest first. Written
            only on the service's thread; read it after ``wait_idle``.
    """

    name = "greeter"

    def __init__(self) -> None:
        super().__init__()
        self.greeted: list[str] = []

    @command("say_hello")
    def say_hello(self, name: str) -> str:
        """Greet someone by name."""
        return f"Hello, {name}!"

    @listener("greet_event")
    def on_greet(self, name: str) -> None:
        """Remember and log a greeting announced on the bus."""
        self.greeted.append(name)
        log.info("greeted %s", name)
