"""The observer seam: the one interface through which the core reports its work.

The core (verbs, routing, mailboxes, threads) knows nothing of spans, activity
streams or consoles. It tells one ``Observer`` what happens, at the moments
it happens, and the observe layer turns that into OpenTelemetry spans, the
activity stream and the console's notifications. With no observer installed
(tracing off and nothing watching) the core calls nothing at all, which is
its fastest path.

Every hook runs on the thread where the thing happens, so each must be quick
and must never raise (the observe layer guards its own user callbacks).

A *ticket* is whatever ``call_sent`` or ``delivery_queued`` returned for one
command or delivery: the core carries it with the work, unread, and hands it
back to the later hooks. ``None`` means "not observed": the core then makes no
further call for that piece of work. A *scope* is what ``call_started`` or
``delivery_started`` returned, handed back to ``handler_returned`` and the
end hooks. An observer, once installed, stays for the life of the bus, so a
ticket always finds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._router import Handler
    from ._worker import Worker

__all__ = ["Observer"]


class Observer(Protocol):
    """What the core tells the observe layer."""

    # -- commands ------------------------------------------------------------

    def call_sent(self, handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A command is about to be posted (caller's thread); returns its ticket."""

    def call_refused(self, ticket: Any, handler: Handler, error: BaseException) -> None:
        """The command never ran: refused, cancelled before it started, or failed at close."""

    def call_started(self, ticket: Any, worker: Worker) -> Any:
        """The handler is about to run (its thread); returns a scope for ``handler_returned``."""

    def handler_returned(self, scope: Any) -> None:
        """The handler returned or raised; called at once, before anything else."""

    def call_ended(
        self,
        ticket: Any,
        scope: Any,
        handler: Handler,
        worker: Worker,
        error: BaseException | None,
        elapsed: float,
        result: Any,
    ) -> None:
        """The command finished (its thread), before its future is resolved."""

    # -- events ------------------------------------------------------------------

    def event_fired(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
    ) -> Any:
        """``fire_event`` was called (firer's thread); returns the event's ticket."""

    def delivery_queued(self, event: Any, handler: Handler) -> Any:
        """One listener's delivery is about to be posted; returns its ticket."""

    def delivery_refused(self, ticket: Any, handler: Handler, error: BaseException) -> None:
        """A delivery the listener's mailbox refused: it will never run."""

    def event_posted(self, event: Any) -> None:
        """Every delivery of the event has been posted (or refused)."""

    def delivery_started(self, ticket: Any, worker: Worker) -> Any:
        """The listener is about to run (its thread); returns a scope for ``handler_returned``."""

    def delivery_ended(
        self,
        ticket: Any,
        scope: Any,
        handler: Handler,
        worker: Worker,
        event: str,
        error: BaseException | None,
        elapsed: float,
    ) -> None:
        """The listener finished (its thread)."""

    # -- a console's holds -------------------------------------------------------------

    def held(
        self,
        ticket: Any,
        held_ms: float,
        original: tuple[tuple[Any, ...], dict[str, Any]] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Held work leaves its hold, released or dropped (any thread).

        ``original`` is the arguments it was held with when a console edited
        them (``args`` and ``kwargs`` are then the new ones), else ``None``.
        Returns the ticket to carry on with (the same, or a new one).
        """

    # -- what a handler may ask ----------------------------------------------------

    def trace_ids(self, scope: Any) -> tuple[int, int] | None:
        """``(trace_id, span_id)`` of the span of a running delivery, from its scope."""
