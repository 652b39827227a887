"""busctl replay end to end, against a `busctl run` subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.busctl.programs import run_busctl

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = str(ROOT / "traces" / "sample.jsonl")


def busctl(env, *args):
    return run_busctl(env, *args)


def test_replay_with_commands_onto_a_running_bus(start_bus, runtime_dir, busctl_env):
    start_bus(["sample_services", "--name", "replayed"], runtime_dir)
    env = busctl_env(runtime_dir)
    done = busctl(
        env, "replay", SAMPLE, "--bus", "replayed", "--fast", "--commands",
        "--only", "motion.*", "--only", "lights.get", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] == 2
    assert report["commands"] == 2
    assert report["compared"] == 2
    assert report["differences"] == []
    assert not any("not marked" in note for note in report.get("notes", [])), report


def test_replay_reports_a_command_that_is_gone(start_bus, runtime_dir, busctl_env, tmp_path):
    probe = tmp_path / "only_greeter.py"
    probe.write_text("from sample_services import Greeter\n")
    start_bus([f"{probe}:Greeter", "--name", "greeter"], runtime_dir)
    env = busctl_env(runtime_dir)
    done = busctl(env, "replay", SAMPLE, "--bus", "greeter", "--fast", "--all-commands")
    assert "the command no longer exists on this bus" in done.stdout
    assert "automation.evening_scene" in done.stdout
