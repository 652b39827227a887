"""OTEL_TRACES_EXPORTER=bus_otlp_json_file: a bus writes OTLP JSON lines itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
from bus import Bus
with Bus(name="filed") as bus:
    bus.register_command("hi", lambda who: f"hi {who}")
    assert bus.execute_command("hi", "Ada").result(timeout=10) == "hi Ada"
"""


def test_the_entry_point_makes_a_bus_write_trace_lines(tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "bus_otlp_json_file", "BUS_TRACE_FILE": str(out)}
    env.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines, "the bus wrote nothing"
    spans = [
        span
        for line in lines
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    by_kind = {span["kind"]: span for span in spans}
    assert set(by_kind) == {2, 3}  # SERVER and CLIENT, enums as integers
    server = by_kind[2]
    assert server["parentSpanId"] == by_kind[3]["spanId"]
    assert len(server["traceId"]) == 32
    assert all(c in "0123456789abcdef" for c in server["traceId"])
    assert isinstance(server["startTimeUnixNano"], str)


def test_an_attribute_with_a_lone_surrogate_is_written_not_lost(tmp_path: Path) -> None:
    # UTF-8 cannot carry "\ud800": the line is written with it escaped.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from bus.otlp import OtlpJsonFileExporter

    path = tmp_path / "odd.jsonl"
    exporter = OtlpJsonFileExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("odd") as span:
        span.set_attribute("text", "a\ud800b")
    provider.shutdown()
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert "a\\ud800b" in line
    assert json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "odd"
