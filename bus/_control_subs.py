"""A console's subscription to the bus's activity or spans, and line encoding.

``Subscription`` registers with ``Bus.watch`` (activity) or
``SpanRing.observe`` (spans) and hands what it gets to its connection's
queue; the connection's writer thread encodes it with ``encode``. Its
counters are guarded by the connection's lock.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._activity import Activity
from ._patterns import pattern_matches

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from ._control_conn import Connection

__all__ = ["Subscription", "dumps", "safe_repr"]


def dumps(message: Any) -> bytes:
    """One line of strict JSON (no NaN), UTF-8, ending in a newline.

    Raises:
        TypeError, ValueError: the message is not JSON-serialisable.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate (from "\ud800" in a request): escape it
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when that raises."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


class Subscription:
    """One ``subscribe`` of a connection. Counters are guarded by the connection's lock."""

    __slots__ = (
        "_conn",
        "_handle",
        "buffer",
        "closed",
        "dropped",
        "id",
        "marker",
        "match_all",
        "patterns",
        "queued",
        "topic",
        "unreported",
    )

    def __init__(
        self, conn: Connection, sid: int, topic: str, patterns: tuple[str, ...], buffer: int
    ) -> None:
        self._conn = conn
        self.id = sid
        self.topic = topic
        self.patterns = patterns
        self.match_all = "*" in patterns
        self.buffer = buffer
        self.queued = 0  # notifications in the outgoing queue
        self.dropped = 0  # in all
        self.unreported = 0  # since the last ``dropped`` notification
        self.marker = False  # a ``dropped`` notification is queued
        self.closed = False
        self._handle: Any = None

    def matches(self, name: str) -> bool:
        """Whether one of the patterns matches the command or event ``name``."""
        return self.match_all or any(pattern_matches(p, name) for p in self.patterns)

    def start(self) -> None:
        """Begin receiving from the bus (after the subscribe reply is queued)."""
        bus = self._conn.bus
        if self.topic == "activity":
            self._handle = bus.watch(self._on_activity)
        else:
            self._handle = bus.spans.observe(self._on_spans)

    def stop(self) -> None:
        """Stop receiving; queued notifications are not sent. Idempotent."""
        self.closed = True
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.dispose()

    # On the bus's threads (activity) or its trace thread (spans): never block.
    def _on_activity(self, activity: Activity) -> None:
        if self.match_all or self.matches(activity.name):
            self._conn.notify(self, activity)

    def _on_spans(self, spans: list[ReadableSpan]) -> None:
        self._conn.notify(self, spans)

    # On the writer thread.
    def encode(self, payload: Any) -> bytes | None:
        """The notification line for ``payload``, or ``None`` when nothing matches."""
        if self.topic == "activity":
            params = {"subscription": self.id, "activity": payload.to_json()}
            return dumps({"jsonrpc": "2.0", "method": "activity", "params": params})
        from ._otlp import encode_spans

        spans = payload if self.match_all else [s for s in payload if self.matches(_span_key(s))]
        if not spans:
            return None
        params = {"subscription": self.id, "data": encode_spans(spans)}
        return dumps({"jsonrpc": "2.0", "method": "spans", "params": params})


def _span_key(span: ReadableSpan) -> str:
    """The command or event name a span is about (what patterns match)."""
    attrs = span.attributes or {}
    for key in ("rpc.method", "messaging.destination.name"):
        value = attrs.get(key)
        if isinstance(value, str):
            return value
    return span.name
