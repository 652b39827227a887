"""Reading and writing trace files: OTLP JSON lines.

    from busctl.traces import read_trace_file, write_trace_file

    write_trace_file("traces/session.jsonl", bus.spans.spans())
    trace_file = read_trace_file("traces/session.jsonl")
    for problem in trace_file.errors:       # bad lines, each named
        print(problem)                      # "line 7: not JSON: ..."
    print(len(trace_file.spans), "spans")   # from every line that was valid

One ``TracesData`` object per line, as the OpenTelemetry file exporters write
(see ``docs/traces.md``). A bad line — truncated, not JSON, not trace data,
or longer than the limit — is reported with its number and skipped; the other
lines are still read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan

from bus._otlp import OtlpDecodeError, decode_spans, encode_spans

from ._model import Span, Trace, build_traces

__all__ = [
    "MAX_LINE_BYTES",
    "LineError",
    "TraceFile",
    "TraceFileError",
    "parse_trace_lines",
    "read_trace_file",
    "write_trace_file",
]

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest line read (64 MiB); a longer one is reported and skipped unread."""

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


class TraceFileError(Exception):
    """The trace file cannot be read at all (missing, a directory, unreadable)."""


@dataclass(frozen=True, slots=True)
class LineError:
    """A line of a trace file that could not be used, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class TraceFile:
    """What a trace file holds: the spans of its valid lines and its bad lines.

    Attributes:
        path: where it was read from (``None`` for in-memory lines).
        spans: every span of every valid line, in file order.
        errors: one ``LineError`` per bad line.
        lines: how many lines were read (blank ones included).
    """

    path: Path | None
    spans: list[Span] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0
    _traces: list[Trace] | None = None

    def traces(self) -> list[Trace]:
        """The spans as trees, one ``Trace`` per trace id, oldest first (built once)."""
        if self._traces is None:
            self._traces = build_traces(self.spans)
        return self._traces

    def error_summary(self) -> str:
        """One line per bad line, prefixed by the file's name."""
        where = str(self.path) if self.path else "<trace>"
        return "\n".join(f"{where}:{e.line}: {e.message}" for e in self.errors)


def _describe_json_error(exc: json.JSONDecodeError, last: bool, has_newline: bool) -> str:
    if last and not has_newline and exc.msg.startswith(("Unterminated", "Expecting")):
        return (
            f"truncated: the file ends inside this JSON object (column {exc.colno}); "
            "was it still being written?"
        )
    return f"not JSON: {exc.msg} at column {exc.colno}"


def _parse_line(raw: bytes, number: int, last: bool, out: TraceFile) -> None:
    has_newline = raw.endswith(b"\n")
    text_bytes = raw.strip()
    if not text_bytes:
        return
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        out.errors.append(LineError(number, f"not UTF-8 text (byte {exc.start + 1})"))
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        out.errors.append(LineError(number, _describe_json_error(exc, last, has_newline)))
        return
    except RecursionError:
        out.errors.append(LineError(number, "not JSON: nested too deeply"))
        return
    try:
        spans = decode_spans(data)
    except OtlpDecodeError as exc:
        hint = ""
        if isinstance(data, dict) and ("traceEvents" in data or "ph" in data):
            hint = " (this looks like Chrome trace-event JSON, not OTLP)"
        out.errors.append(LineError(number, f"not OTLP trace data: {exc}{hint}"))
        return
    except (ValueError, TypeError, RecursionError) as exc:
        out.errors.append(LineError(number, f"not OTLP trace data: {exc}"))
        return
    out.spans.extend(Span.from_readable(s, number) for s in spans)


def _lines(stream: IO[bytes], limit: int) -> Iterator[tuple[bytes | None, int]]:
    """``(line, size)``; ``line`` is ``None`` for one longer than ``limit`` (skipped unread)."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw.rstrip(b"\r\n")) <= limit:
            yield raw, len(raw)
            continue
        size = len(raw)
        while not raw.endswith(b"\n"):
            raw = stream.readline(_CHUNK)
            if not raw:
                break
            size += len(raw)
        yield None, size


def parse_trace_lines(
    stream: IO[bytes], *, path: Path | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> TraceFile:
    """Read OTLP JSON lines from a binary stream (see ``read_trace_file``)."""
    out = TraceFile(path)
    pending: tuple[bytes | None, int] | None = None
    number = 0
    for item in _lines(stream, max_line_bytes):
        # One line of look-ahead: only the last line can be "truncated".
        if pending is not None:
            number += 1
            _handle(pending, number, False, out, max_line_bytes)
        pending = item
    if pending is not None:
        number += 1
        _handle(pending, number, True, out, max_line_bytes)
    out.lines = number
    return out


def _handle(
    item: tuple[bytes | None, int], number: int, last: bool, out: TraceFile, limit: int
) -> None:
    raw, size = item
    if raw is None:
        out.errors.append(
            LineError(
                number,
                f"too long: {size:,} bytes, more than the {limit:,}-byte limit (skipped)",
            )
        )
        return
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    _parse_line(raw, number, last, out)


def read_trace_file(
    path: str | os.PathLike[str], *, max_line_bytes: int = MAX_LINE_BYTES
) -> TraceFile:
    """Read a trace file: OTLP JSON lines, bad lines reported and skipped.

    Raises:
        TraceFileError: the file does not exist or cannot be read.
    """
    where = Path(path)
    try:
        with where.open("rb") as stream:
            return parse_trace_lines(stream, path=where, max_line_bytes=max_line_bytes)
    except FileNotFoundError:
        raise TraceFileError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise TraceFileError(f"{where}: is a directory, not a trace file") from None
    except OSError as exc:
        raise TraceFileError(f"{where}: cannot read it: {exc.strerror or exc}") from None


def dumps_line(data: dict[str, Any]) -> str:
    """One ``TracesData`` object as a compact JSON line (without the newline)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def write_trace_file(
    path: str | os.PathLike[str],
    spans: Iterable[ReadableSpan],
    *,
    batch: int = 512,
    append: bool = False,
    by_trace: bool = False,
) -> int:
    """Write spans as OTLP JSON lines, ``batch`` spans per line; return how many.

    With ``by_trace``, each line holds the spans of one trace (in the order
    traces first appear), so a reader's line numbers name traces. Otherwise
    spans of one trace may be split across lines; readers join them by id.
    """
    groups: Iterable[list[ReadableSpan]]
    if by_trace:
        traces: dict[int, list[ReadableSpan]] = {}
        for span in spans:
            ctx = span.context
            traces.setdefault(ctx.trace_id if ctx else 0, []).append(span)
        groups = traces.values()
    else:
        groups = [list(spans)]
    count = 0
    with Path(path).open("a" if append else "w", encoding="utf-8") as out:
        for group in groups:
            for start in range(0, len(group), batch):
                chunk = group[start : start + batch]
                out.write(dumps_line(encode_spans(chunk)) + "\n")
                count += len(chunk)
    return count
