"""``busctl call`` and Ctrl-C: a first stops waiting, a second within the window cancels.

A real bus in this process runs ``Counted``, whose async command awaits an
``asyncio.Event`` nothing sets (counting the ``CancelledError`` it sees) and
whose sync command blocks its thread until released. ``busctl call`` is a
real subprocess; Ctrl-C is a real SIGINT to it, sent once its command has
started in the bus and, the second time, once it has said that a second
Ctrl-C cancels.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from click.testing import CliRunner

from bus import Bus
from busctl._cancel import Running, cancel_execute, describe, start_execute
from busctl._client import Client
from busctl._exit import ExitStatus
from busctl.cli import cli
from tests.busctl.counted_services import Counted
from tests.busctl.programs import BUSCTL_CTRL_C
from tests.busctl.served_buses import counted_bus

pytestmark = pytest.mark.timeout(60)

WAIT = 20.0


@pytest.fixture
def served() -> Iterator[tuple[Bus, Counted]]:
    with counted_bus("cancel") as served:
        yield served


def busctl_call(bus: Bus, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "BUS_ADDRESS": str(bus.address)}
    return subprocess.Popen(
        [*BUSCTL_CTRL_C, "call", name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ctrl_c_twice(process: subprocess.Popen[str], counted: Counted) -> tuple[str, str]:
    """Ctrl-C once the command runs, again once told that it cancels; stdout and stderr."""
    assert counted.started.wait(WAIT), "the command never started"
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    first = process.stderr.readline()
    assert first == (
        f"stopped waiting for {process.args[-1]}: it runs on in the bus; "  # type: ignore[index]
        "press Ctrl-C again within 3 s to cancel it\n"
    )
    process.send_signal(signal.SIGINT)
    out, rest = process.communicate(timeout=WAIT)
    return out, first + rest


def test_a_second_ctrl_c_cancels_an_async_command(served: tuple[Bus, Counted]) -> None:
    bus, counted = served
    process = busctl_call(bus, "counted.wait_async")
    out, err = ctrl_c_twice(process, counted)
    assert process.returncode == ExitStatus.INTERRUPTED
    assert out == ""
    assert err.splitlines()[1:] == [
        "cancelled counted.wait_async: its handler was interrupted (or never started)"
    ]
    assert bus.wait_idle(5)
    assert counted.cancelled == 1  # the handler saw CancelledError at its await
    commands = {c["name"]: c for c in bus.inspect()["commands"]}
    assert commands["counted.wait_async"]["cancelled"] == 1


def test_a_sync_command_says_it_cannot_be_interrupted_and_finishes(
    served: tuple[Bus, Counted],
) -> None:
    bus, counted = served
    process = busctl_call(bus, "counted.wait_sync")
    out, err = ctrl_c_twice(process, counted)
    assert process.returncode == ExitStatus.INTERRUPTED
    assert out == ""
    assert err.splitlines()[1:] == [
        "could not cancel counted.wait_sync: its handler is sync and cannot be interrupted; "
        "it runs on in the bus to its end"
    ]
    assert counted.finished == 0  # still running: nothing stopped it
    bus.execute_command("releaser.release").result(WAIT)
    assert bus.wait_idle(WAIT)
    assert counted.finished == 1
    assert counted.cancelled == 0


def test_one_ctrl_c_leaves_the_command_running(served: tuple[Bus, Counted]) -> None:
    bus, counted = served
    process = busctl_call(bus, "counted.wait_sync")
    assert counted.started.wait(WAIT)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=WAIT)  # the window passes: no second Ctrl-C
    assert out == ""
    assert process.returncode == ExitStatus.INTERRUPTED
    assert err.splitlines() == [
        "stopped waiting for counted.wait_sync: it runs on in the bus; "
        "press Ctrl-C again within 3 s to cancel it",
        "left counted.wait_sync running in the bus; its result is dropped",
    ]
    assert counted.finished == 0
    counted.release.set()
    assert bus.wait_idle(WAIT)
    assert counted.finished == 1


def test_cancelling_what_has_already_finished_says_so(served: tuple[Bus, Counted]) -> None:
    bus, _ = served
    with Client.connect(str(bus.address)) as client:
        running = start_execute(client, "counted.counts", [], {}, timeout=5.0)
        assert running.future.result(WAIT)["value"]["calls"] == 0
        assert cancel_execute(client, running) == "finished"  # its reply had come
        # The bus no longer runs that request (the reply not yet read here).
        assert cancel_execute(client, Running(running.id, Future())) == "finished"
        assert describe("finished", "counted.counts") == (
            "could not cancel counted.counts: it had already finished"
        )


def test_on_a_terminal_the_lines_follow_the_echoed_ctrl_c_without_gaps(
    served: tuple[Bus, Counted],
) -> None:
    # A terminal echoes ^C where the cursor is: each line after a Ctrl-C starts
    # a new line first; a line after our own line (the window passed) does not.
    bus, counted = served
    master, slave = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "BUS_ADDRESS": str(bus.address)}
    process = subprocess.Popen(
        [*BUSCTL_CTRL_C, "call", "counted.wait_sync"], env=env, stdout=slave, stderr=slave
    )
    os.close(slave)
    try:
        assert counted.started.wait(WAIT)
        os.write(master, b"^C")  # what the terminal shows of a typed Ctrl-C (the pty echoes it)
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT) == ExitStatus.INTERRUPTED
        shown = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end is gone
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert shown.decode().replace("\r\n", "\n") == (
        "^C\n"
        "stopped waiting for counted.wait_sync: it runs on in the bus; "
        "press Ctrl-C again within 3 s to cancel it\n"
        "left counted.wait_sync running in the bus; its result is dropped\n"
    )


def test_introspect_says_whether_a_running_call_can_be_cancelled(
    served: tuple[Bus, Counted], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, _ = served
    monkeypatch.setenv("BUS_ADDRESS", str(bus.address))
    monkeypatch.setenv("NO_COLOR", "1")
    said = {}
    for name in ("counted.wait_async", "counted.wait_sync"):
        result = CliRunner().invoke(cli, ["introspect", name], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        said[name] = [line for line in result.output.splitlines() if line.startswith("async:")]
    assert said == {
        "counted.wait_async": ["async:     yes (a running call can be cancelled)"],
        "counted.wait_sync": [
            "async:     no (a sync handler: once running, a call cannot be interrupted)"
        ],
    }
