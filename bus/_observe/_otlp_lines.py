"""OTLP JSON *text* made straight from flat records: the lines of the bus's trace files.

``OtlpLines`` works out spans as ``OtlpSpans`` does (``_spans``), and writes
each as the text ``json.dumps`` would make of ``OtlpSpans``' object, byte for
byte (``tests/bus/observe/test_span_makers.py``), without the dicts in between.

The common records (a command that ran here, an event, a delivery, with no
failure, annotation or transport attribute) are written by the optional C
encoder ``_speedups_otlp`` where it was built; this Python code is its
reference and writes every other record, or all of them with
``BUS_PURE_PYTHON=1`` (``docs/benchmarks.md``, "Trace files in C").

Example::

    lines = OtlpLines(resource, json_limit=4096, redact=None)
    made, data, count = lines.write_many(records, failed)
    binary_file.write(data)  # UTF-8 lines, each ended
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind

from .._core._accel import ENV as PURE_PYTHON_ENV
from ._jsonval import Encoded, Redactor
from ._otlp import encode_attributes, encode_event, encode_link
from ._records import Flat, span_count
from ._spans import _FLAGS, _OTLP_KIND, _TEMPLATES_MAX, Attrs, EventParts, OtlpSpans

try:
    from . import _speedups_otlp
except ImportError:  # built without a compiler: the Python code writes every span
    _speedups_otlp = None  # type: ignore[assignment]

__all__ = ["OtlpLines", "c_available", "span_total"]

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
_LINE_TEXT = 64_000  # the most characters of span text per line, but for one long span
_HEAD = _ROOT.replace('"spanId":"%016x",', '"spanId":"%016x","parentSpanId":"%016x",')


def c_available() -> bool:
    """Whether the C encoder was built and imports."""
    return _speedups_otlp is not None


def span_total(records: list[Flat]) -> int:
    """How many spans the records make: ``span_count`` of each, summed."""
    return sum(map(span_count, records))


class OtlpLines(OtlpSpans):
    """Makes the spans of flat records as OTLP JSON *text*: the lines of trace files.

    ``line(spans)`` is exactly ``json.dumps(traces_data(records),
    separators=(",", ":"), ensure_ascii=False)`` for the same records, made
    without the dicts in between: building and walking a dozen small dicts
    per span, and collecting them, cost several times what the text does.
    The attributes a name and its services always carry are encoded once
    and remembered.

    Args:
        resource: the resource every span carries (the provider's).
        json_limit: the most characters of JSON per argument list or result.
        redact: the redaction hook for keyword arguments and dict entries.
        accelerated: write the common records in C; ``None`` (the default)
            means where the encoder was built and ``BUS_PURE_PYTHON`` is not set.
    """

    def __init__(
        self,
        resource: Resource,
        *,
        json_limit: int,
        redact: Redactor | None,
        accelerated: bool | None = None,
    ) -> None:
        super().__init__(resource, json_limit=json_limit, redact=redact)
        if accelerated is None:
            accelerated = os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")
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
        self._c: _speedups_otlp.Encoder | None = None
        #: ``span_total``, in C with the C encoder (a trace thread counts
        #: every batch: the Python one was half its work with the ring alone).
        self.span_total: Callable[[list[Flat]], int] = span_total
        # The C encoder's lines begin with these bytes; a resource UTF-8
        # cannot carry (a lone surrogate) leaves its lines to this code.
        self._c_writes = False
        if accelerated and _speedups_otlp is not None:
            kind = _OTLP_KIND
            kinds = (kind["CLIENT"], kind["SERVER"], kind["PRODUCER"], kind["CONSUMER"])
            try:
                prefix = self._prefix.encode("utf-8")
            except UnicodeEncodeError:
                prefix = b""
            else:
                self._c_writes = True
            self.span_total = _speedups_otlp.span_total
            self._c = _speedups_otlp.Encoder(
                json_limit, _FLAGS, kinds, self._value_json, self._build_python, Encoded, prefix
            )

    @property
    def accelerated(self) -> bool:
        """Whether the C encoder writes the common records."""
        return self._c is not None

    def build(self, record: Flat, out: list[Any]) -> None:
        """Append the spans of ``record`` to ``out`` (in C if it is a common one)."""
        if self._c is None or not self._c.build(record, out):
            super().build(record, out)

    def build_many(
        self, records: list[Flat], out: list[Any], failed: Callable[[Flat, Exception], None]
    ) -> list[Flat]:
        """Append the spans of each record to ``out``; the records whose spans were made.

        As ``OtlpSpans.build_many``: a record that cannot be made is left out
        and given to ``failed``. From the C encoder, one text in ``out`` may
        hold the spans of several records, comma-separated as ``line``
        joins them: count spans with ``span_count`` of the records made.
        """
        if self._c is None:
            return super().build_many(records, out, failed)
        made: list[Flat] = self._c.build_many(records, out, failed)
        return made

    def write_many(
        self, records: list[Flat], failed: Callable[[Flat, Exception], None]
    ) -> tuple[list[Flat], bytes, int]:
        """The records' spans as the bytes of trace-file lines: (records made, bytes, spans).

        As ``build_many`` (a record that cannot be made is left out and
        given to ``failed``), then ``file_bytes``. The C encoder writes the
        bytes straight, with no str per span: the text is the same; its
        records made are ``records`` itself when every one was.
        """
        if self._c is not None and self._c_writes:
            found: tuple[list[Flat], bytes, int] = self._c.write_many(records, failed)
            return found
        spans: list[str] = []
        made = OtlpSpans.build_many(self, records, spans, failed)
        return made, self.file_bytes(spans), len(spans)

    def file_bytes(self, spans: list[str]) -> bytes:
        """Spans (a str each) as the lines of a trace file: UTF-8, each line ended.

        A line is a ``TracesData`` of about 64 kB at most (``lines``). One
        that UTF-8 cannot carry (a lone surrogate in an attribute) is
        written all ASCII, escaped as ``json`` escapes it.
        """
        out = []
        for line in self.lines(spans):
            try:
                out.append(line.encode("utf-8"))
            except UnicodeEncodeError:
                out.append(json.dumps(json.loads(line), separators=(",", ":")).encode("ascii"))
        return b"\n".join(out) + b"\n" if out else b""

    def lines(self, spans: list[str]) -> list[str]:
        """Texts of spans as ``TracesData`` JSON lines of about 64 kB at most.

        Text past 128 KiB is allocated by mapping fresh pages, each time:
        copying and encoding it costs dozens of times more per byte, so a
        long batch is written as several lines. A text starts a new line
        when the line's texts, UTF-8 bytes and commas, would pass
        ``_LINE_TEXT`` with it (a text longer than that is a line of its
        own): with a str per span, as ``write_many`` makes them, the lines
        of the C encoder's ``write_many``, byte for byte.
        """
        found: list[str] = []
        group: list[str] = []
        size = 0
        for text in spans:
            length = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
            if group and size + length > _LINE_TEXT:
                found.append(self.line(group))
                group, size = [], 0
            group.append(text)
            size += length + 1
        if group:
            found.append(self.line(group))
        return found

    def line(self, spans: list[str]) -> str:
        """Spans from ``build``/``build_many`` as one ``TracesData`` JSON line (no newline)."""
        if not spans:
            return '{"resourceSpans":[]}'
        # One copy of the batch's text: each + would copy all of it, and the
        # C encoder's spans mostly come as one text already.
        return "".join((self._prefix, ",".join(spans), "]}]}]}"))

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
