"""What a running listener can ask about the event it is handling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._worker import current_run, current_worker

__all__ = ["EventInfo", "current_event", "hex_id"]


def hex_id(value: int, width: int) -> str | None:
    """An OpenTelemetry id as lower-case hex, or ``None`` for 0."""
    return format(value, f"0{width}x") if value else None


@dataclass(frozen=True, slots=True)
class EventInfo:
    """The event a listener is handling.

    Attributes:
        name: the event's name (what a wildcard listener needs).
        args: the positional arguments given to ``fire_event``.
        kwargs: the keyword arguments given to ``fire_event``.
        pattern: the pattern this listener registered with.
        service: the service running the listener.
        trace_id: the trace as 32 hex digits, or ``None`` with tracing off.
        span_id: the listener's CONSUMER span, or ``None`` with tracing off.
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    pattern: str
    service: str
    trace_id: str | None
    span_id: str | None


def current_event() -> EventInfo | None:
    """The event the calling listener is handling, or ``None`` outside a listener.

    Call it from the listener's own thread, while the listener runs (in an
    async listener, from its task, across its awaits).
    """
    worker = current_run.get() or current_worker()
    if worker is None or worker.event is None or worker.current is None:
        return None
    _, args, kwargs, name, ticket = worker.event
    observer = worker.runtime.bus.observer
    ids = None if ticket is None or observer is None else observer.trace_ids(worker.scope)
    return EventInfo(
        name=name,
        args=args,
        kwargs=dict(kwargs),
        pattern=worker.current.name,
        service=worker.runtime.name,
        trace_id=hex_id(ids[0], 32) if ids else None,
        span_id=hex_id(ids[1], 16) if ids else None,
    )
