"""Trace files of any size and shape: huge, deep, out of range, cyclic, duplicated.

Each bad line or span gets its one-line report and everything else is shown,
by ``trace show``, ``--json``, both exports, ``replay`` and ``--to-pytest``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from busctl.cli.replay import replay
from busctl.cli.trace import trace
from busctl.traces import plan_replay, read_trace_file, to_chrome

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000_000_000_000  # 2023-11-14, in ns
TRACE = "ab" * 16
BUS = {"messaging.system": {"stringValue": "bus"}}  # marks a span as the bus's


def span(
    number: int,
    parent: int = 0,
    *,
    name: str = "process x",
    kind: int = 5,
    start: Any = None,
    end: Any = None,
    trace_id: str = TRACE,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One OTLP JSON span; ``number`` makes its id, ``parent`` its parent's (0: a root)."""
    start = T0 + number * 1000 if start is None else start
    end = start + 500 if end is None else end
    data: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": f"{number:016x}",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [{"key": k, "value": v} for k, v in (attributes or {}).items()],
        "status": {},
    }
    if parent:
        data["parentSpanId"] = f"{parent:016x}"
    return data


def line(spans: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "shapes"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "bus"}, "spans": spans}],
                }
            ]
        }
    )


def write(path: Path, *lines: list[dict[str, Any]]) -> str:
    path.write_text("".join(line(spans) + "\n" for spans in lines))
    return str(path)


def event(number: int, name: str, start: int) -> dict[str, Any]:
    """A PRODUCER span as the bus records ``fire_event(name)``: replayable."""
    return span(
        number,
        name=f"send {name}",
        kind=4,
        start=start,
        attributes={
            "messaging.destination.name": {"stringValue": name},
            "bus.args": {"stringValue": "[]"},
            "bus.kwargs": {"stringValue": "{}"},
        },
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def problems(result: Any) -> list[str]:
    """The one-line reports (``FILE:LINE: ...``) on stderr."""
    return [text for text in result.stderr.splitlines() if re.search(r"\.jsonl:\d+: ", text)]


# -- size: linear and iterative -----------------------------------------------------


def chain(depth: int) -> list[dict[str, Any]]:
    """A causal chain ``depth`` spans deep: each the parent of the next."""
    return [
        span(i, i - 1, start=T0 + i, end=T0 + 2 * depth - i, name=f"hop {i}")
        for i in range(1, depth + 1)
    ]


def test_a_chain_deeper_than_the_recursion_limit_is_shown(runner, tmp_path):
    # 1,500 deep raised RecursionError in show, --json, replay and walk().
    path = write(tmp_path / "deep.jsonl", chain(1500))
    result = runner.invoke(trace, ["show", path])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2 + 1500
    assert lines[-1].lstrip().startswith("↳1499 hop 1500")
    # The indent stops growing: the output is linear in the depth, not quadratic.
    assert max(len(text) for text in lines) < 120
    data = json.loads(runner.invoke(trace, ["show", path, "--json"]).stdout)
    assert [s["depth"] for s in data[0]["spans"]] == list(range(1500))
    (loaded,) = read_trace_file(path).traces()
    assert len(list(loaded.roots[0].descendants())) == 1499
    assert runner.invoke(replay, [path, "--dry-run"]).exit_code == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_200k_span_capture_and_a_5000_deep_chain_are_shown(runner, tmp_path):
    # 20,000 spans in one trace took 20 s (quadratic); 200,000 now take seconds.
    wide = [span(1, kind=4, name="send fan.out")]
    wide += [span(i, 1, start=T0 + i) for i in range(2, 200_001)]
    big = write(tmp_path / "wide.jsonl", *[wide[i : i + 512] for i in range(0, len(wide), 512)])
    deep = write(tmp_path / "deep.jsonl", chain(5000))
    # The other readers walk the same tree: 40,000 spans would take minutes if
    # any of them were quadratic, and cost a fifth of the time 200,000 do.
    broad = write(
        tmp_path / "broad.jsonl", *[wide[i : min(i + 512, 40_000)] for i in range(0, 40_000, 512)]
    )

    shown = runner.invoke(trace, ["show", big])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("process x") == 199_999
    assert "200000 spans" in shown.stdout
    assert "1 of 1 trace, 200000 spans" in shown.stderr
    as_json = json.loads(runner.invoke(trace, ["show", broad, "--json"]).stdout)
    assert len(as_json[0]["spans"]) == 40_000
    chrome = tmp_path / "broad.chrome.json"
    exported = runner.invoke(trace, ["export", broad, "--format", "chrome", "-o", str(chrome)])
    assert exported.exit_code == 0, exported.output
    events = json.loads(chrome.read_text())["traceEvents"]
    slices = [e for e in events if e["ph"] == "X" and "from_span_id" not in e["args"]]
    assert len(slices) == 40_000  # and markers, where an arrow cannot bind to its slice
    planned = json.loads(runner.invoke(replay, [broad, "--dry-run", "--json"]).stdout)
    assert len(planned["steps"][0]["deliveries"]) == 39_999

    shown = runner.invoke(trace, ["show", deep])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[-1].lstrip().startswith("↳4999 hop 5000")
    as_json = json.loads(runner.invoke(trace, ["show", deep, "--json"]).stdout)
    assert as_json[0]["spans"][-1]["depth"] == 4999
    exported = runner.invoke(trace, ["export", deep, "--format", "chrome", "-o", str(chrome)])
    assert exported.exit_code == 0, exported.output
    assert runner.invoke(replay, [deep, "--dry-run"]).exit_code == 0


# -- shape: every bad span reported, the rest shown ------------------------------------


def test_a_time_out_of_range_is_reported_and_every_good_span_shown(runner, tmp_path):
    # One start of 10**30 ns crashed show with OverflowError, hiding every good line.
    path = write(
        tmp_path / "times.jsonl",
        [span(1, name="good one"), span(2, name="from the far future", start=10**30)],
        [span(3, name="good two", trace_id="cd" * 16)],
    )
    result = runner.invoke(trace, ["show", path])
    assert result.exit_code == 0, result.output
    assert "good one" in result.stdout
    assert "good two" in result.stdout
    assert "far future" not in result.stdout
    (report,) = problems(result)
    assert report.startswith(f"{path}:1: span 0000000000000002 ('from the far future')")
    assert "start time a 31-digit number ns is out of range: the span is left out" in report
    assert runner.invoke(trace, ["show", path, "--json"]).exit_code == 0
    assert runner.invoke(replay, [path, "--dry-run"]).exit_code == 0


def test_ends_before_start_and_out_of_range_ends_are_shown_as_taking_no_time(runner, tmp_path):
    path = write(
        tmp_path / "ends.jsonl",
        [
            span(1, name="backwards", start=T0 + 5_000_000, end=T0),
            span(2, name="endless", end=2**70),
            span(3, name="fine", start=T0, end=T0 + 2_000_000),
        ],
    )
    result = runner.invoke(trace, ["show", path, "--json"])
    assert result.exit_code == 0, result.output
    durations = {s["name"]: s["duration_ms"] for t in json.loads(result.stdout) for s in t["spans"]}
    assert durations == {"backwards": 0.0, "endless": 0.0, "fine": 2.0}
    reports = problems(result)
    assert len(reports) == 2
    assert "('backwards'): ends 5.000 ms before it starts: shown as taking no time" in reports[0]
    assert f"('endless'): end time {2**70} ns is out of range" in reports[1]


def test_spans_in_a_parent_cycle_are_shown_and_the_cycle_reported(runner, tmp_path):
    # a -> b -> a and c -> d -> e -> c (with f under e) vanished; g is its own parent.
    spans = [
        span(1, 2, name="a"),
        span(2, 1, name="b"),
        span(3, 5, name="c"),
        span(4, 3, name="d"),
        span(5, 4, name="e"),
        span(6, 5, name="f"),
        span(7, 7, name="g"),
        span(8, name="root"),
    ]
    path = write(tmp_path / "cycles.jsonl", spans)
    result = runner.invoke(trace, ["show", path])
    assert result.exit_code == 0, result.output
    for name in "abcdefg":
        assert f" {name}  " in result.stdout, name
    assert "8 spans" in result.stdout
    reports = sorted(problems(result))
    assert len(reports) == 3
    assert (
        "span 0000000000000001 ('a') is in a cycle of 2 spans, each the parent of the "
        "next (0000000000000001 -> 0000000000000002): shown as a root" in reports[0]
    )
    assert "span 0000000000000003 ('c') is in a cycle of 3 spans" in reports[1]
    assert "span 0000000000000007 ('g') is its own parent: shown as a root" in reports[2]
    (loaded,) = read_trace_file(path).traces()
    assert [s.name for s in loaded.roots] == ["a", "c", "g", "root"]
    assert [s.name for s, _ in loaded.walk()] == ["a", "b", "c", "d", "e", "f", "g", "root"]


def test_a_duplicate_span_id_is_reported_and_shown_once(runner, tmp_path):
    path = write(
        tmp_path / "twice.jsonl", [span(1, name="first")], [span(1, name="second"), span(2)]
    )
    result = runner.invoke(trace, ["show", path])
    assert result.exit_code == 0, result.output
    assert "first" in result.stdout
    assert "second" not in result.stdout
    (report,) = problems(result)
    assert report == (
        f"{path}:2: span 0000000000000001 ('second') of trace {TRACE} appears again "
        "(first on line 1): this copy is left out"
    )


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ({"traceId": "abc"}, "traceId: expected 32 hex digits"),
        ({"spanId": "00000000000000000001"}, "spanId: expected 16 hex digits"),
        ({"name": 42}, "name: expected a string, got 42"),
        ({"kind": 9}, "kind: expected 0-5 or a SPAN_KIND_* name, got 9"),
        ({"startTimeUnixNano": "soon"}, "startTimeUnixNano: expected an integer"),
        ({"attributes": [{"key": 1}]}, "attributes[0].key: expected a string"),
    ],
)
def test_a_bad_span_is_left_out_and_the_rest_of_its_line_read(runner, tmp_path, broken, named):
    path = write(tmp_path / "one_bad.jsonl", [span(1, name="before"), {**span(2), **broken},
                                              span(3, name="after")])  # fmt: skip
    result = runner.invoke(trace, ["show", path])
    assert result.exit_code == 0, result.output
    assert "before" in result.stdout
    assert "after" in result.stdout
    (report,) = problems(result)
    assert report.startswith(f"{path}:1: resourceSpans[0].scopeSpans[0].spans[1].")
    assert named in report
    assert report.endswith(": the span is left out")


def test_an_integer_past_64_bits_is_kept_as_text_and_both_exports_work(runner, tmp_path):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    huge = {"intValue": str(10**30)}
    path = write(tmp_path / "ints.jsonl", [span(1, attributes={"bus.listeners": huge})])
    trace_file = read_trace_file(path)
    (only,) = trace_file.spans
    assert only.attributes["bus.listeners"] == str(10**30)
    assert [e.message for e in trace_file.errors] == [
        "span 0000000000000001 ('process x'): attribute 'bus.listeners': an integer beyond "
        "the 64-bit range, kept as text"
    ]
    encode_spans([only.source])  # what the OTLP exporter sends: protobuf refused 10**30
    out = tmp_path / "again.jsonl"
    result = runner.invoke(trace, ["export", path, "--format", "otlp", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read_trace_file(out).errors == []


def test_nan_and_infinite_attributes_export_as_valid_json(tmp_path):
    def strict(text: str) -> Any:
        def refuse(constant: str) -> Any:
            raise ValueError(f"not JSON: {constant}")

        return json.loads(text, parse_constant=refuse)

    path = write(
        tmp_path / "nan.jsonl",
        [
            span(1, attributes={"bus.queued_ms": {"doubleValue": "NaN"}, **BUS}),
            span(2, attributes={"bus.queued_ms": {"doubleValue": "Infinity"}, **BUS}),
        ],
    )
    trace_file = read_trace_file(path)
    assert math.isnan(trace_file.spans[0].attributes["bus.queued_ms"])
    chrome = strict(json.dumps(to_chrome(trace_file.spans)))
    queued = [e["args"]["bus.queued_ms"] for e in chrome["traceEvents"] if e["ph"] == "X"]
    assert queued == ["NaN", "Infinity"]  # as OTLP JSON spells them


def test_a_number_of_thousands_of_digits_is_a_bad_line(runner, tmp_path):
    # json.loads raises a plain ValueError (int max str digits): it escaped as a traceback.
    path = tmp_path / "digits.jsonl"
    path.write_text(line([span(1)]) + "\n" + '{"resourceSpans": [' + "9" * 5000 + "]}\n")
    result = runner.invoke(trace, ["show", str(path)])
    assert result.exit_code == 0, result.output
    (report,) = problems(result)
    assert report.startswith(f"{path}:2: not JSON: Exceeds the limit (4300 digits)")


def test_lone_surrogates_are_shown_as_escapes_and_export(runner, tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text(line([span(1, name="odd")]).replace('"odd"', '"odd \\ud800 name"') + "\n")
    result = runner.invoke(trace, ["show", str(path)])
    assert result.exit_code == 0, result.output
    assert "odd \\ud800 name" in result.stdout
    (report,) = problems(result)
    assert "1 string held a lone surrogate" in report
    out = tmp_path / "again.jsonl"
    result = runner.invoke(trace, ["export", str(path), "--format", "otlp", "-o", str(out)])
    assert result.exit_code == 0, result.output


def test_show_lists_the_first_problems_and_check_lists_them_all(runner, tmp_path):
    path = write(tmp_path / "many.jsonl", [span(1)], *[[span(1)] for _ in range(30)])
    shown = runner.invoke(trace, ["show", path])
    assert shown.exit_code == 0, shown.output
    assert len(problems(shown)) == 20
    assert f"{path}: 10 more problems not shown" in shown.stderr
    assert f"busctl trace check {path} lists every problem" in shown.stderr
    checked = runner.invoke(trace, ["check", path])
    assert checked.exit_code == 1
    assert len([t for t in checked.stdout.splitlines() if "appears again" in t]) == 30
    assert "31 lines, 1 span in 1 trace, 30 problems" in checked.stderr
    as_json = json.loads(runner.invoke(trace, ["check", path, "--json"]).stdout)
    assert len(as_json["problems"]) == 30
    sample = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"
    assert runner.invoke(trace, ["check", str(sample)]).exit_code == 0


def test_replay_and_to_pytest_take_a_file_of_bad_shapes(runner, tmp_path):
    weird = 'evil\x1b]0;title\x07 \\N{BULLET} """ \x00'
    path = write(
        tmp_path / "shapes.jsonl",
        [
            event(1, weird, T0),
            event(2, "late", 10**30),
            span(3, 4, name="c1"),
            span(4, 3, name="c2"),
        ],
    )
    plan = plan_replay(read_trace_file(path))
    assert [s.name for s in plan.steps] == [weird]
    out = tmp_path / "test_generated.py"
    result = runner.invoke(
        replay, [path, "--to-pytest", str(out), "--services", "sample_services:Greeter"]
    )
    assert result.exit_code == 0, result.output
    source = out.read_text(encoding="utf-8")
    compile(source, str(out), "exec")  # a NUL or a stray \N made it fail to compile
    dry = runner.invoke(replay, [path, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "\x1b" not in dry.stdout
    assert "evil\\x1b]0;title\\x07" in dry.stdout


def test_every_mended_shape_goes_through_a_real_otlp_exporter(runner, tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    received: list[ExportTraceServiceRequest] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(ExportTraceServiceRequest.FromString(body))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    path = tmp_path / "mended.jsonl"
    path.write_text(
        line(
            [
                span(1, attributes={"big": {"intValue": str(10**30)}}),
                span(2, 1, name="odd", start=T0 + 9000, end=T0),
                span(3, 4, name="c1", attributes={"q": {"doubleValue": "NaN"}}),
                span(4, 3, name="c2"),
            ]
        ).replace('"odd"', '"odd \\udc00"')
        + "\n"
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    serving = threading.Thread(target=server.serve_forever, name="collector")
    serving.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        result = runner.invoke(trace, ["export", str(path), "--format", "otlp",
                                       "--endpoint", endpoint])  # fmt: skip
    finally:
        server.shutdown()
        serving.join(10)
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "sent 4 spans" in result.stderr
    spans = [s for r in received for rs in r.resource_spans for ss in rs.scope_spans
             for s in ss.spans]  # fmt: skip
    assert sorted(s.name for s in spans) == ["c1", "c2", "odd \\udc00", "process x"]
    big = next(s for s in spans if s.name == "process x").attributes[0]
    assert big.value.string_value == str(10**30)
