"""The bus's observer: spans, the activity stream and event taps, behind one seam.

``Hub`` implements ``Observer`` (see ``_observer``): the core tells it what
happens, and it writes trace records for the trace thread, builds
``Activity`` for the watchers (``Bus.watch``) and calls the taps
(``bus.testing.capture_events``). It is installed once something observes
the bus (tracing, a watcher or a tap) and stays for the bus's life; with
none of them left it costs the core one attribute read per piece of work.

A ticket (what the core carries with each command or delivery) is the trace
record when tracing is on, else ``WATCHED`` when only watchers look, else
``None``.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._core._ratelog import RateLimitedLog
from .._core._worker import current_worker
from ._activity import Activity, hex_id
from ._jsonval import Encoded, Redactor
from ._records import BusSpan, CallRecord, DeliveryRecord, FireRecord, encoded_text, freeze
from ._replay import REPLAY_KEY, mark_replay

if TYPE_CHECKING:
    from .._core._router import Handler
    from .._core._worker import Worker
    from ._sink import TraceSink

__all__ = ["WATCHED", "Hub", "Tap", "Watcher"]

log = logging.getLogger("bus")

Watcher = Callable[[Activity], None]
Tap = Callable[[str, tuple[Any, ...], dict[str, Any]], None]


class _Watched:
    """The ticket of work that is watched but not traced."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WATCHED"


WATCHED: Any = _Watched()

_get_current = otel_context.get_current
_get_span = trace.get_current_span
_set_span = trace.set_span_in_context
_attach, _detach = otel_context.attach, otel_context.detach
_bits = random.getrandbits
_time_ns = time.time_ns
_tls = threading.local()  # per thread: the caller name recorded on its spans


def _caller() -> str:
    """The name the calling thread is recorded under: its service's, or its own."""
    try:
        return _tls.caller  # type: ignore[no-any-return]
    except AttributeError:
        worker = current_worker()
        name = worker.runtime.name if worker is not None else threading.current_thread().name
        _tls.caller = name
        return name


def _error_dict(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__qualname__, "message": str(error)}


class Hub:
    """The ``Observer`` of one bus: tracing, watchers and taps.

    Args:
        bus_name: the bus's name (for the caller of work sent from nowhere).
        sink: where finished records go to become spans; ``None`` untraced.
        json_limit: the most characters recorded per argument list or result.
        redact: the redaction hook for keyword arguments and dict entries.
    """

    def __init__(self, sink: TraceSink | None, *, json_limit: int, redact: Redactor | None) -> None:
        self.sink = sink
        self.json_limit = json_limit
        self.redact = redact
        self.watchers: tuple[Watcher, ...] = ()
        self.taps: tuple[Tap, ...] = ()
        self.watch_errors = 0
        self._watch_log = RateLimitedLog(log)  # a watcher failing on every step logs once a second
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    # -- who listens (any thread) --------------------------------------------

    def add_watcher(self, callback: Watcher) -> None:
        """Call ``callback(activity)`` for every step of traffic from now on."""
        with self._lock:
            self.watchers = (*self.watchers, callback)

    def remove_watcher(self, callback: Watcher) -> None:
        """Stop calling ``callback`` (no-op when it is not there)."""
        with self._lock:
            self.watchers = tuple(w for w in self.watchers if w is not callback)

    def add_tap(self, tap: Tap) -> None:
        """Call ``tap(name, args, kwargs)`` with the raw values of every event fired."""
        with self._lock:
            self.taps = (*self.taps, tap)

    def remove_tap(self, tap: Tap) -> None:
        """Stop calling ``tap``."""
        with self._lock:
            self.taps = tuple(t for t in self.taps if t is not tap)

    # -- commands ------------------------------------------------------------

    def call_sent(self, handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        record = None
        if self.sink is not None:
            record = self._call_record(handler.name, args, kwargs, handler.destination.name)
        if self.watchers:
            if record is not None:  # encoded once, for the span and the activity alike
                record.args = args_text = self._encoded(record.args)
                kwargs_text = record.kwargs = self._encoded(record.kwargs) if kwargs else None
            else:
                args_text = self._encoded(args)
                kwargs_text = self._encoded(kwargs) if kwargs else None
            self._emit(
                "call",
                handler.name,
                service=handler.destination.name,
                caller=_caller(),
                args=args_text.text,
                kwargs=kwargs_text.text if kwargs_text is not None else None,
                trace_id=hex_id(record.trace_id, 32) if record else None,
                span_id=hex_id(record.server_id, 16) if record else None,
                parent_span_id=hex_id(record.client_id, 16) if record else None,
            )
            return record if record is not None else WATCHED
        return record

    def call_refused(self, ticket: Any, handler: Handler, error: BaseException) -> None:
        record = ticket if type(ticket) is CallRecord else None
        if record is not None:
            record.status_message = f"{type(error).__name__}: {error}"
            record.handled_ns = record.end_ns = _time_ns()
            record.thread = ""
            record.result = record.error = None
            self._submit(record)
        if self.watchers:
            self._emit_return(record, handler, None, _error_dict(error), 0.0, None)

    def call_started(self, ticket: Any, worker: Worker) -> Any:
        if type(ticket) is not CallRecord:
            return None
        record: CallRecord = ticket
        record.handled_ns = _time_ns()
        record.thread = worker.thread_name
        span = BusSpan(record, record.trace_id, record.server_id)
        token = _attach(_set_span(span, record.parent_ctx))
        record.parent_ctx = None  # attached: keep ids, not the caller's context
        return span, token

    def handler_returned(self, scope: Any) -> None:
        if scope is not None:
            span, token = scope
            _detach(token)
            span.release()

    def call_ended(
        self,
        ticket: Any,
        handler: Handler,
        worker: Worker,
        error: BaseException | None,
        elapsed: float,
        result: Any,
    ) -> None:
        record = ticket if type(ticket) is CallRecord else None
        result_text = None
        if record is not None:
            record.end_ns = _time_ns()
            record.error = error
            if error is None:
                record.result = freeze(result, self.json_limit, self.redact)
                if self.watchers:  # encoded once, for the span and the activity alike
                    record.result = self._encoded(record.result)
                    result_text = record.result.text
            else:
                record.result = None
                record.traceback = _handler_frames(error)
            self._submit(record)
        if self.watchers:
            if error is None and result_text is None:
                result_text = self._encoded(result).text
            self._emit_return(
                record,
                handler,
                result_text,
                _error_dict(error) if error is not None else None,
                elapsed,
                worker.thread_name,
            )

    def _emit_return(
        self,
        record: CallRecord | None,
        handler: Handler,
        result: str | None,
        error: dict[str, str] | None,
        elapsed: float,
        thread: str | None,
    ) -> None:
        self._emit(
            "return",
            handler.name,
            service=handler.destination.name,
            result=result,
            error=error,
            duration_ms=round(elapsed * 1000, 3),
            queued_ms=round((record.handled_ns - record.sent_ns) / 1e6, 3) if record else None,
            thread=thread,
            trace_id=hex_id(record.trace_id, 32) if record else None,
            span_id=hex_id(record.server_id, 16) if record else None,
            parent_span_id=hex_id(record.client_id, 16) if record else None,
        )

    # -- events ------------------------------------------------------------------

    def event_fired(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
    ) -> Any:
        fire = self._fire_record(name, args, kwargs) if self.sink is not None else None
        if self.watchers:
            if fire is not None:  # encoded once, for the span and the activity alike
                fire.args = args_text = self._encoded(fire.args)
                kwargs_text = fire.kwargs = self._encoded(fire.kwargs) if kwargs else None
            else:
                args_text = self._encoded(args)
                kwargs_text = self._encoded(kwargs) if kwargs else None
            self._emit(
                "event",
                name,
                caller=_caller(),
                args=args_text.text,
                kwargs=kwargs_text.text if kwargs_text is not None else None,
                listeners=len(listeners),
                trace_id=hex_id(fire.trace_id, 32) if fire else None,
                span_id=hex_id(fire.span_id, 16) if fire else None,
                parent_span_id=hex_id(fire.parent_id, 16) if fire else None,
            )
        for tap in self.taps:
            tap(name, args, kwargs)
        if fire is not None:
            fire.listeners = len(listeners)
            return fire
        return WATCHED if self.watchers else None

    def delivery_queued(self, event: Any, handler: Handler) -> Any:
        if type(event) is FireRecord:
            return DeliveryRecord(event, handler.name, handler.destination.name, _bits(64))
        return event  # WATCHED or None

    def delivery_refused(self, ticket: Any, handler: Handler, error: BaseException) -> None:
        if type(ticket) is DeliveryRecord:  # a CONSUMER span that says why it never ran
            ticket.start_ns = ticket.end_ns = _time_ns()
            ticket.thread = ""
            ticket.error = error
            self._submit(ticket)

    def event_posted(self, event: Any) -> None:
        if type(event) is FireRecord and not event.remote:
            event.end_ns = _time_ns()
            self._submit(event)

    # -- across processes (the transport calls these) -------------------------------

    def call_replied(
        self,
        ticket: Any,
        handler: Handler,
        error: BaseException | None,
        result: Any,
        elapsed: float,
    ) -> None:
        """A command whose handler is in another process has its outcome.

        Its record (``hop == "client"``) becomes the CLIENT span alone; the
        handler's process writes the SERVER span under it.
        """
        record = ticket if type(ticket) is CallRecord else None
        result_text = None
        if record is not None:
            record.handled_ns = record.sent_ns
            record.end_ns = _time_ns()
            record.thread = ""
            record.error = error
            if error is None:
                record.result = freeze(result, self.json_limit, self.redact)
                if self.watchers:
                    record.result = self._encoded(record.result)
                    result_text = record.result.text
            else:
                record.result = None
                record.traceback = error.__traceback__
            self._submit(record)
        if self.watchers:
            if error is None and result_text is None:
                result_text = self._encoded(result).text
            error_dict = _error_dict(error) if error is not None else None
            self._emit_return(record, handler, result_text, error_dict, elapsed, None)

    def remote_fired(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
        wire: dict[str, Any],
    ) -> Any:
        """An event fired in another process reaches this one's listeners.

        Called with the sender's trace context attached (if it sent one):
        the deliveries' CONSUMER spans then hang under the sender's PRODUCER
        span. Without one, this process records the PRODUCER span itself.
        Returns the ticket to pass to ``delivery_queued`` and ``event_posted``.
        """
        for tap in self.taps:
            tap(name, args, kwargs)
        if self.sink is None:
            return WATCHED if self.watchers else None
        fire = self._fire_record(name, args, kwargs)
        fire.listeners = len(listeners)
        fire.wire = wire
        if fire.parent_id:
            fire.span_id = fire.parent_id
            fire.remote = True
        return fire

    def delivery_started(self, ticket: Any, worker: Worker) -> Any:
        if type(ticket) is not DeliveryRecord:
            return None
        record: DeliveryRecord = ticket
        record.start_ns = _time_ns()
        record.thread = worker.thread_name
        fire = record.fire
        span = BusSpan(record, fire.trace_id, record.span_id)
        return span, _attach(_set_span(span, fire.parent_ctx))

    def delivery_ended(
        self,
        ticket: Any,
        handler: Handler,
        worker: Worker,
        event: str,
        error: BaseException | None,
        elapsed: float,
    ) -> None:
        record = ticket if type(ticket) is DeliveryRecord else None
        if record is not None:
            record.end_ns = _time_ns()
            record.error = error
            if error is not None:
                record.traceback = _handler_frames(error)
            self._submit(record)
        if self.watchers:
            self._emit(
                "delivery",
                event,
                service=handler.destination.name,
                pattern=handler.name,
                error=_error_dict(error) if error is not None else None,
                duration_ms=round(elapsed * 1000, 3),
                queued_ms=round((record.start_ns - record.fire.sent_ns) / 1e6, 3)
                if record
                else None,
                thread=worker.thread_name,
                trace_id=hex_id(record.trace_id, 32) if record else None,
                span_id=hex_id(record.span_id, 16) if record else None,
                parent_span_id=hex_id(record.fire.span_id, 16) if record else None,
            )

    def trace_ids(self, ticket: Any) -> tuple[int, int] | None:
        if type(ticket) is DeliveryRecord:
            return ticket.trace_id, ticket.span_id
        return None

    # -- helpers -------------------------------------------------------------------

    def _submit(self, record: CallRecord | FireRecord | DeliveryRecord) -> None:
        if self.sink is not None:
            self.sink.submit(record)

    def _encoded(self, value: Any) -> Encoded:
        """``value`` as bounded JSON; a value ``freeze`` already encoded is reused."""
        return encoded_text(value, self.json_limit, self.redact)

    def _emit(self, kind: Any, name: str, **fields: Any) -> None:
        activity = Activity(kind, name, time.time(), next(self._seq), **fields)
        for callback in self.watchers:
            try:
                callback(activity)
            except Exception as exc:
                self.watch_errors += 1
                self._watch_log.error("an activity watcher failed (%r)", callback, exc=exc)

    def _call_record(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], service: str
    ) -> CallRecord:
        ctx = _get_current()
        parent = _get_span(ctx).get_span_context()
        record = CallRecord()
        if parent.is_valid:
            record.trace_id, record.parent_id = parent.trace_id, parent.span_id
        else:
            record.trace_id, record.parent_id = _bits(128), 0
        record.client_id = _bits(64)
        record.server_id = _bits(64)
        record.name = name
        record.parent_ctx = ctx
        record.caller = _caller()
        record.service = service
        record.args = freeze(args, self.json_limit, self.redact)
        record.kwargs = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
        record.annotations = record.events = record.links = None
        if REPLAY_KEY in ctx:
            mark_replay(record, ctx)
        record.status_message = None
        record.hop = record.wire = None
        record.sent_ns = _time_ns()
        return record

    def _fire_record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> FireRecord:
        ctx = _get_current()
        parent = _get_span(ctx).get_span_context()
        record = FireRecord()
        if parent.is_valid:
            record.trace_id, record.parent_id = parent.trace_id, parent.span_id
        else:
            record.trace_id, record.parent_id = _bits(128), 0
        record.span_id = _bits(64)
        record.name = name
        record.parent_ctx = ctx
        record.caller = _caller()
        record.args = freeze(args, self.json_limit, self.redact)
        record.kwargs = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
        record.annotations = record.events = record.links = None
        if REPLAY_KEY in ctx:
            mark_replay(record, ctx)
        record.context = None
        record.remote = False
        record.wire = None
        record.sent_ns = _time_ns()
        return record


def _handler_frames(error: BaseException) -> Any:
    """The traceback from the handler's frame on, taken before any caller re-raises.

    Called as the handler ends, while ``error.__traceback__`` still starts at
    the runtime's frame that caught it; a caller re-raising the same object
    later prepends its own frames, which the span must not show.
    """
    tb = error.__traceback__
    return tb.tb_next if tb is not None and tb.tb_next is not None else tb
