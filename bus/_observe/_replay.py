"""Replay marking: what a replay sends is marked as a replay of the recorded span.

``busctl replay`` and the control protocol's ``replay_of`` param send work
inside ``replaying(trace_id, span_id)``; the hub marks the records made there
(``mark_replay``), so the spans say what they replay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from ._records import Extras

__all__ = ["REPLAY_KEY", "replay_extras", "replaying"]

REPLAY_KEY = otel_context.create_key("bus.replay_of")
"""The context key under which ``replaying`` puts the recorded span."""


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


def replay_extras(ctx: otel_context.Context) -> Extras | None:
    """The marking of a call or fire made under ``replaying`` (on the hot path).

    ``None`` when ``ctx`` is not a replay's. The handler's own sends are not
    marked: they are caused by the replay, not replays themselves, and a
    handler runs in a context of its own.
    """
    recorded = ctx.get(REPLAY_KEY)
    if not isinstance(recorded, SpanContext):
        return None
    return {"bus.replayed": True}, None, [trace.Link(recorded, {"bus.replay": True})]
