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

from collections.abc import Callable
from typing import Any

from .._core._patterns import pattern_matches
from .._observe._activity import Activity
from .._observe._jsonval import Encoded
from .._observe._records import CALL, Flat, span_count
from . import protocol
from .protocol import dumps

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


def span_cost(record: Flat) -> int:
    """About how many bytes the spans of ``record`` hold while they wait to be written."""
    cost = _SPAN_OVERHEAD * span_count(record)
    for value in record:
        if type(value) is str:
            cost += len(value)
        elif type(value) is Encoded:
            cost += len(value.text)
    return cost


def span_key(record: Flat) -> str:
    """The command or event name a record's spans are about (what patterns match)."""
    return record[5] if record[0] == CALL else record[4]  # type: ignore[no-any-return]


class Subscription:
    """One ``subscribe`` of a connection. Counters are guarded by the connection's lock.

    Its patterns are sorted once into exact names (one set look-up) and
    globs (matched in linear time each).
    """

    __slots__ = (
        "buffer",
        "closed",
        "drain",
        "dropped",
        "exact",
        "globs",
        "hold",
        "id",
        "lossless",
        "marker",
        "match_all",
        "otlp",
        "patterns",
        "queued",
        "topic",
        "unreported",
    )

    def __init__(
        self,
        sid: int,
        topic: str,
        patterns: tuple[str, ...],
        buffer: int,
        otlp: Callable[[list[Flat]], dict[str, Any]] | None = None,
        *,
        lossless: bool = False,
    ) -> None:
        self.id = sid
        # A lossless subscription makes the trace thread wait for room in its
        # queue (bounded) instead of dropping, and holds the bus's tracing
        # lossless (``hold``) while it is open.
        self.lossless = lossless
        self.hold: Any = None
        self.otlp = otlp  # how the spans of records become OTLP JSON (the ring's)
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
        self.drain = False  # closed, but what it has queued is still written

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
        assert self.otlp is not None
        params = {"subscription": self.id, "data": self.otlp(payload)}
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
