"""The bus's exceptions: one root, one meaning per class."""

from __future__ import annotations

__all__ = [
    "BusClosedError",
    "BusError",
    "CommandExistsError",
    "CommandNotFoundError",
    "DeadlockError",
    "MailboxFullError",
    "ServiceFailedError",
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


class ServiceFailedError(BusError, RuntimeError):
    """Raised for work sent to a service that has failed.

    A service fails when its ``on_start`` raises, or when its thread dies of
    something the bus did not foresee (never of what a handler raises: that
    reaches the caller). The service is then marked ``failed`` (``inspect()``
    and every console face show it), the failure is logged once, and this
    error fails the work it was running, the work queued for it and every
    later ``execute_command`` to it, at once. Events for it are dropped and
    counted.

    Attributes:
        service: the service that failed.
        reason: what happened, e.g. ``"its thread bus:home/lights died of
            RuntimeError: ..."``.
    """

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"service {service!r} has failed: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.service, self.reason))
