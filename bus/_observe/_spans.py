"""Building OpenTelemetry spans from the records the hot path wrote.

``SpanBuilder`` runs on the trace thread: a command's record becomes a
CLIENT and a SERVER span, an event's a PRODUCER span, each delivery's a
CONSUMER span, following the RPC and messaging semantic conventions
(``docs/bus.md`` lists the attributes).
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from .._core._version import VERSION
from ._jsonval import Encoded, Redactor, atom_json, atoms_json
from ._records import CallRecord, DeliveryRecord, FireRecord, encoded_text, span_context

__all__ = ["SCOPE", "SpanBuilder"]

SCOPE = InstrumentationScope("bus", VERSION)
_OK = Status(StatusCode.UNSET)
_KIND_CLIENT, _KIND_SERVER = SpanKind.CLIENT, SpanKind.SERVER
_KIND_PRODUCER, _KIND_CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


def _exception_event(error: BaseException, tb: TracebackType | None, at: int) -> Event:
    # ``tb`` was taken when the handler failed: by now a caller may have
    # re-raised the same exception object and prepended its own frames.
    return Event(
        "exception",
        {
            "exception.type": type(error).__qualname__,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(type(error), error, tb)),
            "exception.escaped": True,
        },
        at,
    )


class SpanBuilder:
    """Turns records into ``ReadableSpan`` objects. Used by the trace thread only.

    Args:
        resource: the resource every span carries (the provider's).
        json_limit: the most characters of JSON per argument list or result.
        redact: the redaction hook for keyword arguments and dict entries.
    """

    def __init__(self, resource: Resource, *, json_limit: int, redact: Redactor | None) -> None:
        self._resource = resource
        self._limit = json_limit
        self._redact = redact

    def build(
        self, record: CallRecord | FireRecord | DeliveryRecord, out: list[ReadableSpan]
    ) -> None:
        """Append the spans of ``record`` to ``out``."""
        kind = type(record)
        if kind is DeliveryRecord:
            self._build_delivery(record, out)  # type: ignore[arg-type]
        elif kind is CallRecord:
            self._build_call(record, out)  # type: ignore[arg-type]
        else:
            self._build_fire(record, out)  # type: ignore[arg-type]

    def _put_json(self, attrs: dict[str, types.AttributeValue], key: str, value: Any) -> None:
        """Set ``attrs[key]`` to the JSON of a value kept by ``freeze``, with its markers."""
        kind = type(value)
        if kind is tuple:
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
        attrs: dict[str, types.AttributeValue],
        record: Any,
        error: BaseException | None,
        end_ns: int,
    ) -> tuple[Sequence[Event], Status]:
        """Fold the handler's annotations and error into ``attrs``; events and status."""
        annotations = getattr(record, "annotations", None)
        recorded = getattr(record, "events", None)
        if error is None and not annotations and not recorded:
            return (), _OK
        if annotations:
            attrs.update(annotations)
        events = [Event(n, a, t) for n, a, t in recorded or ()]
        if error is None:
            return events, _OK
        attrs["error.type"] = type(error).__qualname__
        events.append(_exception_event(error, getattr(record, "traceback", None), end_ns))
        return events, Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")

    def _build_call(self, r: CallRecord, out: list[ReadableSpan]) -> None:
        trace_id = r.trace_id
        client_ctx = span_context(trace_id, r.client_id)
        parent = span_context(trace_id, r.parent_id) if r.parent_id else None
        client_attrs: dict[str, types.AttributeValue] = {
            "rpc.system.name": "bus",
            "rpc.method": r.name,
            "bus.service": r.service,
            "bus.caller": r.caller,
        }
        self._put_json(client_attrs, "bus.args", r.args)
        if r.kwargs:
            self._put_json(client_attrs, "bus.kwargs", r.kwargs)
        resource = self._resource
        hop = r.hop
        if r.wire:
            client_attrs.update(r.wire)
        if r.status_message is not None:  # never ran: cancelled, or failed at close
            status = Status(StatusCode.ERROR, r.status_message)
            client_attrs["error.type"] = r.status_message.split(":", 1)[0]
            if hop == "server":  # refused here; the caller's CLIENT span is its parent
                out.append(
                    ReadableSpan(
                        r.name, span_context(trace_id, r.server_id), parent, resource,
                        client_attrs, (), (), _KIND_SERVER, None, status, r.sent_ns, r.end_ns,
                        SCOPE,
                    )
                )  # fmt: skip
                return
            out.append(
                ReadableSpan(
                    r.name, client_ctx, parent, resource, client_attrs, (), (), _KIND_CLIENT,
                    None, status, r.sent_ns, r.end_ns, SCOPE,
                )
            )  # fmt: skip
            return
        server_attrs = dict(client_attrs)
        server_attrs["thread.name"] = r.thread
        server_attrs["bus.queued_ms"] = (r.handled_ns - r.sent_ns) / 1e6
        error = r.error
        if error is None:
            self._put_json(server_attrs, "bus.result", r.result)
        else:
            client_attrs["error.type"] = type(error).__qualname__
        if hop == "client":  # the handler ran in another process, which has the SERVER span
            if error is not None:
                events, status = self._outcome(client_attrs, r, error, r.end_ns)
            else:
                self._put_json(client_attrs, "bus.result", r.result)
                events, status = (), _OK
            out.append(
                ReadableSpan(
                    r.name, client_ctx, parent, resource, client_attrs, events, (), _KIND_CLIENT,
                    None, status, r.sent_ns, r.end_ns, SCOPE,
                )
            )  # fmt: skip
            return
        events, status = self._outcome(server_attrs, r, error, r.end_ns)
        if hop == "server":  # called from another process: its CLIENT span is the parent
            out.append(
                ReadableSpan(
                    r.name, span_context(trace_id, r.server_id), parent, resource, server_attrs,
                    events, r.links or (), _KIND_SERVER, None, status, r.handled_ns, r.end_ns,
                    SCOPE,
                )
            )  # fmt: skip
            return
        out.append(
            ReadableSpan(
                r.name, client_ctx, parent, resource, client_attrs, (), (), _KIND_CLIENT,
                None, status, r.sent_ns, r.end_ns, SCOPE,
            )
        )  # fmt: skip
        out.append(
            ReadableSpan(
                r.name, span_context(trace_id, r.server_id), client_ctx, resource, server_attrs,
                events, r.links or (), _KIND_SERVER, None, status, r.handled_ns, r.end_ns, SCOPE,
            )
        )  # fmt: skip

    def _fire_context(self, r: FireRecord) -> SpanContext:
        # Shared by the PRODUCER span and every CONSUMER span under it.
        ctx = r.context
        if ctx is None:
            ctx = r.context = span_context(r.trace_id, r.span_id)
        return ctx

    def _build_fire(self, r: FireRecord, out: list[ReadableSpan]) -> None:
        attrs: dict[str, types.AttributeValue] = {
            "messaging.system": "bus",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": r.name,
            "bus.caller": r.caller,
            "bus.listeners": r.listeners,
        }
        self._put_json(attrs, "bus.args", r.args)
        if r.kwargs:
            self._put_json(attrs, "bus.kwargs", r.kwargs)
        if r.annotations:
            attrs.update(r.annotations)
        if r.wire:
            attrs.update(r.wire)
        parent = span_context(r.trace_id, r.parent_id) if r.parent_id else None
        out.append(
            ReadableSpan(
                f"send {r.name}",
                self._fire_context(r),
                parent,
                self._resource,
                attrs,
                (),
                r.links or (),
                _KIND_PRODUCER,
                None,
                _OK,
                r.sent_ns,
                r.end_ns,
                SCOPE,
            )
        )

    def _build_delivery(self, r: DeliveryRecord, out: list[ReadableSpan]) -> None:
        fire = r.fire
        attrs: dict[str, types.AttributeValue] = {
            "messaging.system": "bus",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": fire.name,
            "bus.service": r.service,
            "bus.listener.pattern": r.pattern,
            "bus.queued_ms": (r.start_ns - fire.sent_ns) / 1e6,
        }
        if r.thread:  # none for a delivery the mailbox refused
            attrs["thread.name"] = r.thread
        if fire.wire:
            attrs.update(fire.wire)
        events, status = self._outcome(attrs, r, r.error, r.end_ns)
        out.append(
            ReadableSpan(
                f"process {fire.name}",
                span_context(fire.trace_id, r.span_id),
                self._fire_context(fire),
                self._resource,
                attrs,
                events,
                getattr(r, "links", None) or (),
                _KIND_CONSUMER,
                None,
                status,
                r.start_ns,
                r.end_ns,
                SCOPE,
            )
        )
