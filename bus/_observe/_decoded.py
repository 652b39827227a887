"""Spans read from OTLP JSON, keeping what the SDK's objects have no place for.

``decode_spans`` (``_otlp_decode``) makes these, so that a file read and
written again (``busctl trace export -o``, a capture filtered) says what it
said: the dropped counts, a kind of 0, flags and trace states exactly as
written. Each is the SDK class it extends, so exporters, processors and the
console use them as they are; ``encode_spans`` (``_otlp``) and the SDK's own
encoders read the dropped counts through the standard ``dropped_*``
properties.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext
from opentelemetry.util import types

__all__ = ["DecodedEvent", "DecodedLink", "DecodedResource", "DecodedScope", "DecodedSpan"]


class DecodedSpan(ReadableSpan):
    """A ``ReadableSpan`` read from OTLP JSON, keeping what the SDK's span cannot hold.

    Attributes:
        otlp_kind: the kind number as written, when the SDK cannot spell it
            (0, ``SPAN_KIND_UNSPECIFIED``, which it reads as ``INTERNAL``).
        otlp_flags: the span's ``flags`` as written (``None`` when absent).
        otlp_trace_state: the W3C ``tracestate`` text as written.
        otlp_status_message: a status message on a span that did not fail
            (the SDK keeps one only with ``ERROR``).
    """

    def __init__(
        self,
        *,
        otlp_kind: int | None = None,
        otlp_flags: int | None = None,
        otlp_trace_state: str | None = None,
        otlp_status_message: str | None = None,
        dropped: tuple[int, int, int] = (0, 0, 0),
        **fields: Any,
    ) -> None:
        super().__init__(**fields)
        self.otlp_kind = otlp_kind
        self.otlp_flags = otlp_flags
        self.otlp_trace_state = otlp_trace_state
        self.otlp_status_message = otlp_status_message
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        """How many attributes the writer dropped (``droppedAttributesCount``)."""
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        """How many events the writer dropped (``droppedEventsCount``)."""
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        """How many links the writer dropped (``droppedLinksCount``)."""
        return self._dropped[2]

    def replaced(self, **changes: Any) -> DecodedSpan:
        """A copy with some ``ReadableSpan`` fields changed, and the rest kept."""
        fields: dict[str, Any] = {
            "name": self.name,
            "context": self.context,
            "parent": self.parent,
            "resource": self.resource,
            "attributes": self.attributes,
            "events": self.events,
            "links": self.links,
            "kind": self.kind,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "instrumentation_scope": self.instrumentation_scope,
        }
        fields.update(changes)
        return DecodedSpan(
            otlp_kind=self.otlp_kind,
            otlp_flags=self.otlp_flags,
            otlp_trace_state=self.otlp_trace_state,
            otlp_status_message=self.otlp_status_message,
            dropped=self._dropped,
            **fields,
        )


class DecodedEvent(Event):
    """A span ``Event`` read from OTLP JSON, with the writer's dropped-attribute count."""

    def __init__(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        *,
        dropped_attributes: int = 0,
    ) -> None:
        super().__init__(name, attributes, timestamp)
        self._dropped_attributes = dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        """How many attributes the writer dropped (``droppedAttributesCount``)."""
        return self._dropped_attributes


class DecodedLink(Link):
    """A ``Link`` read from OTLP JSON, with its flags, trace state and dropped count as written.

    Attributes:
        otlp_flags: the link's ``flags`` as written (``None`` when absent).
        otlp_trace_state: its ``traceState`` text as written.
    """

    def __init__(
        self,
        context: SpanContext,
        attributes: types.Attributes = None,
        *,
        otlp_flags: int | None = None,
        otlp_trace_state: str | None = None,
        dropped_attributes: int = 0,
    ) -> None:
        super().__init__(context, attributes)
        self.otlp_flags = otlp_flags
        self.otlp_trace_state = otlp_trace_state
        self._dropped_attributes = dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        """How many attributes the writer dropped (``droppedAttributesCount``)."""
        return self._dropped_attributes


class DecodedResource(Resource):
    """A ``Resource`` read from OTLP JSON, with the writer's dropped-attribute count."""

    def __init__(
        self,
        attributes: Mapping[str, types.AnyValue],
        schema_url: str | None = None,
        *,
        dropped_attributes: int = 0,
    ) -> None:
        super().__init__(attributes, schema_url)
        self.dropped_attributes = dropped_attributes


class DecodedScope(InstrumentationScope):
    """An ``InstrumentationScope`` read from OTLP JSON, with its dropped-attribute count."""

    def __init__(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
        *,
        dropped_attributes: int = 0,
    ) -> None:
        super().__init__(name, version, schema_url, attributes)
        self.dropped_attributes = dropped_attributes
