"""The activity stream: every command and event as it starts and ends.

``Bus.watch(callback)`` calls ``callback(activity)`` on the thread where the
thing happens, so callbacks must be quick and must not block; the console's
subscribers copy the record into a bounded buffer and return. A callback that
raises is logged and counted, and never disturbs the bus.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .._core._context import hex_id
from .._core._errors import error_message

__all__ = ["Activity", "ActivityKind", "error_dict", "hex_id"]

ActivityKind = Literal["call", "return", "event", "delivery"]


@dataclass(frozen=True, slots=True)
class Activity:
    """One step of traffic on the bus.

    Attributes:
        kind: ``call`` (a command was sent), ``return`` (it finished),
            ``event`` (an event was fired) or ``delivery`` (one listener
            finished with it).
        name: the command or event name.
        time: when it happened, seconds since the epoch.
        service: the handling service (``call``/``return``/``delivery``).
        caller: the service or thread that sent it (``call``/``event``).
        args: the positional arguments as bounded JSON text.
        kwargs: the keyword arguments as bounded JSON text, if any.
        result: the result as bounded JSON text (``return`` without error).
        error: ``{"type", "message"}`` when the handler raised.
        duration_ms: how long the handler ran (``return``/``delivery``).
        queued_ms: how long the work waited in the mailbox.
        listeners: how many listeners the event reached (``event``).
        pattern: the listener's pattern (``delivery``).
        thread: the thread that ran the handler.
        trace_id: the trace, as 32 hex digits, when tracing is on.
        span_id: the span of this step (SERVER, PRODUCER or CONSUMER).
        parent_span_id: the span that caused it, if any.
        stubbed: ``True`` on the ``return`` of a call a live stub answered
            (known from its span: set when tracing is on).
        seq: a number increasing with every activity of one bus.
    """

    kind: ActivityKind
    name: str
    time: float
    seq: int = 0
    service: str | None = None
    caller: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    error: dict[str, str] | None = None
    duration_ms: float | None = None
    queued_ms: float | None = None
    listeners: int | None = None
    pattern: str | None = None
    thread: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    stubbed: bool | None = None

    @property
    def ok(self) -> bool:
        """Whether no handler error is attached."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, without the fields that are ``None``."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def dumps(self) -> str:
        """The activity as one line of JSON."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def error_dict(error: BaseException) -> dict[str, str]:
    """An error as an activity's ``error`` field: its type and message."""
    return {"type": type(error).__qualname__, "message": error_message(error)}
