"""Replay targets: the control protocol's `replay_of` param and the bus's replay marking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sample_services
from bus import Bus
from busctl._client import RemoteError
from busctl.traces import BusTarget, ClientTarget, Replayer, plan_replay, read_trace_file
from traces.record_sample import OPTIONS

pytestmark = pytest.mark.timeout(30)

SAMPLE = Path(__file__).resolve().parents[3] / "traces" / "sample.jsonl"


class FakeClient:
    """Answers like the control server would, from a bus in this process."""

    def __init__(self, bus, *, knows_replay_of):
        self.bus = bus
        self.knows_replay_of = knows_replay_of
        self.requests = []

    def inspect(self):
        return self.bus.inspect()

    def request(self, method, params=None, timeout=None):
        self.requests.append((method, dict(params or {})))
        params = dict(params or {})
        if "replay_of" in params and not self.knows_replay_of:
            raise RemoteError(-32602, "unexpected param replay_of", {"param": "replay_of"})
        if method == "fire":
            self.bus.fire_event(params["name"], *params["args"], **params["kwargs"])
            return {"listeners": 1}
        future = self.bus.execute_command(params["name"], *params["args"], **params["kwargs"])
        try:
            return {"value": future.result(timeout=10)}
        except Exception as exc:
            raise RemoteError(
                -32000, str(exc), {"type": type(exc).__name__, "message": str(exc)}
            ) from None


@pytest.fixture
def bus():
    with Bus(name="target") as bus:
        sample_services.start(bus, **OPTIONS)
        yield bus


@pytest.fixture
def plan():
    return plan_replay(read_trace_file(SAMPLE), commands=True, all_commands=True)


def test_client_target_links_each_request_to_its_recorded_span(bus, plan):
    client = FakeClient(bus, knows_replay_of=True)
    report = Replayer(plan, ClientTarget(client), fast=True).run()
    assert report.differences == []
    sent = [p for _, p in client.requests]
    assert len(sent) == len(plan.steps)
    for step, params in zip(plan.steps, sent, strict=True):
        assert params["replay_of"] == {"trace_id": step.span.trace_id, "span_id": step.span.span_id}
    assert not any("no replay hook" in n for n in report.notes)


def test_client_target_falls_back_when_the_bus_has_no_replay_hook(bus, plan):
    client = FakeClient(bus, knows_replay_of=False)
    report = Replayer(plan, ClientTarget(client), fast=True).run()
    assert len(report.sent) == len(plan.steps)
    # Asked once with replay_of, then never again.
    assert sum("replay_of" in p for _, p in client.requests) == 1
    assert any("no replay hook" in n for n in report.notes)


def test_client_target_compares_remote_errors(bus):
    plan = plan_replay(read_trace_file(SAMPLE), commands=True, only=("lights.get",))
    report = Replayer(plan, ClientTarget(FakeClient(bus, knows_replay_of=True)), fast=True).run()
    assert report.compared == 2
    # Without the recorded motion the hall light is off now: a difference. The
    # attic fails with the same ValueError as when recorded: not a difference.
    assert [d.step.args for d in report.differences] == [["hall"]]
    assert report.differences[0].now.value["on"] is False


def test_bus_target_marks_what_it_replays(bus, plan):
    report = Replayer(plan, BusTarget(bus), fast=True).run()
    assert bus.wait_idle(10)
    assert bus.flush_traces(10)
    recorded = {s.span.span_id for s in plan.steps}
    replayed = [
        span
        for span in bus.spans.spans()
        if (span.attributes or {}).get("bus.replayed") and span.kind.name in ("PRODUCER", "SERVER")
    ]
    linked = {format(link.context.span_id, "016x") for span in replayed for link in span.links}
    assert len(replayed) == len(plan.steps)
    assert linked == recorded  # each sent step links to the span it replays
    assert not any("no replay hook" in n for n in report.notes)


# -- busctl replay through the CLI, attached to the fake client ------------------------


@pytest.fixture
def attached(bus, monkeypatch):
    import busctl._embedded

    client = FakeClient(bus, knows_replay_of=True)
    client.info = {"methods": ["describe", "inspect", "execute", "fire"]}
    client.close = lambda: None
    monkeypatch.setattr(busctl._embedded, "connect_or_embed", lambda target, **_: (client, None))
    return client


def run_replay(*args, input=None):
    from click.testing import CliRunner

    from busctl.cli.replay import replay

    return CliRunner().invoke(replay, [str(SAMPLE), *args], input=input)


def test_cli_replay_reports_differences_with_exit_status_7(attached):
    result = run_replay("--fast", "--commands", "--only", "lights.get")
    assert result.exit_code == 7, result.output
    assert 'DIFFERS  #1 lights.get("hall")' in result.stdout
    assert 'lights.get("attic")   = as recorded' in result.stdout
    assert "1 command result(s) differ from the recording" in result.stderr


def test_cli_replay_json_with_differences_is_one_report(attached):
    # The report says what differs: no error object after it (stdout stays one document).
    result = run_replay("--fast", "--commands", "--only", "lights.get", "--json")
    assert result.exit_code == 7, result.output
    report = json.loads(result.stdout)
    assert report["differences"]
    assert "1 command result(s) differ from the recording" in result.stderr


def test_cli_replay_json_report(attached):
    result = run_replay("--fast", "--exclude", "clock.*", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["events"] == 6  # 3 recorded from outside, 3 from the scene left out
    assert report["ok"] is True
    assert {item["name"] for item in report["left_out"]} >= {"say_hello"}


def test_cli_replay_step_prompts_before_each_step(attached):
    # Enter sends the first, "s" skips the second, "q" stops.
    result = run_replay("--step", "--only", "motion.*", "--only", "greet_event", input="\ns\nq\n")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("[Enter: send, s: skip, q: stop]") == 3
    fired = [p["name"] for method, p in attached.requests if method == "fire"]
    assert fired == ["greet_event"]
    assert "skipped while stepping (s at the --step prompt)" in result.stdout
    assert "(stopped early)" in result.stdout
    assert "stopped before #3: 1 step not sent" in result.stdout
    assert result.stdout.count("skipped while stepping") == 1


def test_cli_replay_dry_run_checks_read_only_against_the_bus(attached):
    result = run_replay("--dry-run", "--commands", "--bus", "whatever")
    assert result.exit_code == 0, result.output
    assert "left out: say_hello" in result.stdout
    assert "not declared read-only" in result.stdout
    assert attached.requests == []  # nothing sent
