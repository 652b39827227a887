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

Handlers may be ``async def``: they run as tasks on an event loop that the
service's thread owns, and interleave at their awaits::

    class Weather(Service):
        @command("weather.now")
        async def now(self, city: str) -> float:
            forecast = await self.bus.execute_command("forecast.get", city)
            return forecast["temperature"]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, overload

from ._patterns import validate_name, validate_pattern

if TYPE_CHECKING:
    from ._future import CommandFuture
    from ._router import Registration
    from ._threads import TimerHandle

__all__ = ["Disposable", "Service", "ServiceBus", "command", "listener"]

F = TypeVar("F", bound=Callable[..., Any])

_COMMAND_ATTR = "__bus_command__"
_LISTENER_ATTR = "__bus_listeners__"
BROADCAST_ATTR = "__bus_broadcast__"


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


def listener(pattern: str, *, broadcast: bool = False) -> Callable[[F], F]:
    """Mark a service method as a listener for events matching ``pattern``.

    Stack it to listen to several patterns with one method. On a bus across
    processes (``Bus(nats=...)``) a service running in several processes
    hears each event once, in one of them; ``broadcast=True`` asks for
    every instance to hear it.
    """
    validate_pattern(pattern)

    def mark(fn: F) -> F:
        patterns: list[str] = list(getattr(fn, _LISTENER_ATTR, ()))
        patterns.append(pattern)
        setattr(fn, _LISTENER_ATTR, tuple(patterns))
        if broadcast:
            setattr(fn, BROADCAST_ATTR, (*getattr(fn, BROADCAST_ATTR, ()), pattern))
        return fn

    return mark


class Disposable(Protocol):
    """A handle whose ``dispose()`` undoes what made it."""

    def dispose(self) -> None:
        """Undo it (idempotent)."""


class ServiceBus(Protocol):
    """What a service sees of the bus it is on: ``self.bus``.

    ``bus.Bus`` is one; the protocol lets the core name it without importing
    the floors above.
    """

    name: str

    def register_command(
        self, name: str, fn: Callable[..., Any], *, readonly: bool = False, doc: str | None = None
    ) -> Registration:
        """See ``Bus.register_command``."""

    def execute_command(self, name: str, /, *args: Any, **kwargs: Any) -> CommandFuture:
        """See ``Bus.execute_command``."""

    def register_listener(
        self, pattern: str, fn: Callable[..., Any], *, broadcast: bool = False
    ) -> Registration:
        """See ``Bus.register_listener``."""

    def fire_event(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """See ``Bus.fire_event``."""

    def declare_event(self, name: str | type, payload: type | None = None) -> None:
        """See ``Bus.declare_event``."""

    def add_service(self, service: Service, *, timeout: float | None = 30.0) -> Service:
        """See ``Bus.add_service``."""

    def inspect(self) -> dict[str, Any]:
        """See ``Bus.inspect``."""

    def watch(self, callback: Callable[[Any], None]) -> Disposable:
        """See ``Bus.watch``."""

    def flush_traces(self, timeout: float | None = 10.0) -> bool:
        """See ``Bus.flush_traces``."""

    def wait_idle(self, timeout: float | None = 10.0) -> bool:
        """See ``Bus.wait_idle``."""

    def close(self, timeout: float = 10.0) -> None:
        """See ``Bus.close``."""

    def schedule(
        self,
        service: Service,
        delay: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        interval: float | None,
    ) -> TimerHandle:
        """See ``Bus.schedule``: what ``call_later`` and ``call_every`` use."""


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
        concurrency: for a service whose handlers are plain functions, the
            threads draining its mailbox: 1 (the default) means the
            service's state needs no locks; more suits I/O-bound services,
            whose handlers may then run in parallel. For a service with
            ``async def`` handlers (or an async timer, ``on_start`` or
            ``on_stop``), which runs them all on one thread's event loop,
            how many handlers may run there at once (default 1024). Either
            way at most 1024.
        events: the payload types of the events it fires, declared by
            ``add_service`` (``Bus.declare_event``): classes marked with
            ``@event_type(NAME)``, or a dict of event names to types.

    ``self.bus`` is the bus once ``add_service`` has started the service.
    ``on_start`` and ``on_stop`` may be ``async def`` too.
    """

    name: ClassVar[str] = ""
    concurrency: int | None = None
    events: ClassVar[Any] = ()
    bus: ServiceBus = None  # type: ignore[assignment]  # set by add_service

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

        ``fn`` may be an ``async def``: it runs as a task on the service's
        event loop. Thread-safe. Returns a handle whose ``cancel()`` stops it.

        Raises:
            BusError: ``fn`` is async and the service runs several threads
                without an event loop (see ``concurrency``).
        """
        return self.bus.schedule(self, delay, fn, args, None)

    def call_every(self, interval: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``fn(*args)`` on this service's thread every ``interval`` seconds.

        Thread-safe. The first run is one interval from now; ``cancel()`` on
        the returned handle stops it, and closing the bus stops all of them.
        While the service is too busy to run it, runs do not pile up: at most
        one waits in the mailbox, and the others due meanwhile are skipped.
        ``fn`` may be an ``async def``; its runs never overlap: one due while
        the last still runs is skipped.

        Raises:
            BusError: as for ``call_later``.
        """
        return self.bus.schedule(self, interval, fn, args, interval)

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
