"""Trace files: OTLP JSON lines, and every way a file can be bad."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bus.otlp import encode_spans
from busctl.traces import (
    TraceFileError,
    parse_trace_lines,
    read_trace_file,
    write_trace_file,
)

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "traces" / "sample.jsonl"


@pytest.fixture(scope="module")
def good_line() -> bytes:
    return SAMPLE.read_bytes().splitlines(keepends=True)[0]


def parse(data: bytes, **kwargs):
    return parse_trace_lines(io.BytesIO(data), **kwargs)


def test_the_shipped_sample_reads_without_errors():
    trace_file = read_trace_file(SAMPLE)
    assert trace_file.errors == []
    assert len(trace_file.traces()) == trace_file.lines  # one trace per line
    names = {t.name for t in trace_file.traces()}
    assert {"send motion.detected", "automation.evening_scene"} <= names


def test_bad_lines_are_named_and_good_lines_still_used(good_line):
    data = b"".join(
        [
            good_line,
            b"not json at all\n",
            b'{"hello": "world"}\n',
            b'{"traceEvents": []}\n',
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}\n',
            b"\n",  # blank lines are fine
            b"\xff\xfe\n",
            good_line,
            good_line[: len(good_line) // 2],  # the writer died mid-line
        ]
    )
    trace_file = parse(data)
    one = len(parse(good_line).spans)
    assert len(trace_file.spans) == 2 * one
    # Line 8 repeats line 1: each of its spans is reported as a duplicate.
    duplicates = [e for e in trace_file.errors if e.line == 8]
    assert len(duplicates) == one
    assert all("appears again (first on line 1)" in e.message for e in duplicates)
    assert sum(len(t.spans) for t in trace_file.traces()) == one
    messages = {e.line: e.message for e in trace_file.errors if e.line != 8}
    assert set(messages) == {2, 3, 4, 5, 7, 9}
    assert messages[2].startswith("not JSON")
    assert "no 'resourceSpans' field" in messages[3]
    assert "Chrome trace-event" in messages[4]
    assert "spans[0].traceId" in messages[5]
    assert messages[5].endswith("the span is left out")
    assert "UTF-8" in messages[7]
    assert messages[9].startswith("truncated")
    assert str(trace_file.errors[0]) == f"line 2: {messages[2]}"


def test_a_huge_line_is_skipped_unread_and_named(good_line):
    huge = b'{"resourceSpans": [' + b" " * 5000 + b"]}\n"
    trace_file = parse(good_line + huge + good_line, max_line_bytes=4096)
    bad_lines = [e for e in trace_file.errors if "appears again" not in e.message]
    assert [(e.line, e.message.split(":")[0]) for e in bad_lines] == [(2, "too long")]
    assert "5,0" in trace_file.errors[0].message  # its size is given
    assert len(trace_file.spans) == 2 * len(parse(good_line).spans)


def test_a_byte_order_mark_is_accepted(good_line):
    assert parse(b"\xef\xbb\xbf" + good_line).errors == []


def test_missing_files_and_directories_are_clear(tmp_path):
    with pytest.raises(TraceFileError, match="no such file"):
        read_trace_file(tmp_path / "nope.jsonl")
    with pytest.raises(TraceFileError, match="directory"):
        read_trace_file(tmp_path)


def test_write_then_read_keeps_every_span(tmp_path):
    spans = [s.source for s in read_trace_file(SAMPLE).spans]
    out = tmp_path / "copy.jsonl"
    assert write_trace_file(out, spans, batch=7) == len(spans)
    lines = out.read_text().splitlines()
    assert len(lines) == -(-len(spans) // 7)
    back = read_trace_file(out)
    assert back.errors == []
    assert json.dumps(encode_spans([s.source for s in back.spans])) == json.dumps(
        encode_spans(spans)
    )
    assert [len(t.spans) for t in back.traces()] == [
        len(t.spans) for t in read_trace_file(SAMPLE).traces()
    ]


def test_a_bus_exporting_to_a_file_writes_a_trace_file(tmp_path, monkeypatch):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import sample_services
    from bus import Bus
    from bus.otlp import TRACE_FILE_ENV, OtlpJsonFileExporter

    out = tmp_path / "run" / "bus.jsonl"
    monkeypatch.setenv(TRACE_FILE_ENV, str(out))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileExporter()))
    with Bus(name="to-file", tracer_provider=provider) as bus:
        bus.add_service(sample_services.Greeter())
        assert bus.execute_command("say_hello", "Ada").result(timeout=5) == "Hello, Ada!"
        bus.flush_traces()
    provider.shutdown()
    trace_file = read_trace_file(out)
    assert trace_file.errors == []
    (trace,) = trace_file.traces()
    assert [s.kind for s, _ in trace.walk()] == ["client", "server"]
    assert trace.roots[0].server.json("bus.result") == "Hello, Ada!"
