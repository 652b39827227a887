"""Replay's limits: long recorded gaps are capped, and reasons name no face's flag."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner

import sample_services
from bus import Bus
from busctl.cli.replay import replay
from busctl.traces import (
    DEFAULT_MAX_GAP,
    BusTarget,
    Reason,
    ReasonCode,
    Replayer,
    plan_replay,
    read_trace_file,
)
from tests.busctl.traces.test_trace_shapes import T0, event, write
from traces.record_sample import OPTIONS

pytestmark = pytest.mark.timeout(30)

YEAR_NS = int(365.25 * 86400 * 1e9)


@pytest.fixture
def gappy(tmp_path):
    """Three events: the second 31 years after the first, the third 1 ms later."""
    return write(
        tmp_path / "gappy.jsonl",
        [
            event(1, "tick", T0),
            event(2, "tick", T0 + 31 * YEAR_NS),
            event(3, "tock", T0 + 31 * YEAR_NS + 1_000_000),
        ],
    )


def test_a_long_recorded_gap_is_replayed_as_max_gap(gappy):
    plan = plan_replay(read_trace_file(gappy))
    assert plan.max_gap == DEFAULT_MAX_GAP == 10.0
    assert [s.offset_ns for s in plan.steps] == [0, 10_000_000_000, 10_001_000_000]
    assert [s.index for s in plan.capped] == [2]
    assert plan.capped[0].capped_gap_ns == 31 * YEAR_NS
    assert plan.gap_warning() == (
        "1 recorded gap longer than 10 s is replayed as 10 s: before #2 (31 years)"
    )
    kept = plan_replay(read_trace_file(gappy), max_gap=None)
    assert kept.steps[1].offset_ns == 31 * YEAR_NS
    assert kept.capped == []
    with pytest.raises(ValueError, match="max_gap"):
        plan_replay(read_trace_file(gappy), max_gap=float("nan"))


def test_the_cli_warns_and_takes_max_gap(gappy):
    runner = CliRunner()
    result = runner.invoke(replay, [gappy, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert (
        "warning: 1 recorded gap longer than 10 s is replayed as 10 s: before #2 (31 years) "
        "(--max-gap sets the longest)"
    ) in result.stderr
    assert "#2   +  10.000s  event   tick()" in result.stdout
    result = runner.invoke(replay, [gappy, "--dry-run", "--max-gap", "0.5"])
    assert "#3   +   0.501s  event   tock()" in result.stdout
    assert "longer than 0.5 s" in result.stderr
    result = runner.invoke(replay, [gappy, "--dry-run", "--max-gap", "-1"])
    assert result.exit_code == 2
    assert "--max-gap" in result.stderr


def test_a_capped_replay_runs_at_the_capped_pace_and_says_so(gappy):
    # Before the cap, this replay would have slept for 31 years.
    plan = plan_replay(read_trace_file(gappy), max_gap=0.05)
    seen = []
    with Bus(name="gaps") as bus:
        bus.register_listener("t*", lambda: seen.append(1))
        report = Replayer(plan, BusTarget(bus)).run()
        bus.wait_idle(5)
    assert [s.name for s in report.sent] == ["tick", "tick", "tock"]
    assert len(seen) == 3
    assert any("replayed as 0.05 s: before #2 (31 years)" in note for note in report.notes)
    assert report.to_json()["capped_gaps"][0]["recorded_gap_ms"] == 31 * YEAR_NS / 1e6


def test_a_gap_longer_than_any_wait_neither_overflows_nor_blocks_stop(tmp_path):
    # Condition.wait refuses a timeout past threading.TIMEOUT_MAX (OverflowError):
    # an uncapped gap of centuries killed the replay.
    path = write(tmp_path / "far.jsonl", [event(1, "now", T0), event(2, "later", 2**64 - 1)])
    plan = plan_replay(read_trace_file(path), max_gap=None)
    assert plan.steps[1].offset_ns == 2**64 - 1 - T0
    with Bus(name="far") as bus:
        replayer = Replayer(plan, BusTarget(bus))
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["report"] = replayer.run()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run, name="replayer")
        thread.start()
        # Wait for the replay to be waiting for step 2 (or to have died trying).
        deadline = time.monotonic() + 10
        while not replayer._cond._waiters and thread.is_alive():  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the replay never waited for step 2"
            time.sleep(0.001)
        replayer.stop()
        thread.join(10)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert report.stopped
    assert [s.name for s in report.sent] == ["now"]


# -- reasons: a code and plain words; each face adds its own remedy ------------------


def test_reasons_name_no_flag_and_the_cli_adds_its_own():
    from busctl.cli.replay import _cli_hints
    from tests.busctl.traces.test_trace_targets import SAMPLE

    plan = plan_replay(read_trace_file(SAMPLE))
    assert plan.left_out
    assert {r.code for _, r in plan.left_out} == {ReasonCode.COMMANDS_OFF}
    assert all("--" not in str(r) for _, r in plan.left_out)
    with Bus(name="reasons") as bus:
        sample_services.start(bus, **OPTIONS)
        report = Replayer(plan, BusTarget(bus), fast=True).run()
        with_commands = Replayer(plan_replay(read_trace_file(SAMPLE), commands=True),
                                 BusTarget(bus), fast=True).run()  # fmt: skip
    assert "commands are not replayed" in report.render()
    assert "--" not in report.render()
    skipped = {r.code for _, r in with_commands.skipped}
    assert ReasonCode.NOT_READONLY in skipped
    assert "not declared read-only" in with_commands.render()
    assert "--" not in with_commands.render()
    assert "not declared read-only (use --all-commands to re-execute it)" in (
        with_commands.render(_cli_hints())
    )
    reason = Reason(ReasonCode.NOT_READONLY)
    assert str(reason) == "not declared read-only"
    assert reason.text({ReasonCode.NOT_READONLY: "press a"}) == "not declared read-only (press a)"
    assert reason.to_json() == {"code": "not-readonly", "reason": "not declared read-only"}
    result = CliRunner().invoke(replay, [str(SAMPLE), "--dry-run"])
    assert "commands are not replayed (replay them with --commands)" in result.stdout
