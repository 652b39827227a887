"""A Ctrl-C that lands while ``busctl call`` is still sending is one during its wait.

The race the end-to-end test (``test_cli_failures``) can lose on a loaded
machine, made certain: the SIGINT arrives the moment the call has been sent,
before the wait has begun. It must get the same answer as one during the
wait (the command runs on in the bus), not a bare ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Service, command
from busctl import _cancel
from busctl._client import Client
from busctl._exit import ExitStatus
from busctl.cli import _interrupt
from busctl.cli.options import Failure

pytestmark = pytest.mark.timeout(30)


class Quick(Service):
    name = "quick"

    @command("quick.answer")
    def answer(self) -> int:
        return 42


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with Bus(name="interrupted", control=True, tracing=False) as bus:
        bus.add_service(Quick())
        assert bus.address is not None
        with Client.connect(str(bus.address)) as attached:
            yield attached


def test_a_ctrl_c_while_the_call_is_sent_is_answered_as_one_during_the_wait(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert threading.current_thread() is threading.main_thread()
    sent = _cancel.start_execute

    def send_then_ctrl_c(*args: Any, **kwargs: Any) -> _cancel.Running:
        running = sent(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # handled at the next bytecode: right here
        return running

    monkeypatch.setattr(_interrupt, "start_execute", send_then_ctrl_c)
    with pytest.raises(Failure) as failed:
        _interrupt.wait_call(client, "quick.answer", [], {}, timeout=10.0)
    assert failed.value.status == ExitStatus.INTERRUPTED
    # The answer of a Ctrl-C during the wait: the command ran on, and finished.
    assert str(failed.value) == "quick.answer finished meanwhile; its result is dropped"
    assert "stopped waiting for quick.answer: it runs on in the bus" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_without_a_ctrl_c_the_call_answers_and_the_handler_is_put_back(client: Client) -> None:
    assert _interrupt.wait_call(client, "quick.answer", [], {}, timeout=10.0) == 42
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
