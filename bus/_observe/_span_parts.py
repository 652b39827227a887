"""What the spans of a flat record say, worked out once for every maker of them.

``_Spans`` turns each record (``_records``) into the parts of its spans:
names, ids, kinds, attributes (from a template per name and services, then
the record's own), events, links and the error. A subclass turns the parts
into what a consumer needs (``_span``): ``SpanBuilder`` (``_spans``) SDK
``ReadableSpan``s, ``OtlpSpans`` OTLP JSON objects, ``OtlpLines``
(``_otlp_lines``) OTLP JSON text.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util import types

from .._core._errors import error_message, error_text
from ._jsonval import Encoded, Redactor, atom_json, atoms_json
from ._records import CALL, DELIVERY, FIRE, Extras, Flat, encoded_text

__all__ = ["Attrs", "EventParts"]

_SHORT_INT = 1 << 64  # an int whose decimal text is never refused (sys.set_int_max_str_digits)
_SHORT_MIN = -_SHORT_INT  # once: negating a big int makes a new one each time
_CLIENT, _SERVER = SpanKind.CLIENT, SpanKind.SERVER
_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
_TEMPLATES_MAX = 4096  # distinct (name, service...) combinations remembered


Attrs = dict[str, types.AttributeValue]
EventParts = list[tuple[str, Attrs, int]]
Outcome = tuple[EventParts | None, Sequence[Link], str | None]
_NOTHING: Outcome = (None, (), None)  # no events, links or error: most spans


def _exception_attributes(error: BaseException, tb: TracebackType | None) -> Attrs:
    # ``tb`` was taken when the handler failed: by now a caller may have
    # re-raised the same exception object and prepended its own frames.
    return {
        "exception.type": type(error).__qualname__,
        "exception.message": error_message(error),
        "exception.stacktrace": "".join(traceback.format_exception(type(error), error, tb)),
        "exception.escaped": True,
    }


class _Spans:
    """Works out the spans of flat records; a subclass makes them (``_span``)."""

    def __init__(self, resource: Resource, *, json_limit: int, redact: Redactor | None) -> None:
        self._resource = resource
        self._limit = json_limit
        self._redact = redact
        self._templates: dict[tuple[Any, ...], Attrs] = {}
        # The key of the template whose attributes, unchanged and in order,
        # begin those of the span being made; None once an annotation or a
        # transport's attribute may have replaced one (for OtlpLines).
        self._base: tuple[Any, ...] | None = None
        self._makers = {CALL: self._call, FIRE: self._fire, DELIVERY: self._delivery}

    def build(self, record: Flat, out: list[Any]) -> None:
        """Append the spans of ``record`` to ``out``."""
        self._makers[record[0]](record, out)

    def build_many(
        self, records: list[Flat], out: list[Any], failed: Callable[[Flat, Exception], None]
    ) -> list[Flat]:
        """Append the spans of each record to ``out``; the records whose spans were made.

        A record that cannot be made is left out, with none of its spans,
        and given to ``failed`` with the exception.
        """
        makers = self._makers
        made: list[Flat] = []
        for record in records:
            mark = len(out)
            try:
                makers[record[0]](record, out)
            except Exception as exc:
                del out[mark:]
                failed(record, exc)
            else:
                made.append(record)
        return made

    def _build_python(
        self, record: Flat, out: list[Any], failed: Callable[[Flat, Exception], None]
    ) -> bool:
        """A C maker's fallback: one record, by this code; whether it was made."""
        mark = len(out)
        try:
            self._makers[record[0]](record, out)
        except Exception as exc:
            del out[mark:]
            failed(record, exc)
            return False
        return True

    def _value_json(self, value: Any) -> tuple[str, bool, bool]:
        """``_put_json``'s text of a value and its markers (truncated, lossy): for a C maker."""
        scratch: Attrs = {}
        self._put_json(scratch, "v", value)
        text = scratch["v"]
        assert isinstance(text, str)
        return text, "v.truncated" in scratch, "v.lossy" in scratch

    def _span(
        self,
        out: list[Any],
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: SpanKind,
        attrs: Attrs,
        events: EventParts | None,
        links: Sequence[Link],
        error: str | None,
        start_ns: int,
        end_ns: int,
    ) -> None:
        """Append one span; ``error`` is the status description of a failure."""
        raise NotImplementedError

    def _remember(self, key: tuple[Any, ...], attrs: Attrs) -> Attrs:
        """Keep ``attrs`` as the template of ``key``; a copy of it to fill in."""
        templates = self._templates
        if len(templates) >= _TEMPLATES_MAX:
            templates.clear()
        templates[key] = attrs
        return dict(attrs)

    def _put_json(self, attrs: Attrs, key: str, value: Any) -> None:
        """Set ``attrs[key]`` to the JSON of a value kept by ``freeze``, with its markers."""
        kind = type(value)
        text: str | None
        if kind is int and _SHORT_MIN < value < _SHORT_INT:  # most results
            # str() of an exact int is its repr, and the call CPython makes quickest.
            text = str(value)
        elif kind is tuple:
            text = atoms_json(value)
        elif kind is Encoded:
            text = None
        else:
            text = atom_json(value)
        if text is not None and len(text) <= self._limit:
            attrs[key] = text
            return
        encoded = encoded_text(value, self._limit, self._redact)
        attrs[key] = encoded.text
        if encoded.truncated:
            attrs[key + ".truncated"] = True
        if encoded.lossy:
            attrs[key + ".lossy"] = True

    def _outcome(
        self,
        attrs: Attrs,
        extras: Extras | None,
        error: BaseException | None,
        tb: TracebackType | None,
        end_ns: int,
    ) -> Outcome:
        """Fold annotations and the error into ``attrs``: (events, links, error status)."""
        if extras is None and error is None:
            return None, (), None
        annotations, recorded, links = extras if extras is not None else (None, None, None)
        if annotations:
            attrs.update(annotations)
            self._base = None
        events = list(recorded) if recorded else None
        if error is None:
            return events, links or (), None
        attrs["error.type"] = type(error).__qualname__
        if events is None:
            events = []
        events.append(("exception", _exception_attributes(error, tb), end_ns))
        return events, links or (), error_text(error)

    def _call(self, r: Flat, out: list[Any]) -> None:
        (
            _, trace_id, parent_id, client_id, server_id, name, caller, service, args, kwargs,
            sent_ns, handled_ns, end_ns, thread, result, error, tb, status_message, extras,
            hop, wire,
        ) = r  # fmt: skip
        key = self._base = (CALL, name, service, caller)
        found = self._templates.get(key)
        if found is not None:
            client = dict(found)
        else:
            client = self._remember(
                key,
                {
                    "rpc.system.name": "bus",
                    "rpc.method": name,
                    "bus.service": service,
                    "bus.caller": caller,
                },
            )
        self._put_json(client, "bus.args", args)
        if kwargs:
            self._put_json(client, "bus.kwargs", kwargs)
        if wire:
            client.update(wire)
            self._base = None
        if status_message is not None:  # never ran: cancelled, or failed at close
            client["error.type"] = status_message.split(":", 1)[0]
            if hop == "server":  # refused here: the caller's CLIENT span is its parent
                self._span(
                    out, name, trace_id, server_id, parent_id, _SERVER, client, None, (),
                    status_message, sent_ns, end_ns,
                )  # fmt: skip
                return
            self._span(
                out, name, trace_id, client_id, parent_id, _CLIENT, client, None, (),
                status_message, sent_ns, end_ns,
            )  # fmt: skip
            return
        if hop == "client":  # the handler ran in another process, which has the SERVER span
            if error is None:
                self._put_json(client, "bus.result", result)
            events, links, failure = self._outcome(client, None, error, tb, end_ns)
            self._span(
                out, name, trace_id, client_id, parent_id, _CLIENT, client, events, (),
                failure, sent_ns, end_ns,
            )  # fmt: skip
            return
        server = dict(client)
        server["thread.name"] = thread
        server["bus.queued_ms"] = (handled_ns - sent_ns) / 1e6
        if error is None:
            self._put_json(server, "bus.result", result)
        else:
            client["error.type"] = type(error).__qualname__
        events, links, failure = (
            _NOTHING
            if extras is None and error is None
            else self._outcome(server, extras, error, tb, end_ns)
        )
        if hop == "server":  # called from another process: its CLIENT span is the parent
            self._span(
                out, name, trace_id, server_id, parent_id, _SERVER, server, events, links,
                failure, handled_ns, end_ns,
            )  # fmt: skip
            return
        self._span(
            out, name, trace_id, client_id, parent_id, _CLIENT, client, None, (), failure,
            sent_ns, end_ns,
        )  # fmt: skip
        self._span(
            out, name, trace_id, server_id, client_id, _SERVER, server, events, links, failure,
            handled_ns, end_ns,
        )  # fmt: skip

    def _fire(self, r: Flat, out: list[Any]) -> None:
        (
            _, trace_id, parent_id, span_id, name, caller, args, kwargs, sent_ns, end_ns,
            listeners, extras, wire,
        ) = r  # fmt: skip
        key = self._base = (FIRE, name)
        found = self._templates.get(key)
        if found is not None:
            attrs = dict(found)
        else:
            attrs = self._remember(
                key,
                {
                    "messaging.system": "bus",
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "send",
                    "messaging.destination.name": name,
                },
            )
        attrs["bus.caller"] = caller
        attrs["bus.listeners"] = listeners
        self._put_json(attrs, "bus.args", args)
        if kwargs:
            self._put_json(attrs, "bus.kwargs", kwargs)
        links: Sequence[Link] = ()
        if extras is not None:
            if extras[0]:
                attrs.update(extras[0])
                self._base = None
            links = extras[2] or ()
        if wire:
            attrs.update(wire)
            self._base = None
        self._span(
            out, f"send {name}", trace_id, span_id, parent_id, _PRODUCER, attrs, None, links,
            None, sent_ns, end_ns,
        )  # fmt: skip

    def _delivery(self, r: Flat, out: list[Any]) -> None:
        (
            _, trace_id, fire_span_id, span_id, name, pattern, service, fire_sent_ns,
            start_ns, end_ns, thread, error, tb, extras, wire,
        ) = r  # fmt: skip
        key = self._base = (DELIVERY, name, pattern, service)
        found = self._templates.get(key)
        if found is not None:
            attrs = dict(found)
        else:
            attrs = self._remember(
                key,
                {
                    "messaging.system": "bus",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": name,
                    "bus.service": service,
                    "bus.listener.pattern": pattern,
                },
            )
        attrs["bus.queued_ms"] = (start_ns - fire_sent_ns) / 1e6
        if thread:  # none for a delivery the mailbox refused
            attrs["thread.name"] = thread
        if wire:
            attrs.update(wire)
            self._base = None
        events, links, failure = (
            _NOTHING
            if extras is None and error is None
            else self._outcome(attrs, extras, error, tb, end_ns)
        )
        self._span(
            out, f"process {name}", trace_id, span_id, fire_span_id, _CONSUMER, attrs, events,
            links, failure, start_ns, end_ns,
        )  # fmt: skip
