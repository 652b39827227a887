"""A file written by the OpenTelemetry project's own OTLP JSON file exporter, read here.

``opentelemetry-exporter-otlp-json-file`` (0.66b1) pins
``opentelemetry-exporter-otlp-common==0.66b1``, and the console's
``opentelemetry-exporter-otlp-proto-http`` pins 0.66b2: they cannot share a
virtual environment. So the test makes its own, under a temporary directory,
installs the exporter there, has a real SDK write spans of every shape
through it, and reads the file with the bus's reader. Slow (an install from
the package index); skipped when there is no index to install from.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from bus.otlp import decode_spans, encode_spans
from busctl.cli.trace import trace
from busctl.traces import read_trace_file, to_chrome

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPORTER = "opentelemetry-exporter-otlp-json-file==0.66b1"

# Run in the exporter's own environment: a provider with the official file
# exporter, spans of every kind and shape, limits that make it drop things.
WRITER = textwrap.dedent(
    """
    import sys
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import (
        Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags,
        set_span_in_context,
    )
    from opentelemetry.trace.span import TraceState

    provider = TracerProvider(
        resource=Resource({"service.name": "shop", "deployment": "test", "cores": 4}),
        span_limits=SpanLimits(max_span_attributes=8, max_event_attributes=1,
                               max_link_attributes=1, max_events=2, max_links=2),
    )
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(sys.argv[1])))
    tracer = provider.get_tracer("shop.http", "1.2", schema_url="https://opentelemetry.io/schemas/1.9.0")
    remote = SpanContext(0x5B8EFFF798038103D269B633813FC60C, 0xEEE19B7EC3C1B174, True,
                         TraceFlags(1), TraceState([("vendor", "x")]))
    with tracer.start_as_current_span(
        "handle Pay", kind=SpanKind.SERVER, context=set_span_in_context(NonRecordingSpan(remote)),
        attributes={"http.route": "/pay", "raw": b"\\x00\\x01\\xff", "ratio": 0.25,
                    "nan": float("nan"), "tags": ["a", "b"], "codes": [1, 2],
                    "map": {"n": 1, "inner": {"s": "t"}}, "mixed": [1, "two", 3.5]},
    ) as pay:
        pay.add_event("dropped first")
        pay.add_event("retry", {"attempt": 2, "dropped": True})
        pay.add_event("bare")
        pay.add_link(remote)
        pay.add_link(remote, {"why": "batch", "dropped": True})
        pay.add_link(pay.get_span_context())
        pay.set_attribute("late", "dropped oldest")
        for kind in (SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
            with tracer.start_as_current_span(f"{kind.name.lower()} step", kind=kind):
                pass
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as charge:
            charge.record_exception(ValueError("card declined"))
            charge.set_status(Status(StatusCode.ERROR, "ValueError: card declined"))
        pay.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    """
)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("official")
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", EXPORTER],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if installed.returncode != 0 and re.search(
        r"(?i)connection|network|resolve|No matching distribution|Could not find a version",
        installed.stderr,
    ):
        pytest.skip(f"no package index to install from: {installed.stderr.strip()[-200:]}")
    assert installed.returncode == 0, installed.stderr
    script = where / "write.py"
    script.write_text(WRITER)
    path = where / "official.jsonl"
    wrote = subprocess.run(
        [python, str(script), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert wrote.returncode == 0, wrote.stderr
    return path


def protobuf(data: Any) -> TracesData:
    def ids(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64encode(bytes.fromhex(v)).decode()
                if k in ("traceId", "spanId", "parentSpanId")
                else ids(v)
                for k, v in node.items()
            }
        return [ids(v) for v in node] if isinstance(node, list) else node

    return json_format.Parse(json.dumps(ids(data)), TracesData())


def test_every_line_is_read_whole_with_what_it_holds(official_file: Path) -> None:
    trace_file = read_trace_file(official_file)
    assert trace_file.errors == []
    spans = {s.name: s for s in trace_file.spans}
    assert set(spans) == {
        "handle Pay", "client step", "producer step", "consumer step", "internal step", "charge",
    }  # fmt: skip
    pay = spans["handle Pay"]
    assert pay.kind == "server"
    assert pay.parent_id == "eee19b7ec3c1b174"  # a remote parent, not in the file
    assert pay.attributes["raw"] == b"\x00\x01\xff"
    assert pay.attributes["map"] == {"n": 1, "inner": {"s": "t"}}
    assert pay.attributes["mixed"] == [1, "two", 3.5]
    assert pay.attributes["tags"] == ["a", "b"]
    assert pay.error
    assert pay.error_text == "error"
    assert [name for name, _, _ in pay.events] == ["retry", "bare"]
    assert len(pay.links) == 2
    assert spans["charge"].error_text == "ValueError: card declined"
    assert {s.kind for s in spans.values()} == {
        "server", "client", "producer", "consumer", "internal",
    }  # fmt: skip
    assert pay.source is not None
    assert pay.source.dropped_attributes == 1
    assert pay.source.dropped_events == 1
    assert pay.source.dropped_links == 1
    assert [e.dropped_attributes for e in pay.source.events] == [1, 0]
    assert [k.dropped_attributes for k in pay.source.links] == [1, 0]


def test_each_line_read_and_written_again_is_the_same_to_protobuf(official_file: Path) -> None:
    lines = official_file.read_text().splitlines()
    assert len(lines) == 6  # one batch per span: the exporter's SimpleSpanProcessor
    for line in lines:
        data = json.loads(line)
        again = json.loads(json.dumps(encode_spans(decode_spans(data))))
        assert protobuf(again) == protobuf(data)
        assert '"attributes": []' not in json.dumps(again)


def test_show_and_chrome_export_carry_the_foreign_spans(official_file: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(trace, ["show", str(official_file), "--args"])
    assert shown.exit_code == 0, shown.output
    assert "handle Pay  shop" in shown.stdout
    assert 'raw="AAH/"' in shown.stdout
    assert "event retry" in shown.stdout
    as_json = runner.invoke(trace, ["show", str(official_file), "--json"])
    spans = [s for t in json.loads(as_json.stdout) for s in t["spans"]]
    assert all(s["error"] for s in spans if s["name"] in ("handle Pay", "charge"))
    chrome = to_chrome(read_trace_file(official_file).spans)
    json.dumps(chrome, allow_nan=False)
    (pay,) = [e for e in chrome["traceEvents"] if e.get("name") == "handle Pay"]
    assert pay["args"]["attributes"]["nan"] == "NaN"
    assert pay["args"]["error"] == "error"
