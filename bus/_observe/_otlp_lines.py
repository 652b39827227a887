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
from collections.abc import Iterable, Sequence
from itertools import islice
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
# Attributes whose text is made each time, not remembered: they seldom repeat,
# and remembering them would push out those that do (thread and service names).
_VARYING = frozenset({"bus.args", "bus.kwargs", "bus.result"})
_ARG = '{"key":"%s","value":{"stringValue":%s}}'  # for _VARYING's keys: no escapes
_ROOT = (
    '{"traceId":"%032x","spanId":"%016x","flags":' + str(_FLAGS) + ',"name":%s,"kind":%d,'
    '"startTimeUnixNano":"%d","endTimeUnixNano":"%d"'
)
_HEAD = _ROOT.replace('"spanId":"%016x",', '"spanId":"%016x","parentSpanId":"%016x",')


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
        # Per template key: how many attributes it has, and their text.
        self._base_texts: dict[tuple[Any, ...], tuple[int, str]] = {}
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
        # One %-format: a fifth of what the same text cost as an f-string of
        # format specs (callgrind).
        if parent_id:
            text = _HEAD % (
                trace_id, span_id, parent_id, _string(name), _OTLP_KIND[kind._name_], start_ns,
                end_ns,
            )  # fmt: skip
        else:
            text = _ROOT % (
                trace_id,
                span_id,
                _string(name),
                _OTLP_KIND[kind._name_],
                start_ns,
                end_ns,
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
        base = self._base
        if base is None:
            return self._texts(attrs.items())
        # The template's attributes begin ``attrs`` unchanged: their text is
        # made once per template, and only the rest each time.
        found = self._base_texts.get(base)
        if found is None:
            if len(self._base_texts) >= _TEMPLATES_MAX:
                self._base_texts.clear()
            count = len(self._templates[base])
            found = self._base_texts[base] = (count, self._texts(islice(attrs.items(), count)))
        count, head = found
        rest = self._texts(islice(attrs.items(), count, None))
        return f"{head},{rest}" if rest else head

    def _texts(self, items: Iterable[tuple[str, Any]]) -> str:
        known = self._known
        string = _string
        parts = []
        value: Any
        for key, value in items:
            kind = type(value)
            if kind is str:
                if key in _VARYING:  # JSON of arguments and results: seldom seen twice
                    parts.append(_ARG % (key, string(value)))
                    continue
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
