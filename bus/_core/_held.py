"""What a console's hold is (``Hold``) and what it holds (``Held``).

``Holds`` (``_holds``) keeps them: this module is the records it keeps and
the bounds on how long a hold (or a stub, ``_stubs``) may last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._errors import BusError
from ._patterns import pattern_matches

if TYPE_CHECKING:
    from ._router import Handler
    from ._runtime import Runtime
    from ._threads import TimerHandle

__all__ = [
    "DEFAULT_SECONDS",
    "MAX_SECONDS",
    "Held",
    "Hold",
    "Kind",
    "NoSuchHoldError",
    "check_seconds",
]

DEFAULT_SECONDS = 600.0
"""How long a hold (or a stub) lasts unless told: ten minutes."""
MAX_SECONDS = 86_400.0
"""The longest a hold (or a stub) may last: a day. Nothing is held for ever."""

Kind = Literal["call", "event"]


class NoSuchHoldError(BusError, LookupError):
    """A hold, or a held item, that is not (or no longer) there."""


def check_seconds(seconds: object, what: str = "seconds") -> float:
    """``seconds`` as a float if it is a number in (0, ``MAX_SECONDS``], else raise."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{what} must be a number, not {type(seconds).__name__}")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_SECONDS):
        raise ValueError(f"{what} must be more than 0 and at most {MAX_SECONDS:g}, not {seconds}")
    return float(seconds)


@dataclass(eq=False)
class Hold:
    """One hold: what it catches, until when, and how much it has caught.

    Attributes:
        id: its number on this bus (``unhold`` takes it).
        pattern: the command or event names it catches (``lights.*``).
        kind: ``"call"``, ``"event"`` or ``None`` for both.
        service: only work for this service, or ``None`` for any.
        seconds: how long it lasts.
        created: when it was set, seconds since the epoch.
        caught: how many items it has caught.
    """

    id: int
    pattern: str
    kind: Kind | None
    service: str | None
    seconds: float
    created: float = field(default_factory=time.time)
    caught: int = 0
    _until: float = 0.0
    _timer: TimerHandle | None = None

    def matches(self, kind: Kind, name: str, service: str) -> bool:
        """Whether work of ``kind`` named ``name`` for ``service`` is caught."""
        if self.kind is not None and self.kind != kind:
            return False
        if self.service is not None and self.service != service:
            return False
        return pattern_matches(self.pattern, name)

    def describe(self, held: int) -> dict[str, Any]:
        """JSON-ready: id, pattern, kind, service, created, expires_in, caught, held."""
        return {
            "id": self.id,
            "pattern": self.pattern,
            "kind": self.kind,
            "service": self.service,
            "created": self.created,
            "expires_in": round(max(0.0, self._until - time.monotonic()), 3),
            "caught": self.caught,
            "held": held,
        }


@dataclass(eq=False)
class Held:
    """One item a hold caught: a command call or an event delivery.

    Attributes:
        id: its number on this bus (``release`` and ``drop`` take it).
        hold: the hold that caught it.
        kind: ``"call"`` or ``"event"``.
        name: the command, or the event.
        handler: the command's handler, or the listener's.
        runtime: the mailbox it was on its way to.
        args: the positional arguments it was posted with.
        kwargs: the keyword arguments.
        since: when it was caught, seconds since the epoch.
    """

    id: int
    hold: Hold
    kind: Kind
    name: str
    handler: Handler
    runtime: Runtime
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tag: Any
    ticket: Any
    since: float = field(default_factory=time.time)
    _caught: float = field(default_factory=time.monotonic)

    @property
    def waited(self) -> float:
        """Seconds it has been held."""
        return time.monotonic() - self._caught

    @property
    def cancelled(self) -> bool:
        """Whether the caller cancelled a held call (it will not run)."""
        return self.kind == "call" and self.tag.cancelled()

    def describe(self) -> dict[str, Any]:
        """Its fields, with the raw ``args`` and ``kwargs`` (the caller encodes them)."""
        data: dict[str, Any] = {
            "id": self.id,
            "hold": self.hold.id,
            "kind": self.kind,
            "name": self.name,
            "service": self.runtime.name,
            "handler": self.handler.qualname,
            "args": self.args,
            "kwargs": self.kwargs,
            "since": self.since,
            "waited": round(self.waited, 3),
        }
        if self.kind == "event":
            data["pattern"] = self.handler.name
        else:
            data["cancelled"] = self.cancelled
        return data
