"""Services: a class whose handlers run on its own thread.

class Greeter(Service):
    @command("say_hello")
    def say_hello(self, name: str) -> str:
        '''Greet someone.'''
        return f"Hello, {name}!"

    @listener("greet_event")
    def on_greet(self, name: str) -> None:
        print("greeted", name)

bus.add_service(Greeter())
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from ._patterns import validate_name, validate_pattern

if TYPE_CHECKING:
    from ._bus import Bus
    from ._threads import TimerHandle

__all__ = ["Service", "command", "listener"]

F = TypeVar("F", bound=Callable[..., Any])

_COMMAND_ATTR = "__bus_command__"
_LISTENER_ATTR = "__bus_listeners__"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What ``@command`` recorded on a method."""

    name: str | None
    readonly: bool


@overload
def command(name: F, /) -> F: ...


@overload
def command(name: str | None = None, *, readonly: bool = False) -> Callable[[F], F]: ...


def command(name: str | F | None = None, *, readonly: bool = False) -> F | Callable[[F], F]:
    """Mark a service method as the handler of a command.

    Usable as ``@command``, ``@command("name")`` or
    ``@command("name", readonly=True)``. The name defaults to the method's
    name. ``readonly=True`` declares that the command has no side effects, so
    replay and the console may run it freely.
    """
    if callable(name):
        setattr(name, _COMMAND_ATTR, CommandSpec(None, readonly))
        return name
    if name is not None:
        validate_name(name, "command name")

    def mark(fn: F) -> F:
        setattr(fn, _COMMAND_ATTR, CommandSpec(name, readonly))
        return fn

    return mark


def listener(pattern: str) -> Callable[[F], F]:
    """Mark a service method as a listener for events matching ``pattern``.

    Stack it to listen to several patterns with one method.
    """
    validate_pattern(pattern)

    def mark(fn: F) -> F:
        patterns: list[str] = list(getattr(fn, _LISTENER_ATTR, ()))
        patterns.append(pattern)
        setattr(fn, _LISTENER_ATTR, tuple(patterns))
        return fn

    return mark


def _default_name(cls: type) -> str:
    base = cls.__name__
    if base.endswith("Service") and base != "Service":
        base = base[: -len("Service")]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


class Service:
    """Base class of a service: a unit with its own thread and handlers.

    Class attributes (or keyword arguments to ``__init__``):
        name: the service's name on the bus; by default the class name in
            snake case without a ``Service`` suffix (``LightsService`` ->
            ``lights``).
        concurrency: threads draining the mailbox; 1 (the default) means the
            service's state needs no locks. More suits I/O-bound services,
            whose handlers may then run in parallel.

    ``self.bus`` is the bus once ``add_service`` has started the service.
    """

    name: ClassVar[str] = ""
    concurrency: int = 1
    bus: Bus = None  # type: ignore[assignment]  # set by add_service

    def __init__(self, *, name: str | None = None, concurrency: int | None = None) -> None:
        if name is not None:
            self.name = validate_name(name, "service name")  # type: ignore[misc]
        if concurrency is not None:
            self.concurrency = concurrency

    def service_name(self) -> str:
        """The name this service has on the bus."""
        return self.name or _default_name(type(self))

    def on_start(self) -> None:
        """Called on the service's thread before it is ready; may register handlers."""

    def on_stop(self) -> None:
        """Called on the service's thread when the bus closes."""

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` on this service's thread after ``delay`` seconds.

        Thread-safe. Returns a handle whose ``cancel()`` stops it.
        """
        return self.bus._schedule(self, delay, fn, args, None)

    def call_every(self, interval: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` on this service's thread every ``interval`` seconds.

        Thread-safe. The first run is one interval from now; ``cancel()`` on
        the returned handle stops it, and closing the bus stops all of them.
        While the service is too busy to run it, runs do not pile up: at most
        one waits in the mailbox, and the others due meanwhile are skipped.
        """
        return self.bus._schedule(self, interval, fn, args, interval)

    def handlers(
        self,
    ) -> list[tuple[Literal["command", "listener"], str, Callable[..., Any], bool]]:
        """The decorated handlers: ``(kind, name or pattern, bound method, readonly)``."""
        found: list[tuple[Literal["command", "listener"], str, Callable[..., Any], bool]] = []
        seen: set[str] = set()
        for klass in type(self).__mro__:
            for attr, value in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                spec = getattr(value, _COMMAND_ATTR, None)
                patterns = getattr(value, _LISTENER_ATTR, ())
                if spec is None and not patterns:
                    continue
                bound = getattr(self, attr)
                if isinstance(spec, CommandSpec):
                    found.append(("command", spec.name or attr, bound, spec.readonly))
                found.extend(("listener", pattern, bound, False) for pattern in patterns)
        return found

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.service_name()!r}>"
