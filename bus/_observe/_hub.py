"""The bus's observer: spans, the activity stream and event taps, behind one seam.

``Hub`` implements ``Observer`` (see ``_observer``): the core tells it what
happens, and it writes trace records for the trace thread, builds
``Activity`` for the watchers (``Bus.watch``) and calls the taps
(``bus.testing.capture_events``). It is installed once something observes
the bus (tracing, a watcher or a tap) and stays for the bus's life; with
none of them left it costs the core one attribute read per piece of work.

What the core carries with the work (its ticket) is, when tracing is on, a
command's ``CallRecord``, or for an event one immutable *head* shared by all
its deliveries (one packed int, see ``_heads``); else ``WATCHED`` when only
watchers look; else ``None``. A handler runs in a context of its
own whose current span is its ``BusSpan``; when the work ends, the record is
flattened (``_records``) and handed to the trace thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context

from .._core import _accel
from .._core._errors import error_text
from .._core._ratelog import RateLimitedLog
from .._core._worker import current_worker
from . import _ctx
from ._activity import Activity, error_dict, hex_id
from ._ctx import current, enter, leave, parent_ids
from ._heads import _M64, _MNAME, NAME_BITS, EventHeads, event_ids
from ._hub_remote import RemoteHops
from ._jsonval import ATOMIC_TYPES, Encoded, Redactor
from ._records import CALL, DELIVERY, FIRE, WATCHED, BusSpan, CallRecord, Flat, encoded_text, freeze
from ._replay import REPLAY_KEY, replay_extras

if TYPE_CHECKING:
    from .._core._router import Handler
    from .._core._worker import Worker
    from ._sink import TraceSink

__all__ = ["WATCHED", "Hub", "Tap", "Watcher"]

log = logging.getLogger("bus")

Watcher = Callable[[Activity], None]
Tap = Callable[[str, tuple[Any, ...], dict[str, Any]], None]


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


def swap_caller(name: str | None) -> str | None:
    """Record what this thread sends from now on as sent by ``name`` (``None``:
    by the thread itself again); returns the name it had. The transport serves
    a call from another process under its sender's name, not its loop thread's."""
    previous: str | None = getattr(_tls, "caller", None)
    if name is None:
        with contextlib.suppress(AttributeError):
            del _tls.caller
    else:
        _tls.caller = name
    return previous


class Hub(RemoteHops, EventHeads):
    """The ``Observer`` of one bus: tracing, watchers and taps.

    Args:
        bus_name: the bus's name (for the caller of work sent from nowhere).
        sink: where finished records go to become spans; ``None`` untraced.
        json_limit: the most characters recorded per argument list or result.
        redact: the redaction hook for keyword arguments and dict entries.
    """

    def __init__(self, sink: TraceSink | None, *, json_limit: int, redact: Redactor | None) -> None:
        self.sink = sink
        self._submit: Callable[[Flat], None] = sink.submit if sink is not None else _nowhere
        self.json_limit = json_limit
        self.redact = redact
        self.watchers: tuple[Watcher, ...] = ()
        self.taps: tuple[Tap, ...] = ()
        self.watch_errors = 0
        self._watch_log = RateLimitedLog(log)  # a watcher failing on every step logs once a second
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        EventHeads.__init__(self)

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
            record.handled_ns = end_ns = _time_ns()
            record.thread = ""
            message = error_text(error)
            self._submit(record.flat(end_ns, None, None, None, message))
        if self.watchers:
            self._emit_return(record, handler, None, error_dict(error), 0.0, None)

    def call_started(self, ticket: Any, worker: Worker) -> Any:
        if type(ticket) is not CallRecord:
            return None
        record: CallRecord = ticket
        record.handled_ns = _time_ns()
        record.thread = worker.thread_name
        span = BusSpan(record.trace_id, record.server_id, record.extras)
        return span, enter(span)

    def handler_returned(self, scope: Any) -> None:
        if scope is not None:
            leave(scope[1])
            scope[0].release()

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
        record = ticket if type(ticket) is CallRecord else None
        result_text = None
        stubbed = None
        if record is not None:
            record.extras = extras = scope[0].extras()
            if extras is not None and extras[0] and extras[0].get("bus.stubbed"):
                # A live stub's mark goes on the CLIENT span as on the SERVER,
                # and on the return the console shows.
                record.wire = {**(record.wire or {}), "bus.stubbed": True}
                stubbed = True
            if error is None:
                frozen = (
                    result
                    if type(result) in ATOMIC_TYPES  # freeze's first test, without the call
                    else freeze(result, self.json_limit, self.redact)
                )
                if self.watchers:  # encoded once, for the span and the activity alike
                    frozen = self._encoded(frozen)
                    result_text = frozen.text
                self._submit(record.flat(_time_ns(), frozen, None, None, None))
            else:
                self._submit(record.flat(_time_ns(), None, error, _handler_frames(error), None))
        if self.watchers:
            if error is None and result_text is None:
                result_text = self._encoded(result).text
            self._emit_return(
                record,
                handler,
                result_text,
                error_dict(error) if error is not None else None,
                elapsed,
                worker.thread_name,
                stubbed,
            )

    def _emit_return(
        self,
        record: CallRecord | None,
        handler: Handler,
        result: str | None,
        error: dict[str, str] | None,
        elapsed: float,
        thread: str | None,
        stubbed: bool | None = None,
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
            stubbed=stubbed,
        )

    # -- events ------------------------------------------------------------------

    def event_fired(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        listeners: tuple[Handler, ...],
    ) -> Any:
        fire: list[Any] | None = None
        if self.sink is not None:
            ctx = current()
            parent = extras = None
            if ctx:  # an empty context has no parent span and no replay mark
                parent = parent_ids(ctx)
                extras = replay_extras(ctx) if REPLAY_KEY in ctx else None
            trace_id, parent_id, span_id = event_ids(parent)
            frozen = freeze(args, self.json_limit, self.redact)
            frozen_kw = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
            # The event's head goes with each delivery; the rest waits here
            # for event_posted, which flattens it.
            sent_ns = _time_ns()
            index = self._name_index.get(name)
            if index is None:
                index = self.add_name(name)
            head: Any = (
                (((trace_id << 64 | span_id) << 64 | sent_ns) << NAME_BITS) | index  # pack_head()
                if index is not None
                else (trace_id, span_id, name, sent_ns, None)
            )
            # The head's parts as they were, for event_posted (unpacking makes new ints).
            parts = (trace_id, span_id, name, sent_ns)
            fire = [head, parent_id, frozen, frozen_kw, extras, None, parts]
        if self.watchers:
            if fire is not None:  # encoded once, for the span and the activity alike
                fire[2] = args_text = self._encoded(fire[2])
                kwargs_text = fire[3] = self._encoded(fire[3]) if kwargs else None
            else:
                args_text = self._encoded(args)
                kwargs_text = self._encoded(kwargs) if kwargs else None
            sent = fire[6] if fire is not None else None
            self._emit(
                "event",
                name,
                caller=_caller(),
                args=args_text.text,
                kwargs=kwargs_text.text if kwargs_text is not None else None,
                listeners=len(listeners),
                trace_id=hex_id(sent[0], 32) if sent else None,
                span_id=hex_id(sent[1], 16) if sent else None,
                parent_span_id=hex_id(fire[1], 16) if fire else None,
            )
        for tap in self.taps:
            tap(name, args, kwargs)
        if fire is not None:
            fire.append(len(listeners))
            return fire
        return WATCHED if self.watchers else None

    def delivery_queued(self, event: Any, handler: Handler) -> Any:
        if type(event) is list:
            return event[0]  # the head, shared by every delivery of the event
        return event  # WATCHED or None

    def delivery_refused(self, ticket: Any, handler: Handler, error: BaseException) -> None:
        if type(ticket) is int or type(ticket) is tuple:  # a CONSUMER span: why it never ran
            trace_id, fire_span_id, name, sent_ns, wire = self.head_parts(ticket)
            now = _time_ns()
            self._submit(
                (
                    DELIVERY, trace_id, fire_span_id, _bits(64), name, handler.name,
                    handler.destination.name, sent_ns, now, now, "", error, None, None, wire,
                )
            )  # fmt: skip

    def event_posted(self, event: Any) -> None:
        if type(event) is list:
            _, parent_id, args, kwargs, extras, wire, (trace_id, span_id, name, sent_ns), count = (
                event
            )
            self._submit(
                (
                    FIRE, trace_id, parent_id, span_id, name, _caller(), args, kwargs,
                    sent_ns, _time_ns(), count, extras, wire,
                )
            )  # fmt: skip

    def delivery_started(self, ticket: Any, worker: Worker) -> Any:
        kind = type(ticket)
        if kind is int:
            span = BusSpan(ticket >> (NAME_BITS + 128), _bits(64))
        elif kind is tuple:
            span = BusSpan(ticket[0], _bits(64))
        else:
            return None
        return span, enter(span), _time_ns()

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
        if scope is not None:
            span, _, start_ns = scope
            if type(ticket) is int:
                trace_id = span.trace_id
                fire_span_id = (ticket >> (NAME_BITS + 64)) & _M64
                sent_ns = (ticket >> NAME_BITS) & _M64
                name = self._names[ticket & _MNAME]
                wire = None
            else:
                trace_id, fire_span_id, name, sent_ns, wire = ticket
            self._submit(
                (
                    DELIVERY, trace_id, fire_span_id, span.span_id, name, handler.name,
                    handler.destination.name, sent_ns, start_ns, _time_ns(), worker.thread_name,
                    error, None if error is None else _handler_frames(error), span.extras(), wire,
                )
            )  # fmt: skip
        if self.watchers:
            self._emit(
                "delivery",
                event,
                service=handler.destination.name,
                pattern=handler.name,
                error=error_dict(error) if error is not None else None,
                duration_ms=round(elapsed * 1000, 3),
                queued_ms=round((scope[2] - sent_ns) / 1e6, 3) if scope else None,
                thread=worker.thread_name,
                trace_id=hex_id(trace_id, 32) if scope else None,
                span_id=hex_id(scope[0].span_id, 16) if scope else None,
                parent_span_id=hex_id(fire_span_id, 16) if scope else None,
            )

    # -- a console's holds ------------------------------------------------------------

    def held(
        self,
        ticket: Any,
        held_ms: float,
        original: tuple[tuple[Any, ...], dict[str, Any]] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Held work goes on, or is dropped: its spans say for how long, and what was edited.

        The attributes go with the record's ``wire`` ones, which every span
        of the record carries: ``bus.held_ms``, ``bus.edited`` and, when the
        arguments were edited, ``bus.original_args`` (and
        ``bus.original_kwargs``) as they were held. A command's record then
        has the new arguments as its ``bus.args``; a delivery, whose event
        span has the arguments fired, gets ``bus.args`` on its own span.
        """
        attrs: dict[str, Any] = {
            "bus.held_ms": round(held_ms, 3),
            "bus.edited": original is not None,
        }
        if original is not None:
            attrs["bus.original_args"] = self._encoded(original[0]).text
            if original[1]:
                attrs["bus.original_kwargs"] = self._encoded(original[1]).text
        if type(ticket) is CallRecord:
            ticket.wire = {**(ticket.wire or {}), **attrs}
            if original is not None:
                ticket.args = freeze(args, self.json_limit, self.redact)
                ticket.kwargs = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
            return ticket
        if type(ticket) is int or type(ticket) is tuple:  # a delivery's shared head: a copy
            if original is not None:
                attrs["bus.args"] = self._encoded(args).text
                if kwargs:
                    attrs["bus.kwargs"] = self._encoded(kwargs).text
            trace_id, span_id, name, sent_ns, wire = self.head_parts(ticket)
            return (trace_id, span_id, name, sent_ns, {**(wire or {}), **attrs})
        return ticket

    def trace_ids(self, scope: Any) -> tuple[int, int] | None:
        if scope is None:
            return None
        span = scope[0]
        return span.trace_id, span.span_id

    # -- helpers -------------------------------------------------------------------

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
        ctx = current()
        record = CallRecord()
        if ctx:  # an empty context has no parent span and no replay mark
            parent = parent_ids(ctx)
            record.extras = replay_extras(ctx) if REPLAY_KEY in ctx else None
        else:
            parent = record.extras = None
        record.trace_id, record.parent_id = parent if parent is not None else (_bits(128), 0)
        record.client_id = _bits(64)
        record.server_id = _bits(64)
        record.name = name
        record.caller = _caller()
        record.service = service
        record.args = freeze(args, self.json_limit, self.redact)
        record.kwargs = freeze(kwargs, self.json_limit, self.redact) if kwargs else None
        record.hop = record.wire = None
        record.sent_ns = _time_ns()
        return record


def _nowhere(record: Flat) -> None:
    """Where records go on a bus that is watched but not traced: nowhere."""


def _handler_frames(error: BaseException) -> Any:
    """The traceback from the handler's frame on, taken before any caller re-raises.

    Called as the handler ends, while ``error.__traceback__`` still starts at
    the runtime's frame that caught it; a caller re-raising the same object
    later prepends its own frames, which the span must not show.
    """
    tb = error.__traceback__
    return tb.tb_next if tb is not None and tb.tb_next is not None else tb


# The hooks of traced calls and deliveries in C (_accel), which set the context directly.
if _ctx.VAR is not None:
    _accel.install_hooks(
        Hub, CallRecord, BusSpan, CALL, DELIVERY, NAME_BITS, _ctx.VAR, Context, _ctx.SPAN_KEY,
        REPLAY_KEY, freeze, ATOMIC_TYPES, _bits, _tls, _caller,
    )  # fmt: skip
    _accel.install_fired(Hub, FIRE, NAME_BITS)  # its events written down by fire_event in C
