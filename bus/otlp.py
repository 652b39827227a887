"""OpenTelemetry spans to and from OTLP JSON lines, the file-exporter encoding.

    import json
    from bus.otlp import decode_spans, encode_spans

    line = json.dumps(encode_spans(bus.spans.spans()), separators=(",", ":"))
    spans = decode_spans(json.loads(line))       # ReadableSpan objects again

The encoding is the OTLP/HTTP JSON mapping of ``TracesData`` that the
OpenTelemetry file exporters write (``docs/traces.md``): what ``busctl
capture`` records, ``busctl trace`` reads, and ``OtlpJsonFileExporter``
(also the ``OTEL_TRACES_EXPORTER=bus_otlp_json_file`` exporter) writes.
``decode_spans`` returns ``DecodedSpan``s (``ReadableSpan``s that also keep
what the SDK's objects cannot: dropped counts, a kind of 0, flags and trace
states as written), so a file read and written again says what it said.
"""

from __future__ import annotations

from ._observe._decoded import (
    DecodedEvent,
    DecodedLink,
    DecodedResource,
    DecodedScope,
    DecodedSpan,
)
from ._observe._otlp import encode_spans, encode_value
from ._observe._otlp_decode import OtlpDecodeError, decode_spans, decode_value
from ._observe._otlp_file import TRACE_FILE_ENV, OtlpJsonFileExporter

__all__ = [
    "TRACE_FILE_ENV",
    "DecodedEvent",
    "DecodedLink",
    "DecodedResource",
    "DecodedScope",
    "DecodedSpan",
    "OtlpDecodeError",
    "OtlpJsonFileExporter",
    "decode_spans",
    "decode_value",
    "encode_spans",
    "encode_value",
]
