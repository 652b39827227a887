"""The real bus's side of the scenarios: its class and the services they add.

``bus`` is imported only when a scenario needs it, so the baselines run (and
report the bus as unavailable) even where the library cannot be imported.

Example::

    from benchmarks._bus_services import bus_class, echo_service

    with bus_class()(name="bench", tracing=False) as bus:
        bus.add_service(echo_service())
        assert bus.execute_command("echo", 1).result() == 1
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from bus import Bus, Service

_Method = TypeVar("_Method", bound=Callable[..., Any])

__all__ = [
    "Reading",
    "Unit",
    "bus_class",
    "bus_sizes",
    "echo_service",
    "nested_services",
    "record",
    "tick_service",
    "typed_service",
]


class Unit(Enum):
    """The unit of a reading (the typed scenario's enum parameter)."""

    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclass(frozen=True)
class Reading:
    """A sensor reading (the typed scenario's dataclass parameter)."""

    sensor: str
    value: float


def record(reading: Reading, unit: Unit, note: str | None = None) -> float:
    """The typed command: a dataclass, an enum and an optional string in, a float out."""
    return reading.value


def bus_class() -> type[Bus]:
    """The ``Bus`` class; raises ``ImportError`` if the library is not importable."""
    from bus import Bus

    return Bus


def _command(name: str) -> Callable[[_Method], _Method]:
    # ``bus.command`` is annotated as returning ``Any``, which under mypy's
    # strict mode would make every decorated method untyped.
    from bus import command

    decorator: Callable[[_Method], _Method] = command(name)
    return decorator


@cache
def _classes() -> dict[str, type[Service]]:
    from bus import Service

    class Echo(Service):
        """Answers ``echo(x)`` with ``x``."""

        @_command("echo")
        def echo(self, x: Any) -> Any:
            return x

    class Tick(Service):
        """Hands every ``tick`` event to a sink, the listener itself.

        Registered from ``on_start``, on the service's thread, so the service
        owns it: the bus calls the same listener the floor and the obvious
        bus call, not a method that calls it (one more Python call a delivery).
        """

        def __init__(self, name: str, sink: Callable[[Any], None]) -> None:
            super().__init__(name=name)
            self._sink = sink

        def on_start(self) -> None:
            self.bus.register_listener("tick", self._sink)

    class Inner(Service):
        """Answers ``inner(x)`` with ``x``."""

        @_command("inner")
        def inner(self, x: Any) -> Any:
            return x

    class Outer(Service):
        """Answers ``outer(x)`` by asking the inner service."""

        @_command("outer")
        def outer(self, x: Any) -> Any:
            return self.bus.execute_command("inner", x).result()

    class Typed(Service):
        """Answers ``record(reading, unit)``: the command of the typed scenario."""

        @_command("record")
        def record(self, reading: Reading, unit: Unit, note: str | None = None) -> float:
            return reading.value

    return {"echo": Echo, "tick": Tick, "inner": Inner, "outer": Outer, "typed": Typed}


def echo_service() -> Service:
    """A service named ``echo`` with the command ``echo(x) -> x``."""
    return _classes()["echo"](name="echo")


def tick_service(name: str, sink: Callable[[Any], None]) -> Service:
    """A service called ``name`` whose ``tick`` listener calls ``sink(i)``."""
    tick: Any = _classes()["tick"]
    service: Service = tick(name, sink)
    return service


def typed_service() -> Service:
    """A service named ``typed`` with the command ``record(reading: Reading, unit: Unit)``."""
    return _classes()["typed"](name="typed")


def nested_services() -> list[Service]:
    """The ``inner`` service, and ``outer`` whose command calls ``inner``."""
    classes = _classes()
    return [classes["inner"](name="inner"), classes["outer"](name="outer")]


def bus_sizes(bus: Bus) -> dict[str, int]:
    """The bus's own queue and buffer sizes, read from ``bus.inspect()``."""
    snapshot = bus.inspect()
    services = snapshot.get("services", [])
    totals = snapshot.get("totals", {})
    tracing = snapshot.get("tracing", {})
    sizes = {
        "mailboxes": sum(int(s.get("mailbox") or 0) for s in services),
        "span buffer": int(tracing.get("buffered") or 0),
    }
    ring = getattr(getattr(bus, "spans", None), "spans", None)
    if callable(ring):
        sizes["span ring"] = len(ring())
    sizes["events dropped"] = int(totals.get("dropped") or 0)
    sizes["spans dropped"] = int(tracing.get("dropped") or 0)
    return sizes
