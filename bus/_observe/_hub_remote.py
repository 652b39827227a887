"""The hub's side of the transport: a command or an event crossing processes.

A mixin of ``Hub`` (``_hub``): the NATS transport (``bus._nats``) calls these
where work leaves this process or arrives from another, so that each process
records its own half of a span pair under one trace (``_records`` says how
``hop`` and ``wire`` mark them). Nothing in one process calls them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._activity import error_dict
from ._ctx import current, parent_ids
from ._jsonval import Encoded, Redactor
from ._records import WATCHED, CallRecord, Flat, freeze

if TYPE_CHECKING:
    from .._core._router import Handler
    from ._sink import TraceSink

__all__ = ["RemoteHops"]

_bits = random.getrandbits
_time_ns = time.time_ns


class RemoteHops:
    """What the transport tells the hub (any thread)."""

    sink: TraceSink | None
    json_limit: int
    redact: Redactor | None
    watchers: tuple[Callable[..., None], ...]
    taps: tuple[Callable[[str, tuple[Any, ...], dict[str, Any]], None], ...]
    _submit: Callable[[Flat], None]

    if TYPE_CHECKING:  # Hub's, which this is a part of

        def _encoded(self, value: Any) -> Encoded: ...

        def head_parts(self, head: Any) -> tuple[int, int, str, int, Any]: ...

        def _emit_return(
            self,
            record: CallRecord | None,
            handler: Handler,
            result: str | None,
            error: dict[str, str] | None,
            elapsed: float,
            thread: str | None,
            stubbed: bool | None = None,
        ) -> None: ...

    def remote_call(self, ticket: Any, wire: dict[str, Any]) -> tuple[int, int] | None:
        """A command is being sent to a handler in another process (caller's side).

        Its record will make the CLIENT span alone (the handler's process
        makes the SERVER span under it), with the transport's ``wire``
        attributes. Returns ``(trace_id, span_id)`` of that CLIENT span, for
        the trace context to send with it, or ``None`` untraced.
        """
        if type(ticket) is not CallRecord:
            return None
        ticket.hop = "client"
        ticket.wire = wire
        return ticket.trace_id, ticket.client_id

    def call_replied(
        self,
        ticket: Any,
        handler: Handler,
        error: BaseException | None,
        result: Any,
        elapsed: float,
    ) -> None:
        """A command sent with ``remote_call`` has its outcome (caller's side)."""
        record = ticket if type(ticket) is CallRecord else None
        result_text = None
        if record is not None:
            record.handled_ns = record.sent_ns
            record.thread = ""
            if error is None:
                frozen = freeze(result, self.json_limit, self.redact)
                if self.watchers:
                    frozen = self._encoded(frozen)
                    result_text = frozen.text
                self._submit(record.flat(_time_ns(), frozen, None, None, None))
            else:
                self._submit(record.flat(_time_ns(), None, error, error.__traceback__, None))
        if self.watchers:
            if error is None and result_text is None:
                result_text = self._encoded(result).text
            failure = error_dict(error) if error is not None else None
            self._emit_return(record, handler, result_text, failure, elapsed, None)

    def served_call(self, ticket: Any, wire: dict[str, Any], caller: str | None) -> None:
        """A command from another process is about to be posted here (handler's side).

        ``call_sent`` made its ticket with the sender's trace context current:
        its record makes the SERVER span alone, under the sender's CLIENT span.
        """
        if type(ticket) is CallRecord:
            ticket.hop = "server"
            ticket.wire = wire
            if caller:
                ticket.caller = caller

    def remote_event(self, event: Any, wire: dict[str, Any]) -> tuple[int, int] | None:
        """An event fired here is being sent to other processes (sender's side).

        Its PRODUCER span gets the transport's ``wire`` attributes. Returns
        ``(trace_id, span_id)`` of that span, for the trace context to send.
        """
        if type(event) is not list:
            return None
        event[5] = wire
        trace_id, span_id, _, _ = event[6]
        return trace_id, span_id

    def remote_fired(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
        wire: dict[str, Any],
    ) -> Any:
        """An event fired in another process reaches this one's listeners.

        Called with the sender's trace context current (if it sent one): the
        deliveries' CONSUMER spans then hang under the sender's PRODUCER
        span, and this process records no PRODUCER span. Without one, it
        records the PRODUCER span itself. Returns the ticket to pass to
        ``delivery_queued`` and ``event_posted``.
        """
        for tap in self.taps:
            tap(name, args, kwargs)
        if self.sink is None:
            return WATCHED if self.watchers else None
        parent = parent_ids(current())
        if parent is not None:  # the sender's PRODUCER span is the deliveries' parent
            return (parent[0], parent[1], name, _time_ns(), wire)
        frozen = freeze(args, self.json_limit, self.redact)
        frozen_kw = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
        head = (_bits(128), _bits(64), name, _time_ns(), wire)
        return [head, 0, frozen, frozen_kw, None, wire, head[:4], len(listeners)]
