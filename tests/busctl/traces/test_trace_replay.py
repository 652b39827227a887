"""Round trip: record the sample services, write, validate, read back, replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import sample_services
from bus import Bus, command
from bus.testing import wait_idle
from busctl.traces import (
    NOT_JSON,
    BusTarget,
    ReasonCode,
    Replayer,
    plan_replay,
    read_trace_file,
    write_trace_file,
)
from tests.busctl.traces.test_trace_otlp import validate_line
from traces.record_sample import OPTIONS, record

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The sample session, recorded now and written as a trace file."""
    path = tmp_path_factory.mktemp("rec") / "session.jsonl"
    spans = record()
    assert write_trace_file(path, spans, by_trace=True) == len(spans)
    return path


def deliveries_by_step(trace_file, plan):
    """Recorded: for each listener service, the events it got, step by step."""
    out = defaultdict(list)
    for step in plan.steps:
        per = defaultdict(list)
        for span in [step.span, *step.span.descendants()]:
            if span.kind == "consumer":
                per[span.service].append((span.event, span.attributes["bus.listener.pattern"]))
        for service, got in per.items():
            out[service].append((step.index, sorted(got)))
    return dict(out)


def replay_onto_fresh_bus(plan, services=None):
    """Replay one step at a time (idle in between); what each listener got, by step."""
    got = defaultdict(lambda: defaultdict(list))
    current = {"step": 0}

    def watch(activity):
        if activity.kind == "delivery":
            got[activity.service][current["step"]].append((activity.name, activity.pattern))

    with Bus(name="replayed") as bus:
        for service in services or sample_services.all_services(**OPTIONS):
            bus.add_service(service)
        bus.watch(watch)

        def before(step):
            current["step"] = step.index
            return True

        report = Replayer(
            plan,
            BusTarget(bus),
            fast=True,
            before_step=before,
            on_step=lambda step, outcome: wait_idle(bus),
        ).run()
    seen = {
        service: [(index, sorted(items)) for index, items in sorted(steps.items())]
        for service, steps in got.items()
    }
    return report, seen


def test_every_line_is_valid_otlp(recorded):
    lines = recorded.read_text().splitlines()
    assert lines
    total = 0
    for number, line in enumerate(lines, 1):
        message = validate_line(line)  # strictly TracesData, its ids as written
        spans = [s for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert spans, f"line {number} holds no span"
        for span in spans:
            assert len(span.trace_id) == 16
            assert len(span.span_id) == 8
            assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
            assert span.kind in (2, 3, 4, 5)
        total += len(spans)
    assert total == len(read_trace_file(recorded).spans)


def test_read_back_gives_the_recorded_trees(recorded):
    trace_file = read_trace_file(recorded)
    assert trace_file.errors == []
    scene = next(t for t in trace_file.traces() if t.name == "automation.evening_scene")
    client = scene.roots[0]
    assert (client.kind, client.service) == ("client", "MainThread")
    assert client.server.service == "automation"
    assert client.server.json("bus.result")["notification"] == "push-0002"
    assert {"lights", "thermostat", "notifier"} <= set(scene.services)
    errors = [t for t in trace_file.traces() if t.errors]
    assert any(s.error_type == "SensorError" for t in errors for s in t.spans)


@pytest.mark.parametrize("commands", ["none", "all"])
def test_replay_delivers_the_same_events_to_the_same_listeners_in_order(recorded, commands):
    trace_file = read_trace_file(recorded)
    plan = plan_replay(trace_file, commands=commands == "all", all_commands=commands == "all")
    if commands == "none":
        # The scene's events are replayed in place of the scene itself.
        assert [s.kind for s in plan.steps].count("command") == 0
        assert "lights.changed" in [s.name for s in plan.steps]
    report, seen = replay_onto_fresh_bus(plan)
    assert report.skipped == []
    assert seen == deliveries_by_step(trace_file, plan)
    assert "automation" in seen
    assert "greeter" in seen
    if commands == "all":
        assert report.differences == []
        assert report.compared == len([s for s in plan.steps if s.kind == "command"])


class DimmerLights(sample_services.Lights):
    """The change under test: lights.get reports half the brightness."""

    @command("lights.get", readonly=True)
    def get(self, room):
        state = super().get(room)
        state["brightness"] //= 2
        return state


def test_replay_with_commands_reports_exactly_the_changed_results(recorded):
    trace_file = read_trace_file(recorded)
    services = [
        DimmerLights() if isinstance(s, sample_services.Lights) else s
        for s in sample_services.all_services(**OPTIONS)
    ]
    with Bus(name="probe", tracing=False) as probe:
        for service in sample_services.all_services(**OPTIONS):
            probe.add_service(service)
        readonly = {c["name"]: c["readonly"] for c in probe.inspect()["commands"]}
    plan = plan_replay(trace_file, commands=True, readonly=readonly.get)
    report, _ = replay_onto_fresh_bus(plan, services)
    assert [(d.step.name, d.step.args) for d in report.differences] == [("lights.get", ["hall"])]
    (diff,) = report.differences
    assert diff.recorded.value["brightness"] == 80
    assert diff.now.value["brightness"] == 40
    # lights.get("attic") failed then and fails now the same way: not a difference.
    assert report.compared == 4
    # What was not replayed is listed, with the reason.
    left = {span.operation for span, _ in report.left_out}
    assert {"say_hello", "automation.evening_scene"} <= left
    text = report.render()
    assert "DIFFERS" in text
    assert 'lights.get("hall")' in text
    assert "not declared read-only" in text


def test_what_cannot_be_replayed_is_listed(recorded, tmp_path):
    lines = recorded.read_text().splitlines()
    # Mark one event's arguments as not JSON, as the bus does for odd values.
    data = [json.loads(line) for line in lines]
    for item in data:
        for span in item["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            if span["name"] == "send greet_event":
                span["attributes"].append({"key": "bus.args.lossy", "value": {"boolValue": True}})
    path = tmp_path / "odd.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in data))
    plan = plan_replay(read_trace_file(path), commands=True, all_commands=True)
    greet = next(s for s in plan.steps if s.name == "greet_event")
    assert greet.args is NOT_JSON
    assert greet.problem is not None
    assert greet.problem.code is ReasonCode.ARGS_NOT_JSON
    assert "not JSON" in str(greet.problem)
    with Bus(name="partial") as bus:
        bus.add_service(sample_services.Greeter())  # most commands are gone
        report = Replayer(plan, BusTarget(bus), fast=True).run()
    reasons = {s.name: r for s, r in report.skipped}
    assert "not JSON" in str(reasons["greet_event"])
    assert reasons["automation.evening_scene"].code is ReasonCode.NO_SUCH_COMMAND
    assert str(reasons["automation.evening_scene"]) == "the command no longer exists on this bus"
    assert "say_hello" not in reasons  # it exists: replayed and compared
    assert report.compared == 1
    assert not report.differences
    assert "not replayed" in report.render()


def test_only_and_exclude_filter_and_are_counted(recorded):
    trace_file = read_trace_file(recorded)
    plan = plan_replay(trace_file, only=("motion.*", "clock.*"), exclude=("clock.*",))
    assert {s.name for s in plan.steps} == {"motion.detected"}
    assert plan.filtered > 0


def test_pause_and_step_send_one_at_a_time(recorded):
    import threading

    plan = plan_replay(read_trace_file(recorded), only=("motion.*",))
    sent = []
    done = threading.Event()
    with Bus(name="stepped") as bus:
        sample_services.start(bus, **OPTIONS)
        replayer = Replayer(
            plan,
            BusTarget(bus),
            paused=True,
            on_step=lambda s, o: (sent.append(s.index), done.set()),
        )
        worker = threading.Thread(target=replayer.run)
        worker.start()
        assert sent == []
        replayer.step()
        assert done.wait(10)
        assert sent == [1]
        replayer.stop()
        worker.join(10)
    assert sent == [1]


def test_to_pytest_writes_a_test_that_passes(recorded, tmp_path):
    out = tmp_path / "test_recorded.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    command = [
        sys.executable, "-m", "busctl", "replay", str(recorded), "--commands",
        "--to-pytest", str(out), "--start-options", json.dumps(OPTIONS),
    ]  # fmt: skip
    made = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stderr
    source = out.read_text()
    assert "lights.get" in source
    assert "not declared read-only" in source
    # The test it wrote runs its bus in its own process, even where the
    # developer's shell joins every Bus() to NATS.
    nats_env = {**env, "BUS_NATS_URL": "nats://127.0.0.1:1"}  # nothing listens there
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out)],
        cwd=tmp_path, env=nats_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "1 passed" in ran.stdout
