"""A console's subscriptions to the bus's activity or spans, and line encoding.

A connection watches the bus once per topic, however many subscriptions it
has: a ``Fanout`` holds its subscriptions of one topic and answers, for a
command or event name, which of them it reaches, remembering the answer, so
a name that reaches none costs one dictionary look-up on the bus's threads.
The connection's writer thread encodes what was queued with
``Subscription.encode``. A subscription's counters are guarded by its
connection's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core._patterns import pattern_matches
from .._observe._activity import Activity
from . import protocol
from .protocol import dumps

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "MAX_PATTERNS",
    "Fanout",
    "Subscription",
    "activity_cost",
    "safe_repr",
    "span_cost",
    "span_key",
]

#: The most patterns one ``subscribe`` may give.
MAX_PATTERNS = 64
#: Names whose subscriptions a ``Fanout`` remembers before it starts again.
_ROUTE_LIMIT = 1024
#: What an activity record or a span costs queued, beyond the text it holds (bytes).
_ACTIVITY_OVERHEAD = 400
_SPAN_OVERHEAD = 1000


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when that raises."""
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def activity_cost(activity: Activity) -> int:
    """About how many bytes ``activity`` holds while it waits to be written."""
    cost = _ACTIVITY_OVERHEAD + len(activity.name)
    for text in (activity.args, activity.kwargs, activity.result):
        if text is not None:
            cost += len(text)
    if activity.error is not None:
        cost += sum(len(str(v)) for v in activity.error.values())
    return cost


def span_cost(span: ReadableSpan) -> int:
    """About how many bytes ``span`` holds while it waits to be written."""
    cost = _SPAN_OVERHEAD + len(span.name)
    for value in (span.attributes or {}).values():
        if isinstance(value, str):
            cost += len(value)
    for event in span.events:
        for value in (event.attributes or {}).values():
            if isinstance(value, str):
                cost += len(value)
    return cost


def span_key(span: ReadableSpan) -> str:
    """The command or event name a span is about (what patterns match)."""
    attrs = span.attributes or {}
    for key in ("rpc.method", "messaging.destination.name"):
        value = attrs.get(key)
        if isinstance(value, str):
            return value
    return span.name


class Subscription:
    """One ``subscribe`` of a connection. Counters are guarded by the connection's lock.

    Its patterns are sorted once into exact names (one set look-up) and
    globs (matched in linear time each).
    """

    __slots__ = (
        "buffer",
        "closed",
        "dropped",
        "exact",
        "globs",
        "id",
        "marker",
        "match_all",
        "patterns",
        "queued",
        "topic",
        "unreported",
    )

    def __init__(self, sid: int, topic: str, patterns: tuple[str, ...], buffer: int) -> None:
        self.id = sid
        self.topic = topic
        self.patterns = patterns
        self.match_all = "*" in patterns
        self.exact = frozenset(p for p in patterns if "*" not in p)
        self.globs = tuple(dict.fromkeys(p for p in patterns if "*" in p))
        self.buffer = buffer
        self.queued = 0  # notifications in the outgoing queue
        self.dropped = 0  # in all
        self.unreported = 0  # since the last ``dropped`` notification
        self.marker = False  # a ``dropped`` notification is queued
        self.closed = False

    def matches(self, name: str) -> bool:
        """Whether one of the patterns matches the command or event ``name``."""
        return (
            self.match_all
            or name in self.exact
            or any(pattern_matches(p, name) for p in self.globs)
        )

    # On the writer thread.
    def encode(self, payload: Any) -> bytes:
        """The notification line for ``payload`` (an activity, or the spans that matched)."""
        if self.topic == "activity":
            params = {"subscription": self.id, "activity": payload.to_json()}
            return dumps(protocol.notification("activity", params))
        from .._observe._otlp import encode_spans

        params = {"subscription": self.id, "data": encode_spans(payload)}
        return dumps(protocol.notification("spans", params))


class Fanout:
    """A connection's subscriptions to one topic, matched as one.

    ``route`` runs on the bus's threads without a lock; ``add`` and
    ``remove`` run under the connection's lock and replace what ``route``
    reads, the subscriptions before the remembered routes, so a route worked
    out from the old subscriptions lands in a dictionary no one reads.
    """

    __slots__ = ("_routes", "subscriptions")

    def __init__(self) -> None:
        self.subscriptions: tuple[Subscription, ...] = ()
        self._routes: dict[str, tuple[Subscription, ...]] = {}

    def add(self, subscription: Subscription) -> None:
        self.subscriptions = (*self.subscriptions, subscription)
        self._routes = {}

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)
        self._routes = {}

    def route(self, name: str) -> tuple[Subscription, ...]:
        """The subscriptions whose patterns match ``name``, in the order they were made."""
        routes = self._routes
        found = routes.get(name)
        if found is None:
            found = tuple(s for s in self.subscriptions if s.matches(name))
            if len(routes) >= _ROUTE_LIMIT:
                routes.clear()
            routes[name] = found
        return found
