"""The REPL and Ctrl-C while a command runs: it asks whether to cancel it.

A real bus in this process runs ``Counted``: an async command that awaits an
``asyncio.Event`` nothing sets (counting the ``CancelledError`` it sees) and
a sync one that blocks its thread until released. The REPL is typed into
through prompt-toolkit's pipe on a thread (the ``Session`` of ``test_repl``),
and, once, as a real ``busctl repl`` subprocess on a pseudo-terminal.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator

import pytest

from bus import Bus
from busctl._client import Client
from tests.busctl.counted_services import Counted
from tests.busctl.repl.test_repl import WAIT, Session, session
from tests.busctl.served_buses import counted_bus

__all__ = ["session"]  # test_repl's fixture, on this module's client

pytestmark = pytest.mark.timeout(60)

QUESTION = (
    "cancel counted.wait_async? y cancels it, n keeps waiting, "
    "Ctrl-C again stops waiting and leaves it running"
)


@pytest.fixture
def home() -> Iterator[tuple[Bus, Counted]]:
    # A test may leave counted.wait_async running (it waits for nothing):
    # close cancels it once the timeout runs out, so keep that short.
    with counted_bus("home", close_timeout=1) as served:
        yield served


@pytest.fixture
def client(home: tuple[Bus, Counted]) -> Iterator[Client]:
    """``session``'s client: attached to ``home``."""
    with Client.connect(str(home[0].address)) as attached:
        yield attached


def started(session: Session, counted: Counted, line: str) -> int:
    """Type ``line``; return where the transcript was, once its command runs."""
    counted.started.clear()
    start = len(session.out.getvalue())
    session.type(line + "\r")
    assert counted.started.wait(WAIT)
    return start


def test_y_cancels_an_async_command(session: Session, home: tuple[Bus, Counted]) -> None:
    bus, counted = home
    start = started(session, counted, "counted.wait_async")
    session.type("\x03")
    session.out.wait_for(QUESTION, after=start)
    session.type("y")
    end = session.out.wait_for("or never started)", after=start)
    assert session.out.getvalue()[start:end].endswith(
        "cancelled counted.wait_async: its handler was interrupted (or never started)"
    )
    assert bus.wait_idle(5)
    assert counted.cancelled == 1  # the handler saw CancelledError
    # The session carries on; the cancelled call's reply printed nothing.
    text = session.line("counted.counts", '"cancelled": 1')
    assert "error" not in text.lower()


def test_n_keeps_waiting_and_the_result_comes(session: Session, home: tuple[Bus, Counted]) -> None:
    _, counted = home
    start = started(session, counted, "counted.wait_sync")
    session.type("\x03")
    session.out.wait_for(QUESTION.replace("wait_async", "wait_sync"), after=start)
    session.type("n")
    session.out.wait_for("waiting for counted.wait_sync again", after=start)
    counted.release.set()
    session.out.wait_for('"finished"', after=start)
    assert counted.finished == 1


def test_y_on_a_sync_command_says_it_cannot_be_interrupted_and_waits_on(
    session: Session, home: tuple[Bus, Counted]
) -> None:
    bus, counted = home
    start = started(session, counted, "counted.wait_sync")
    session.type("\x03")
    session.out.wait_for(QUESTION.replace("wait_async", "wait_sync"), after=start)
    session.type("y")
    session.out.wait_for(
        "could not cancel counted.wait_sync: its handler is sync and cannot be interrupted; "
        "still waiting for it to finish (Ctrl-C stops waiting)",
        after=start,
    )
    bus.execute_command("releaser.release").result(WAIT)
    session.out.wait_for('"finished"', after=start)  # it ran to its end, and its result shows
    assert counted.finished == 1
    assert counted.cancelled == 0


def test_a_second_ctrl_c_stops_waiting_and_leaves_it_running(
    session: Session, home: tuple[Bus, Counted]
) -> None:
    bus, counted = home
    start = started(session, counted, "counted.wait_async")
    session.type("\x03")
    session.out.wait_for(QUESTION, after=start)
    session.type("\x03")
    session.out.wait_for(
        "stopped waiting for counted.wait_async: it runs on in the bus; its result is dropped",
        after=start,
    )
    assert '"calls": 0' in session.line("counted.counts", "}")
    assert counted.cancelled == 0
    commands = {c["name"]: c for c in bus.inspect()["commands"]}
    assert commands["counted.wait_async"]["in_flight"] == 1  # still running


# -- a real busctl repl on a pseudo-terminal ------------------------------------------------


class Terminal:
    """A ``busctl repl`` subprocess on a pseudo-terminal: type into it, read what it shows."""

    def __init__(self, address: str) -> None:
        self.master, slave = pty.openpty()
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "BUS_ADDRESS": address,
            "XDG_STATE_HOME": tempfile.mkdtemp(prefix="brh", dir="/tmp"),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "busctl", "repl"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_raw(self, timeout: float = WAIT) -> None:
        """Wait until the REPL reads keys itself (raw mode): Ctrl-C is then a key, not SIGINT.

        Between a prompt and the wait for a reply the terminal is briefly
        cooked; a Ctrl-C typed then is a signal (which a person cannot time).
        """
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.master)[3] & (termios.ICANON | termios.ISIG):
            assert time.monotonic() < deadline, "the REPL never put the terminal in raw mode"
            select.select([self.master], [], [], 0.01)  # the state is polled: no event for it
            self._drain()

    def _drain(self) -> None:
        ready, _, _ = select.select([self.master], [], [], 0)
        if ready:
            with contextlib.suppress(OSError):  # the REPL ended
                self.seen += os.read(self.master, 65536).decode(errors="replace")

    def wait_for(self, text: str, timeout: float = WAIT) -> None:
        """Read until ``text`` has been shown (escape sequences and all)."""
        deadline = time.monotonic() + timeout
        while text not in _plain(self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared in:\n{_plain(self.seen)}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the REPL ended
                    break
        assert text in _plain(self.seen), _plain(self.seen)

    def close(self) -> None:
        if self.process.poll() is None:
            self.wait_raw()  # at the prompt
            self.type("\x04")
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        os.close(self.master)


def _plain(text: str) -> str:
    """What a screen would show, roughly: escape sequences and carriage returns removed."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r", "", text)


def test_in_a_real_terminal_ctrl_c_then_y_cancels(home: tuple[Bus, Counted]) -> None:
    bus, counted = home
    terminal = Terminal(str(bus.address))
    try:
        terminal.wait_for("Ctrl-D exits")
        terminal.wait_raw()  # the prompt reads keys
        terminal.type("counted.wait_async\r")
        assert counted.started.wait(WAIT)
        terminal.wait_raw()  # the wait for its reply reads keys
        terminal.type("\x03")
        terminal.wait_for(QUESTION)
        terminal.type("y")
        terminal.wait_for("cancelled counted.wait_async: its handler was interrupted")
        assert bus.wait_idle(5)
        assert counted.cancelled == 1
        terminal.type("counted.counts\r")
        terminal.wait_for('"cancelled": 1')
    finally:
        terminal.close()
    assert terminal.process.returncode == 0


def test_help_on_a_command_says_whether_it_can_be_cancelled(session: Session) -> None:
    assert "async:      yes (cancellable)" in session.line("?counted.wait_async", "last error")
    assert "async:      no (cannot be interrupted)" in session.line(
        "?counted.wait_sync", "last error"
    )
