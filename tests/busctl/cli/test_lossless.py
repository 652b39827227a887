"""Spans the bus drops are never silent, and a lossless capture drops none.

The bus here has a trace buffer of 16 records and is sent a burst of
hundreds of events: a plain capture is told (and says) that the bus dropped
spans meanwhile; a lossless one makes the bus wait, and the file has them all.
The capture is a real ``busctl`` subprocess on the bus's real socket.
``busctl status`` says how many spans were lost, and how to lose none.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus import Bus
from busctl.cli import cli
from tests.bursts import Quiet, overflow

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
EVENTS = 500


@pytest.fixture
def small(runtime_dir: Path) -> Iterator[tuple[Bus, Quiet]]:
    bus = Bus(name="small", control=runtime_dir / "small.sock", span_buffer=16)
    quiet = Quiet(last=EVENTS - 1)
    bus.add_service(quiet)
    try:
        yield bus, quiet
    finally:
        bus.close()


def _capture(
    bus: Bus,
    quiet: Quiet,
    out: Path,
    env: dict[str, str],
    *flags: str,
) -> tuple[int, str]:
    """Capture while a burst is fired; the exit status and stderr of ``busctl capture``."""
    capture = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "busctl",
            "capture",
            "--bus",
            str(bus.address),
            "-o",
            str(out),
            *list(flags),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert capture.stderr is not None
        assert "capturing spans of bus small" in capture.stderr.readline()
        for i in range(EVENTS):
            bus.fire_event("burst", i)
        assert quiet.last.wait(60)
        assert bus.flush_traces(60)  # every span is queued for the capture, or was dropped
        capture.send_signal(signal.SIGINT)
        _, err = capture.communicate(timeout=60)
    finally:
        capture.kill()
    return capture.returncode, err


def _spans_in(path: Path) -> int:
    count = 0
    for line in path.read_text().splitlines():
        data = json.loads(line)
        for resource in data["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                count += len(scope["spans"])
    return count


def test_lossless_capture_has_every_span_of_an_overflowing_burst(
    small: tuple[Bus, Quiet],
    tmp_path: Path,
    runtime_dir: Path,
    busctl_env: Callable[..., dict[str, str]],
) -> None:
    bus, quiet = small
    out = tmp_path / "all.jsonl"
    status, err = _capture(bus, quiet, out, busctl_env(runtime_dir), "--lossless")
    assert status == 0, err
    assert _spans_in(out) == 2 * EVENTS, (err, bus.inspect()["tracing"])  # PRODUCER + CONSUMER each
    assert f"captured {2 * EVENTS} spans" in err
    assert "dropped" not in err
    tracing = bus.inspect()["tracing"]
    assert tracing["dropped"] == 0
    assert tracing["lossless_holds"] == 0  # let go when the capture ended


def test_a_plain_capture_says_the_bus_dropped_spans(
    small: tuple[Bus, Quiet],
    tmp_path: Path,
    runtime_dir: Path,
    busctl_env: Callable[..., dict[str, str]],
) -> None:
    bus, quiet = small
    out = tmp_path / "holes.jsonl"
    status, err = _capture(bus, quiet, out, busctl_env(runtime_dir))
    assert status == 0, err
    dropped = bus.inspect()["tracing"]["dropped"]
    assert dropped > 0
    assert _spans_in(out) == 2 * EVENTS - dropped
    assert f"warning: the bus dropped {dropped} spans meanwhile" in err
    assert "--lossless makes it wait instead" in err


def test_status_says_how_many_spans_were_lost_and_how_to_keep_them(
    small: tuple[Bus, Quiet],
) -> None:
    bus, quiet = small
    dropped = overflow(bus, quiet)  # EVENTS: far more than the buffer of 16 holds

    shown = CliRunner().invoke(cli, ["status", "--bus", str(bus.address)])
    assert shown.exit_code == 0, shown.output
    lost = next(line for line in shown.stdout.splitlines() if line.startswith("spans lost:"))
    assert f"{dropped} dropped (the trace buffer was full;" in lost
    assert "busctl capture --lossless" in lost
    as_json = CliRunner().invoke(cli, ["status", "--bus", str(bus.address), "--json"])
    assert json.loads(as_json.stdout)["tracing"]["dropped"] == dropped


def test_status_of_a_bus_that_lost_no_span_has_no_such_line(small: tuple[Bus, Quiet]) -> None:
    bus, _ = small
    shown = CliRunner().invoke(cli, ["status", "--bus", str(bus.address)])
    assert shown.exit_code == 0, shown.output
    assert "spans lost" not in shown.stdout
