"""Spans that are not the bus's: another application's, read from its trace file.

``trace show --args`` and ``--json`` show what they carry (attributes,
events, links), names are theirs, a failure always says so, and a file read
and exported again holds what it held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from busctl.cli.trace import trace
from busctl.traces import read_trace_file

pytestmark = pytest.mark.timeout(60)

SAMPLE = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"
TRACE = "5b8efff798038103d269b633813fc60c"
ONE = {"key": "a", "value": {"intValue": "1"}}


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


# As the OpenTelemetry file exporter writes another application's spans, with
# the spellings protobuf's JSON printer uses (enum names, numbers as text).
SHOP = {
    "resourceSpans": [
        {
            "resource": {"attributes": [kv("service.name", {"stringValue": "shop"})]},
            "scopeSpans": [
                {
                    "scope": {"name": "shop.http", "version": "1.0"},
                    "spans": [
                        {
                            "traceId": TRACE,
                            "spanId": "eee19b7ec3c1b174",
                            "flags": 256,
                            "name": "handle Pay",
                            "kind": "SPAN_KIND_SERVER",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                kv("http.route", {"stringValue": "/pay"}),
                                kv("http.status_code", {"intValue": 500}),
                                kv("ratio", {"doubleValue": "0.5"}),
                                kv("raw", {"bytesValue": "AAE="}),
                                kv("tags", {"kvlistValue": {"values": [ONE]}}),
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660250000000",
                                    "name": "retry",
                                    "attributes": [kv("attempt", {"intValue": "2"})],
                                }
                            ],
                            "links": [
                                {
                                    "traceId": "a" * 32,
                                    "spanId": "b" * 16,
                                    "attributes": [kv("why", {"stringValue": "batch"})],
                                    "flags": 256,
                                }
                            ],
                            "status": {"code": "STATUS_CODE_ERROR"},
                        },
                        {
                            "traceId": TRACE,
                            "spanId": "1111111111111111",
                            "parentSpanId": "eee19b7ec3c1b174",
                            "name": "call Bank",
                            "kind": 0,
                            "startTimeUnixNano": "1544712660100000000",
                            "endTimeUnixNano": "1544712660200000000",
                            "status": {},
                        },
                    ],
                }
            ],
        }
    ]
}


@pytest.fixture
def shop(tmp_path: Path) -> str:
    path = tmp_path / "shop.jsonl"
    path.write_text(json.dumps(SHOP) + "\n")
    return str(path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_a_line_in_the_other_spellings_is_read_whole(shop):
    # doubleValue "0.5", intValue 500 and the enum names each rejected the line before.
    trace_file = read_trace_file(shop)
    assert trace_file.errors == []
    assert [s.name for s in trace_file.spans] == ["handle Pay", "call Bank"]
    pay, bank = trace_file.spans
    assert pay.kind == "server"
    assert bank.kind == "unspecified"
    assert pay.attributes["ratio"] == 0.5
    assert pay.error


def test_show_uses_their_names_and_args_shows_what_they_carry(runner, shop):
    result = runner.invoke(trace, ["show", shop, "--args"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (pay,) = [line for line in lines if "handle Pay" in line and "trace" not in line]
    assert "handle handle" not in result.stdout
    assert pay.strip().startswith("handle Pay  shop")
    assert "✗ error" in pay  # failed without a message: still says so
    text = "\n".join(lines)
    assert 'http.route="/pay"  http.status_code=500  ratio=0.5  raw="AAE="  tags={"a": 1}' in text
    assert "event retry +250.0 ms  attempt=2" in text
    assert f'link {"a" * 32} {"b" * 16}  why="batch"' in text
    assert "call Bank  shop" in text  # its own name, not "call call Bank"


def test_json_has_their_attributes_events_links_and_an_error_whenever_they_failed(runner, shop):
    result = runner.invoke(trace, ["show", shop, "--json"])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    pay, bank = summary["spans"]
    assert pay["error"] == "error"
    assert bank["error"] is None
    assert pay["attributes"] == {
        "http.route": "/pay",
        "http.status_code": 500,
        "ratio": 0.5,
        "raw": "AAE=",
        "tags": {"a": 1},
    }
    assert pay["events"] == [
        {"name": "retry", "time_unix_nano": 1544712660250000000, "attributes": {"attempt": 2}}
    ]
    assert pay["links"] == [
        {"trace_id": "a" * 32, "span_id": "b" * 16, "attributes": {"why": "batch"}}
    ]
    assert bank["kind"] == "unspecified"


def test_a_bus_span_that_failed_without_a_message_has_an_error_in_json(runner, tmp_path):
    span = SHOP["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    failed = {
        **span,
        "kind": 2,
        "attributes": [kv("rpc.system.name", {"stringValue": "bus"}),
                       kv("rpc.method", {"stringValue": "pay"}),
                       kv("error.type", {"stringValue": "TimeoutError"})],
        "status": {"code": 2},
    }  # fmt: skip
    del failed["parentSpanId"]
    path = tmp_path / "failed.jsonl"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [failed]}]}]}) + "\n")
    result = runner.invoke(trace, ["show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["spans"][0]["error"] == "TimeoutError"
    shown = runner.invoke(trace, ["show", str(path)])
    assert "handle pay" in shown.stdout  # a bus command's span: named after the command
    assert "✗ TimeoutError" in shown.stdout


def test_exporting_a_file_again_keeps_what_it_held(runner, shop, tmp_path):
    out = tmp_path / "again.jsonl"
    result = runner.invoke(trace, ["export", shop, "--format", "otlp", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = out.read_text().splitlines()
    spans = json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    pay, bank = spans
    assert bank["kind"] == 0  # SPAN_KIND_UNSPECIFIED, not INTERNAL
    assert pay["flags"] == 256
    assert pay["links"][0]["flags"] == 256
    values = {a["key"]: a["value"] for a in pay["attributes"]}
    assert values["raw"] == {"bytesValue": "AAE="}
    assert values["tags"] == {"kvlistValue": {"values": [kv("a", {"intValue": "1"})]}}
    assert values["ratio"] == {"doubleValue": 0.5}
    assert "attributes" not in bank  # none: left out, not []


def test_json_shows_a_call_made_in_a_handler_on_the_handlers_thread(runner):
    result = runner.invoke(trace, ["show", str(SAMPLE), "--json", "--name", "lights.turn_on"])
    assert result.exit_code == 0, result.output
    for summary in json.loads(result.stdout):
        by_id = {s["span_id"]: s for s in summary["spans"]}
        calls = [s for s in summary["spans"] if s["kind"] == "client" and s["parent_id"] in by_id]
        assert calls
        for call in calls:
            handler = by_id[call["parent_id"]]
            assert call["thread"] == handler["thread"]
            assert call["thread"].startswith("bus:sample/")
