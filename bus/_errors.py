"""The bus's exceptions: one root, one meaning per class."""

from __future__ import annotations

__all__ = [
    "BusClosedError",
    "BusError",
    "CommandExistsError",
    "CommandNotFoundError",
    "DeadlockError",
    "MailboxFullError",
]


class BusError(Exception):
    """Root of every error the bus itself raises.

    What a handler raises is never wrapped: it reaches the caller through the
    future with its own type and traceback.
    """


class CommandNotFoundError(BusError, LookupError):
    """Raised at once by ``execute_command`` when no handler owns the name.

    Attributes:
        name: the command that was asked for.
        suggestions: registered names that look close to it, best first.
    """

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        message = f"no command named {name!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.suggestions))


class CommandExistsError(BusError, ValueError):
    """Raised by ``register_command`` when the name is already taken.

    Dispose of the existing registration first (``Registration.dispose()``).

    Attributes:
        name: the command name.
        owner: the service (or ``"pool"``) that holds it now.
    """

    def __init__(self, name: str, owner: str) -> None:
        self.name = name
        self.owner = owner
        super().__init__(f"command {name!r} is already registered by {owner}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.owner))


class DeadlockError(BusError, RuntimeError):
    """Raised when a wait would close a cycle of services waiting on each other.

    Raised by ``Future.result()`` / ``Future.exception()`` at the moment the
    wait begins, on the thread that would otherwise hang forever.

    Attributes:
        cycle: the services in the cycle, starting and ending with the waiter,
            for example ``["greeter", "orders", "greeter"]``.
    """

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = list(cycle)
        chain = " -> ".join(self.cycle)
        super().__init__(f"waiting here would deadlock: {chain}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.cycle,))


class BusClosedError(BusError, RuntimeError):
    """Raised when the bus is closed (or closing) and cannot take the work.

    ``execute_command`` and ``fire_event`` raise it at once after ``close()``;
    futures still pending when ``close()`` gives up waiting fail with it.
    """


class MailboxFullError(BusError, RuntimeError):
    """Raised at once by ``execute_command`` when the owner's mailbox is full.

    The mailbox bound is ``Bus(mailbox_size=...)``. Commands are refused rather
    than queued without limit, so an overloaded service pushes back on its
    callers; the refusal is counted as ``rejected`` in the service's statistics.
    """

    def __init__(self, service: str, size: int) -> None:
        self.service = service
        self.size = size
        super().__init__(f"mailbox of service {service!r} is full ({size} items)")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.service, self.size))
