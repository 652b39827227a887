"""Reading and writing trace files: OTLP JSON lines.

    from busctl.traces import read_trace_file, write_trace_file

    write_trace_file("traces/session.jsonl", bus.spans.spans())
    trace_file = read_trace_file("traces/session.jsonl")
    for problem in trace_file.errors:       # bad lines and spans, each named
        print(problem)                      # "line 7: not JSON: ..."
    print(len(trace_file.spans), "spans")   # from every line that was valid

One ``TracesData`` object per line, as the OpenTelemetry file exporters write
(see ``docs/traces.md``). A bad line — truncated, not JSON, not trace data,
or longer than the limit — is reported with its number and skipped; the other
lines are still read. So is a bad span within a good line (an id of the
wrong length, a name that is not text, a start time out of range): it is
left out and the rest of its line read. What can be mended is mended and
reported (an end before the start, an integer past 64 bits, a duplicate
span, a parent cycle; see ``_check`` and ``build_traces``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan

from bus.otlp import OtlpDecodeError, decode_spans, encode_spans

from ..render.text import visible
from ._check import SpanChecker
from ._model import Span
from ._tree import LineError, Trace, build_traces

__all__ = [
    "MAX_LINE_BYTES",
    "LineError",
    "TraceFile",
    "TraceFileError",
    "no_collection_pauses",
    "parse_trace_lines",
    "parse_traces_data",
    "read_trace_file",
    "write_trace_file",
]

MAX_LINE_BYTES = 64 * 1024 * 1024
"""The longest line read (64 MiB); a longer one is reported and skipped unread."""

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20


class TraceFileError(Exception):
    """The trace file cannot be read at all (missing, a directory, unreadable)."""


@dataclass(slots=True)
class TraceFile:
    """What a trace file holds: the spans of its valid lines, and what was wrong.

    Attributes:
        path: where it was read from (``None`` for in-memory lines).
        spans: every usable span of every valid line, in file order (a span
            that appears twice is here twice; ``traces()`` holds it once).
        errors: one ``LineError`` per bad line, per span left out or
            mended, per duplicate and per parent cycle, in line order.
        lines: how many lines were read (blank ones included).
    """

    path: Path | None
    spans: list[Span] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: int = 0
    _traces: list[Trace] | None = None

    def traces(self) -> list[Trace]:
        """The spans as trees, one ``Trace`` per trace id, oldest first (built once).

        Building them reports duplicates and parent cycles in ``errors``;
        the readers here build them before they return.
        """
        if self._traces is None:
            problems: list[LineError] = []
            self._traces = build_traces(self.spans, problems)
            if problems:
                self.errors.extend(problems)
                self.errors.sort(key=lambda e: e.line)  # stable: a line's own order stays
        return self._traces

    def error_summary(self, limit: int | None = None) -> str:
        """One line per problem, prefixed by the file's name; at most ``limit`` of them."""
        where = str(self.path) if self.path else "<trace>"
        shown = self.errors if limit is None else self.errors[:limit]
        lines = [f"{where}:{e.line}: {visible(e.message)}" for e in shown]
        if len(shown) < len(self.errors):
            rest = len(self.errors) - len(shown)
            lines.append(f"{where}: {rest:,} more problem{'s' if rest != 1 else ''} not shown")
        return "\n".join(lines)


def _describe_json_error(exc: json.JSONDecodeError, last: bool, has_newline: bool) -> str:
    if last and not has_newline and exc.msg.startswith(("Unterminated", "Expecting")):
        return (
            f"truncated: the file ends inside this JSON object (column {exc.colno}); "
            "was it still being written?"
        )
    return f"not JSON: {exc.msg} at column {exc.colno}"


def _parse_line(raw: bytes, number: int, last: bool, out: TraceFile, checker: SpanChecker) -> None:
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
    except ValueError as exc:  # a number of more than 4,300 digits, say
        out.errors.append(LineError(number, f"not JSON: {exc}"))
        return
    _read_data(data, number, out, checker, surrogates=bool(_SURROGATE_ESCAPE.search(text_bytes)))


def _read_data(
    data: Any, number: int, out: TraceFile, checker: SpanChecker, *, surrogates: bool = True
) -> None:
    """Add the spans of one ``TracesData`` object to ``out``, reporting what is wrong.

    ``surrogates``: whether strings may hold lone surrogates (to be mended).
    """
    if surrogates:
        mended = _mend_surrogates(data)
        if mended:
            out.errors.append(
                LineError(
                    number,
                    f"{mended} string{'s' if mended != 1 else ''} held a lone surrogate "
                    "(\\ud800-\\udfff: not valid Unicode, cannot be printed or exported): "
                    "kept as its escape text",
                )
            )
    bad_spans: list[str] = []
    try:
        spans = decode_spans(data, on_bad_span=bad_spans.append)
    except OtlpDecodeError as exc:
        hint = ""
        if isinstance(data, dict) and ("traceEvents" in data or "ph" in data):
            hint = " (this looks like Chrome trace-event JSON, not OTLP)"
        out.errors.append(LineError(number, f"not OTLP trace data: {exc}{hint}"))
        return
    except (ValueError, TypeError, RecursionError) as exc:
        out.errors.append(LineError(number, f"not OTLP trace data: {exc}"))
        return
    for reason in bad_spans:
        out.errors.append(LineError(number, f"{reason}: the span is left out"))
    for readable in spans:
        usable, problems = checker.check(readable)
        out.errors.extend(LineError(number, problem) for problem in problems)
        if usable is not None:
            resource = checker.attributes_of(usable.resource)
            out.spans.append(Span.from_readable(usable, number, resource))


# Lone surrogates reach a string only through a JSON escape: lines without
# one (nearly all) are not walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _mend_surrogates(data: Any) -> int:
    """Replace each lone surrogate in ``data``'s strings (keys too) by its escape text.

    Such a string cannot be encoded as UTF-8: printing it, writing it to a
    file or sending it over OTLP would fail. Returns how many strings held
    one. Iterative: the JSON may be deeply nested.
    """

    def mend(text: str) -> str:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)

    count = 0
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, str) and _SURROGATE.search(value):
                    node[key] = value = mend(value)
                    count += 1
                if _SURROGATE.search(key):
                    del node[key]
                    node[mend(key)] = value
                    count += 1
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str) and _SURROGATE.search(value):
                    node[i] = mend(value)
                    count += 1
                elif isinstance(value, dict | list):
                    stack.append(value)
    return count


def parse_traces_data(data: Any) -> TraceFile:
    """Read one OTLP ``TracesData`` object already parsed from JSON (a bus's ring, say).

    As for a file's line: bad spans are left out, the rest mended where
    needed, each problem in ``errors`` (at line 0).
    """
    out = TraceFile(None)
    _read_data(data, 0, out, SpanChecker())
    out.traces()
    return out


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
    checker = SpanChecker()
    pending: tuple[bytes | None, int] | None = None
    number = 0
    with no_collection_pauses():
        for item in _lines(stream, max_line_bytes):
            # One line of look-ahead: only the last line can be "truncated".
            if pending is not None:
                number += 1
                _handle(pending, number, False, out, max_line_bytes, checker)
            pending = item
        if pending is not None:
            number += 1
            _handle(pending, number, True, out, max_line_bytes, checker)
        out.lines = number
        out.traces()  # so that duplicates and parent cycles are in ``errors`` too
    return out


@contextlib.contextmanager
def no_collection_pauses() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a file's spans are built or shown.

    Every few hundred new objects it scans the heap, which here only grows
    (spans, their attributes, their trees): for 200,000 spans that tripled
    the time taken. Nothing read is garbage until the reader is done. Not
    for a long run beside a live bus (a replay): cycles made meanwhile wait.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _handle(
    item: tuple[bytes | None, int],
    number: int,
    last: bool,
    out: TraceFile,
    limit: int,
    checker: SpanChecker,
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
    _parse_line(raw, number, last, out, checker)


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
