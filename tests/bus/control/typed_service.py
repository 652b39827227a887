"""A service whose handlers cover every type family of the typed contract (not a test module).

Each command returns what it was given with the type each argument arrived
as, so a test sees both that the value was converted and how the result
comes back as JSON. Defined at module level, with ``from __future__ import
annotations``, as services are written: the annotations are text that the
contract resolves in this module.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypedDict
from uuid import UUID

from pydantic import BaseModel, Field

from bus import Service, command, event_type, listener


class Mode(Enum):
    """A heating mode."""

    HEAT = "heat"
    OFF = "off"


@dataclass
class Point:
    """A point on a grid."""

    x: int
    y: int = 0


class Address(TypedDict):
    """A typing.TypedDict, which pydantic takes only from Python 3.12 without help."""

    street: str
    number: int


class Order(BaseModel):
    """A pydantic model with a constraint."""

    item: str
    quantity: int = Field(ge=1)


@event_type("typed.moved")
@dataclass
class Moved:
    """The payload of ``typed.moved``."""

    point: Point
    mode: Mode = Mode.HEAT


def kinds(**values: Any) -> dict[str, Any]:
    """What a handler got: each argument's type name and value."""
    return {
        "types": {name: type(value).__name__ for name, value in values.items()},
        "values": values,
    }


class Typed(Service):
    """Commands over every type family, a declared event and an inferred one."""

    name = "typed"
    events = (Moved,)

    def on_start(self) -> None:
        self.heard: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.heard_changed = threading.Condition()

    @command("typed.point")
    def point(self, p: Point) -> Point:
        """Give a point back."""
        assert isinstance(p, Point)
        return p

    @command("typed.mode", readonly=True)
    def mode(self, mode: Mode) -> Mode:
        """Give a mode back."""
        assert isinstance(mode, Mode)
        return mode

    @command("typed.address")
    def address(self, a: Address) -> dict[str, Any]:
        """A TypedDict arrives as a checked dict."""
        return kinds(a=a)

    @command("typed.order")
    def order(self, o: Order) -> Order:
        """A model arrives as a model."""
        assert isinstance(o, Order)
        return o

    @command("typed.size")
    def size(self, size: Literal["s", "m", "l"]) -> str:
        """One of three sizes."""
        return size

    @command("typed.when")
    def when(self, at: datetime, day: date) -> dict[str, Any]:
        """A datetime and a date."""
        return kinds(at=at, day=day)

    @command("typed.ids")
    def ids(self, u: UUID, amount: Decimal, path: Path) -> dict[str, Any]:
        """A UUID, a Decimal and a Path."""
        return kinds(u=u, amount=amount, path=path)

    @command("typed.generic")
    def generic(
        self,
        n: int | None = None,
        tags: list[str] | None = None,
        scores: dict[str, float] | None = None,
        pair: tuple[int, str] = (0, ""),
        points: list[Point] | None = None,
    ) -> dict[str, Any]:
        """Optional, Union and generic containers."""
        return kinds(n=n, tags=tags, scores=scores, pair=pair, points=points)

    @command("typed.many")
    def many(self, first: Point, /, *values: int, flag: bool = False, **named: float) -> Any:
        """Positional-only, *args, keyword-only and **kwargs."""
        return kinds(first=first, values=values, flag=flag, named=named)

    @command("typed.loose")
    def loose(self, anything, n: int) -> Any:  # type: ignore[no-untyped-def]
        """An unannotated parameter passes through as it came."""
        return kinds(anything=anything, n=n)

    @command("typed.unresolved")
    def unresolved(self, thing: NoSuchType, n: int = 0) -> Any:  # type: ignore[name-defined]  # noqa: F821
        """An annotation that names nothing: not checked, and the schema says so."""
        return kinds(thing=thing, n=n)

    @listener("typed.moved")
    def on_moved(self, *args: Any, **kwargs: Any) -> None:
        """Record what the declared event delivered."""
        self._heard("typed.moved", args, kwargs)

    @listener("typed.inferred")
    def on_inferred(self, size: Literal["s", "m", "l"], count: int = 1) -> None:
        """An event whose payload is inferred from this signature."""
        self._heard("typed.inferred", (size,), {"count": count})

    def _heard(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self.heard_changed:
            self.heard.append((name, args, kwargs))
            self.heard_changed.notify_all()

    def wait_heard(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Block until ``count`` events were delivered; return them."""
        with self.heard_changed:
            assert self.heard_changed.wait_for(lambda: len(self.heard) >= count, timeout)
            return list(self.heard)
