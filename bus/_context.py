"""What a running listener can ask about the event it is handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from ._activity import hex_id
from ._runtime import current_worker

__all__ = ["EventInfo", "current_event", "replaying"]

REPLAY_KEY = otel_context.create_key("bus.replay_of")
"""The context key under which ``replaying`` puts the recorded span."""


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

    Call it from the listener's own thread, while the listener runs.
    """
    worker = current_worker()
    if worker is None or worker.event is None or worker.current is None:
        return None
    _, args, kwargs, name, ticket = worker.event
    observer = worker.runtime.bus.observer
    ids = None if ticket is None or observer is None else observer.trace_ids(ticket)
    return EventInfo(
        name=name,
        args=args,
        kwargs=dict(kwargs),
        pattern=worker.current.name,
        service=worker.runtime.name,
        trace_id=hex_id(ids[0], 32) if ids else None,
        span_id=hex_id(ids[1], 16) if ids else None,
    )


@contextlib.contextmanager
def replaying(trace_id: str, span_id: str) -> Iterator[None]:
    """Mark what this thread sends inside the block as a replay of a recorded span.

    The SERVER span of each command executed, and the PRODUCER span of each
    event fired, directly inside the block get ``bus.replayed = true`` and a
    link (attribute ``bus.replay = true``) to the recorded span. What their
    handlers send in turn is not marked: it is caused by the replay, and sits
    under it in the same trace. Used by ``busctl replay`` and the control
    protocol's ``replay_of`` param.

    Raises:
        ValueError: the ids are not 32 and 16 hex digits.
    """
    recorded = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(1)
    )
    if len(trace_id) != 32 or len(span_id) != 16 or not recorded.is_valid:
        raise ValueError(f"not a span to replay: trace {trace_id!r}, span {span_id!r}")
    token = otel_context.attach(otel_context.set_value(REPLAY_KEY, recorded))
    try:
        yield
    finally:
        otel_context.detach(token)


def mark_replay(record: Any, ctx: otel_context.Context) -> None:
    """Mark a call or fire record made under ``replaying`` (called on the hot path)."""
    recorded = ctx[REPLAY_KEY]
    if not isinstance(recorded, SpanContext):
        return
    record.links = [trace.Link(recorded, {"bus.replay": True})]
    record.annotations = {"bus.replayed": True}
    # The handler's own sends are caused by the replay, not replays themselves.
    record.parent_ctx = otel_context.set_value(REPLAY_KEY, None, ctx)
