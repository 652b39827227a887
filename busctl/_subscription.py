"""One ``subscribe`` on a control connection: its notifications, its end.

subscription = client.subscribe("activity", on_note, patterns=["lights.*"])
...
dropped = subscription.close()       # the server's count of what it dropped
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._remote import ConnectionLost, RemoteError

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Subscription"]


class Subscription:
    """One ``subscribe`` on a connection; ``close()`` ends it.

    Attributes:
        id: the server's subscription id.
        topic: ``"activity"`` or ``"spans"``.
        patterns: the name patterns it was opened with.
        params: the ``subscribe`` params sent (the transport's, for its ``feed_closed``).
        dropped: notifications the server dropped for this subscription so far
            (the latest ``total`` of a ``dropped`` notification).
    """

    def __init__(
        self,
        client: Client,
        topic: str,
        patterns: tuple[str, ...],
        callback: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.id: Any = None
        self.topic = topic
        self.patterns = patterns
        self.params: dict[str, Any] = {}
        self.dropped = 0
        self._client = client
        self._callback = callback
        self._closed = False

    def _deliver(self, method: str, params: dict[str, Any]) -> None:
        if self._closed:
            return
        if method == "dropped":
            total = params.get("total")
            if isinstance(total, int):
                self.dropped = total
        try:
            self._callback(method, params)
        except Exception as exc:  # one broken callback must not flood the log either
            self._client.bad_callbacks("subscription callback failed on %s", method, exc=exc)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called or the connection ended."""
        return self._closed or self._client.closed

    def close(self, timeout: float | None = 5.0) -> int:
        """Unsubscribe; return the server's final dropped count. Idempotent.

        Blocks up to ``timeout`` seconds for the server's reply. What the
        server sent before its reply still reaches the callback meanwhile (a
        capture keeps its last spans); once ``close`` returns, the callback
        is not called again.
        """
        if self._closed:
            return self.dropped
        try:
            if not self._client.closed:
                with contextlib.suppress(ConnectionLost, RemoteError, TimeoutError):
                    result = self._client.request(
                        "unsubscribe", {"subscription": self.id}, timeout=timeout
                    )
                    if isinstance(result, dict) and isinstance(result.get("dropped"), int):
                        self.dropped = result["dropped"]
        finally:
            self._closed = True
            self._client._forget(self)
        return self.dropped

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.topic} {list(self.patterns)}>"
