"""OTLP JSON *text* made straight from flat records: the lines of the bus's trace files.

``OtlpLines`` works out spans as ``OtlpSpans`` does (``_spans``), and writes
each as the text ``json.dumps`` would make of ``OtlpSpans``' object, byte for
byte (``tests/bus/observe/test_span_makers.py``), without the dicts in between.

Example::

    lines = OtlpLines(resource, json_limit=4096, redact=None)
    spans: list[str] = []
    for record in records:
        lines.build(record, spans)
    file.write(lines.line(spans) + "\n")
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind

from ._jsonval import Redactor
from ._otlp import encode_attributes, encode_event, encode_link
from ._spans import _FLAGS, _OTLP_KIND, _TEMPLATES_MAX, Attrs, EventParts, OtlpSpans

__all__ = ["OtlpLines"]

# JSON as the trace files write it: compact, not ASCII-escaped.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_string: Any = json.encoder.encode_basestring
_BOOL = {True: "true", False: "false"}


class OtlpLines(OtlpSpans):
    """Makes the spans of flat records as OTLP JSON *text*: the lines of trace files.

    ``line(spans)`` is exactly ``json.dumps(traces_data(records),
    separators=(",", ":"), ensure_ascii=False)`` for the same records, made
    without the dicts in between: building and walking a dozen small dicts
    per span, and collecting them, cost several times what the text does.
    The attributes a name and its services always carry are encoded once
    and remembered.
    """

    def __init__(self, resource: Resource, *, json_limit: int, redact: Redactor | None) -> None:
        super().__init__(resource, json_limit=json_limit, redact=redact)
        self._known: dict[tuple[str, str], str] = {}
        self._prefix = (
            '{"resourceSpans":[{"resource":'
            + _dumps(self._head["resource"])
            + ',"scopeSpans":[{"scope":'
            + _dumps(self._head["scope"])
            + ',"spans":['
        )

    def line(self, spans: list[str]) -> str:
        """Spans made by ``build`` as one ``TracesData`` JSON line (no newline)."""
        if not spans:
            return '{"resourceSpans":[]}'
        return self._prefix + ",".join(spans) + "]}]}]}"

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
        parent = f',"parentSpanId":"{parent_id:016x}"' if parent_id else ""
        text = (
            f'{{"traceId":"{trace_id:032x}","spanId":"{span_id:016x}"{parent},"flags":{_FLAGS},'
            f'"name":{_string(name)},"kind":{_OTLP_KIND[kind]},'
            f'"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{end_ns}"'
        )
        if attrs:
            text += f',"attributes":[{self._attributes(attrs)}]'
        if events:
            text += ',"events":' + _dumps([encode_event(n, a, t) for n, a, t in events])
        if links:
            text += ',"links":' + _dumps([encode_link(link) for link in links])
        if error is None:
            out.append(text + ',"status":{}}')
        else:
            out.append(f'{text},"status":{{"code":2,"message":{_string(error)}}}}}')

    def _attributes(self, attrs: Attrs) -> str:
        known = self._known
        string = _string
        parts = []
        value: Any
        for key, value in attrs.items():
            kind = type(value)
            if kind is str:
                text = known.get((key, value))
                if text is None:
                    if len(known) >= _TEMPLATES_MAX:
                        known.clear()
                    text = f'{{"key":{string(key)},"value":{{"stringValue":{string(value)}}}}}'
                    known[key, value] = text
            elif kind is int:
                text = f'{{"key":{string(key)},"value":{{"intValue":"{value}"}}}}'
            elif kind is float and math.isfinite(value):
                text = f'{{"key":{string(key)},"value":{{"doubleValue":{value!r}}}}}'
            elif kind is bool:
                text = f'{{"key":{string(key)},"value":{{"boolValue":{_BOOL[value]}}}}}'
            else:  # sequences, non-finite floats, anything: as the dict maker encodes them
                text = _dumps(encode_attributes({key: value})[0])
            parts.append(text)
        return ",".join(parts)
