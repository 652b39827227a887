"""busctl trace show/export and the offline parts of busctl replay, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from busctl.cli.replay import replay
from busctl.cli.trace import trace

pytestmark = pytest.mark.timeout(30)

SAMPLE = str(Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl")


@pytest.fixture
def runner():
    return CliRunner()


def test_show_draws_trees_with_services_durations_and_errors(runner):
    result = runner.invoke(trace, ["show", SAMPLE])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "call automation.evening_scene  MainThread -> automation" in out
    assert "└─ handle automation.evening_scene" in out
    assert " ms" in out
    assert "✗ SensorError: sensor in 'living_room' did not answer" in out
    assert "11 of 11 traces" in result.stderr


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (["--errors"], {"send motion.detected", "send clock.tick", "lights.get"}),
        (["--name", "say_*"], {"say_hello"}),
        (["--service", "thermostat"], {"send clock.tick", "thermostat.get",
                                       "automation.evening_scene"}),
    ],
)  # fmt: skip
def test_show_filters(runner, options, names):
    result = runner.invoke(trace, ["show", SAMPLE, "--json", *options])
    assert result.exit_code == 0, result.output
    assert {t["name"] for t in json.loads(result.stdout)} == names


def test_show_by_trace_id_prefix(runner):
    first = json.loads(runner.invoke(trace, ["show", SAMPLE, "--json"]).stdout)[0]
    result = runner.invoke(trace, ["show", SAMPLE, "--json", "--trace-id", first["trace_id"][:8]])
    assert [t["trace_id"] for t in json.loads(result.stdout)] == [first["trace_id"]]


def test_show_reports_bad_lines_and_uses_the_rest(runner, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = Path(SAMPLE).read_text().splitlines()
    bad.write_text(good[0] + "\n{oops\n" + good[1] + "\n")
    result = runner.invoke(trace, ["show", str(bad)])
    assert result.exit_code == 0
    assert f"{bad}:2: not JSON" in result.stderr
    assert "2 of 2 traces" in result.stderr
    strict = runner.invoke(trace, ["show", str(bad), "--strict"])
    assert strict.exit_code == 1
    assert "bad line" in strict.stderr


def test_a_file_with_nothing_valid_fails_clearly(runner, tmp_path):
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    result = runner.invoke(trace, ["show", str(junk)])
    assert result.exit_code == 1
    assert "no valid lines" in result.stderr
    missing = runner.invoke(trace, ["show", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr


def test_export_chrome_to_a_file(runner, tmp_path):
    out = tmp_path / "sample.chrome.json"
    result = runner.invoke(trace, ["export", SAMPLE, "--format", "chrome", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert any(e["ph"] == "X" for e in data["traceEvents"])


def test_export_otlp_to_a_file_keeps_the_spans(runner, tmp_path):
    out = tmp_path / "copy.jsonl"
    result = runner.invoke(
        trace, ["export", SAMPLE, "--format", "otlp", "-o", str(out), "--errors"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(runner.invoke(trace, ["show", str(out), "--json"]).stdout)
    wanted = json.loads(runner.invoke(trace, ["show", SAMPLE, "--json", "--errors"]).stdout)

    def without_lines(traces):
        for t in traces:
            for span in t["spans"]:
                del span["line"]
        return traces

    assert without_lines(shown) == without_lines(wanted)


def test_export_otlp_to_an_endpoint_goes_through_the_standard_exporter(runner, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http import trace_exporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    received = []

    def export(self, spans):
        received.append((self._endpoint, list(spans)))
        return SpanExportResult.SUCCESS

    monkeypatch.setattr(trace_exporter.OTLPSpanExporter, "export", export)
    result = runner.invoke(
        trace, ["export", SAMPLE, "--format", "otlp", "--endpoint", "http://collector:4318"]
    )
    assert result.exit_code == 0, result.output
    ((endpoint, spans),) = received
    assert endpoint == "http://collector:4318/v1/traces"
    assert len(spans) == 50
    assert "sent 50 spans" in result.stderr


def test_export_otlp_to_nowhere_fails_in_one_line(runner):
    result = runner.invoke(
        trace,
        [
            "export",
            SAMPLE,
            "--format",
            "otlp",
            "--endpoint",
            "http://127.0.0.1:9",
            "--timeout",
            "1",
        ],
    )
    assert result.exit_code == 1
    assert "did not accept 50 of 50 spans" in result.stderr


def test_replay_dry_run_lists_steps_without_a_bus(runner):
    result = runner.invoke(replay, [SAMPLE, "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("#1")
    assert 'greet_event("Bob")' in lines[0]
    assert any('motion.detected(room="hall")' in line for line in lines)
    assert any(
        "left out: automation.evening_scene" in line and "--commands" in line for line in lines
    )
    assert "nothing sent" in result.stderr


def test_replay_dry_run_json(runner):
    result = runner.invoke(replay, [SAMPLE, "--dry-run", "--json", "--only", "clock.*"])
    data = json.loads(result.stdout)
    assert [s["name"] for s in data["steps"]] == ["clock.tick", "clock.tick"]
    assert data["steps"][0]["kwargs"] == {"count": 2, "timestamp": 1700000000.0}
    assert data["filtered"] > 0
