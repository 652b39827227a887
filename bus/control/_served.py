"""What the control server needs of the bus it serves.

``ServedBus`` is ``bus.Bus`` seen from the control floor, which sits below
the assembled bus and must not import it: the server reaches the bus only
through these public members.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .._core._events import EventTable
from .._core._future import CommandFuture
from .._core._holds import Holds
from .._core._router import Handler, Router
from .._core._service import Disposable
from .._core._stubs import Stubs
from .._observe._activity import Activity
from .._observe._ring import SpanRing

__all__ = ["ServedBus"]


class ServedBus(Protocol):
    """The public face of ``bus.Bus`` that the control server uses."""

    name: str
    pid: int
    started_at: float
    spans: SpanRing
    router: Router
    events: EventTable
    holds: Holds
    stubs: Stubs
    redact: Any

    def execute_command(self, name: str, /, *args: Any, **kwargs: Any) -> CommandFuture:
        """See ``Bus.execute_command``."""

    def execute_converted(
        self, handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CommandFuture:
        """See ``Bus.execute_converted``."""

    def fire_event(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """See ``Bus.fire_event``."""

    def fire_counted(self, name: str, /, *args: Any, **kwargs: Any) -> int:
        """See ``Bus.fire_counted``."""

    def inspect(self) -> dict[str, Any]:
        """See ``Bus.inspect``."""

    def watch(self, callback: Callable[[Activity], None]) -> Disposable:
        """See ``Bus.watch``."""

    def flush_traces(self, timeout: float | None = 10.0) -> bool:
        """See ``Bus.flush_traces``."""

    def wait_idle(self, timeout: float | None = 10.0) -> bool:
        """See ``Bus.wait_idle``."""

    def lossless_tracing(self) -> Disposable:
        """See ``Bus.lossless_tracing``."""
