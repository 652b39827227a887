"""A span exporter that writes trace files: one OTLP JSON line per batch.

It is also the ``OTEL_TRACES_EXPORTER=bus_otlp_json_file`` exporter, which
makes any OpenTelemetry SDK (a bus's own provider included) write trace
files.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._otlp import encode_spans

__all__ = ["TRACE_FILE_ENV", "OtlpJsonFileExporter"]

TRACE_FILE_ENV = "BUS_TRACE_FILE"
"""The variable naming the file ``OtlpJsonFileExporter()`` appends to by default."""


class OtlpJsonFileExporter(SpanExporter):
    """A span exporter that appends each batch to a file as one OTLP JSON line.

        provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileExporter("traces/run.jsonl")))
        bus = Bus(tracer_provider=provider)

    With no path it appends to ``$BUS_TRACE_FILE`` (default ``traces.jsonl``
    in the working directory), which is how ``OTEL_TRACES_EXPORTER`` builds it.
    The file is what ``busctl trace`` and ``busctl replay`` read. Thread-safe:
    each line is written whole, under a lock, and reaches the system at once
    (a file of its own is unbuffered; a stream is flushed).

    Args:
        path: the file to append to (created with its directory).
        stream: write to this text stream instead (not closed by ``shutdown``).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, stream: IO[str] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._stream: IO[str] | None = stream
        # A file of our own is written as bytes, unbuffered: a batch's lines
        # go to the system in one write, with no text layer copying them.
        self._file: io.FileIO | None = None
        if stream is None:
            target = Path(path or os.environ.get(TRACE_FILE_ENV) or "traces.jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._file = io.FileIO(target, "a")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the spans as one line; ``FAILURE`` once shut down or on an I/O error."""
        if not spans:
            return SpanExportResult.SUCCESS
        return self.write(encode_spans(spans))

    def write(self, encoded: dict[str, Any]) -> SpanExportResult:
        """Append one ``TracesData`` JSON object as a line (what ``export`` writes)."""
        return self.write_line(json.dumps(encoded, separators=(",", ":"), ensure_ascii=False))

    def write_line(self, line: str) -> SpanExportResult:
        """Append one ``TracesData`` object already written as compact JSON text."""
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate in an attribute: escape it
            data = json.dumps(json.loads(line), separators=(",", ":")).encode("ascii")
        return self.write_lines(data + b"\n")

    def write_lines(self, data: bytes) -> SpanExportResult:
        """Append whole lines already written as UTF-8, each ended by a newline.

        The bus's trace thread calls it with a batch's lines, written
        straight from its records (``OtlpLines.write_many``): one write.
        """
        with self._lock:
            try:
                if self._file is not None:
                    view = memoryview(data)
                    while view:  # a write may take only part (a signal, a full disk)
                        written = self._file.write(view)
                        if not written:  # nothing taken: give up rather than spin
                            return SpanExportResult.FAILURE
                        view = view[written:]
                elif self._stream is not None:
                    self._stream.write(data.decode("utf-8"))
                    self._stream.flush()
                else:
                    return SpanExportResult.FAILURE
            except (OSError, ValueError):
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file (a stream given to the constructor stays open)."""
        with self._lock:
            file, self._file = self._file, None
            self._stream = None
        if file is not None:
            file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every line is flushed as it is written: nothing to do."""
        return True
