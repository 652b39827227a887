"""The bus's exceptions: one root, one meaning per class."""

from __future__ import annotations

__all__ = [
    "BusClosedError",
    "BusError",
    "CommandExistsError",
    "CommandNotFoundError",
    "DeadlockError",
    "DroppedByConsoleError",
    "MailboxFullError",
    "RemoteError",
    "ServiceFailedError",
    "ServiceUnavailableError",
    "TransportError",
    "error_message",
    "error_text",
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


class DroppedByConsoleError(BusError):
    """Raised through the future of a held command call that a console dropped.

    A console may hold calls and deliveries (``busctl hold``) and then let
    them go or drop them (``busctl drop``). A dropped call never runs: its
    caller gets this error, which says what was dropped and by which hold.
    (A dropped event delivery is counted as dropped on its listener.)

    Attributes:
        command: the command whose call was dropped.
        hold: the id of the hold that held it.
    """

    def __init__(self, command: str, hold: int, message: str | None = None) -> None:
        self.command = command
        self.hold = hold
        super().__init__(message or f"{command}: the call was dropped by a console (hold {hold})")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.command, self.hold, str(self)))


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


class ServiceUnavailableError(BusError):
    """Raised through the future of a command of another process that no one answered.

    The command is known (another process on the bus registered it), but no
    process serving it took the call, or the one that took it never replied,
    before the call's deadline (``Bus(remote_timeout=...)``). Calls to a
    command with no responder right now (its process restarting, the server
    restarting) are retried until then, never reported as unknown.

    Attributes:
        command: the command called.
        service: the service that registered it.
        timeout: the deadline, in seconds.
        delivered: whether a process took the request (and then went silent:
            it may have died, or its handler may still run).
    """

    def __init__(self, command: str, service: str, timeout: float, delivered: bool) -> None:
        self.command = command
        self.service = service
        self.timeout = timeout
        self.delivered = delivered
        if delivered:
            message = (
                f"{command}: service {service!r} took the call and sent no reply within "
                f"{timeout:g} s (its process may have died)"
            )
        else:
            message = f"{command}: no instance of service {service!r} answered within {timeout:g} s"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.command, self.service, self.timeout, self.delivered))


class RemoteError(BusError):
    """What a handler in another process raised, when its type cannot be rebuilt here.

    Exceptions of builtin types, and of types whose module is already imported
    in the calling process, are raised as themselves; any other comes back as
    this, with the type's name. Either way the remote traceback is attached as
    a note (``traceback.print_exception`` shows it) and as
    ``remote_traceback``.

    Attributes:
        type_name: the remote exception's qualified type name (``module.Class``).
        message: ``str()`` of the remote exception.
        remote_traceback: the traceback as the remote process formatted it.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class TransportError(BusError, ConnectionError):
    """Raised by ``Bus(nats=...)`` when the bus cannot join the server.

    The server is not there, refuses the connection, or the URL is not one.
    The message is one line and says which server; nothing is left running.
    """


def error_message(error: BaseException) -> str:
    """``str(error)``, or a stand-in when that raises or is not text.

    A handler's exception is shown, counted and traced whatever its
    ``__str__`` does; a broken one must not take the service down with it.
    """
    try:
        text = str(error)
    except Exception:  # a hostile __str__: say so, as traceback does
        return "<exception str() failed>"
    return text


def error_text(error: BaseException) -> str:
    """``"TypeName: message"``, the way the bus shows an exception in one line."""
    return f"{type(error).__name__}: {error_message(error)}"
