"""Untraced calls, the same with the C accelerator and with its Python reference.

Every test runs twice, through the ``mode`` fixture (``conftest.py``). The
accelerator runs an unobserved call on a one-thread service, and starts and
completes its future itself while no one else is at it; a cancelled future,
a failure, a caller that gave up, a ``wait()`` or a callback on the future
go the Python way. The semantics must not tell the two apart.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest

from bus import (
    Bus,
    BusClosedError,
    CommandFuture,
    CommandNotFoundError,
    MailboxFullError,
)
from bus._core import _accel
from bus._core._bus import BusCore
from bus._core._mailbox import NO_KWARGS
from bus.testing import wait_idle
from tests.bus.core.call_services import Asker, Calls, command_entry, service_entry

pytestmark = pytest.mark.timeout(30)


def test_calls_return_their_results_in_order_on_the_service_thread(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    futures = [quiet.execute_command("echo", i, key=i * 2) for i in range(200)]
    futures.append(quiet.execute_command("echo"))
    assert [f.result(10) for f in futures[:-1]] == [((i,), {"key": i * 2}) for i in range(200)]
    assert futures[-1].result(10) == ((), {})
    assert service.ran == [("echo", (i,), {"key": i * 2}) for i in range(200)] + [("echo", (), {})]
    assert service.threads == {"bus:quiet/calls"}
    entry = command_entry(quiet, "echo")
    assert (entry["calls"], entry["errors"], entry["in_flight"]) == (201, 0, 0)
    assert entry["p50_ms"] is not None
    counts = service_entry(quiet, "calls")
    assert (counts["handled"], counts["failed"]) == (201, 0)


def test_a_failing_handler_raises_to_its_caller_and_the_thread_goes_on(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    future = quiet.execute_command("boom", "no")
    with pytest.raises(ValueError, match="no") as raised:
        future.result(10)
    # The handler's own frame is in the traceback the caller sees.
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "boom" in frames
    assert quiet.execute_command("echo", 1).result(10) == ((1,), {})
    entry = command_entry(quiet, "boom")
    assert (entry["calls"], entry["errors"]) == (1, 1)
    assert entry["last_error"] == "ValueError: no"
    counts = service_entry(quiet, "calls")
    assert (counts["handled"], counts["failed"], counts["state"]) == (2, 1, "running")


def test_a_call_cancelled_before_it_runs_never_runs(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    first = quiet.execute_command("slow", 1)
    assert service.entered.wait(10)
    queued = quiet.execute_command("echo", 2)
    after = quiet.execute_command("echo", 3)
    assert queued.cancel()
    service.gate.set()
    assert after.result(10) == ((3,), {})
    assert first.result(10) == 1
    with pytest.raises(CancelledError):
        queued.result(10)
    assert service.ran == [("slow", 1), ("echo", (3,), {})]
    wait_idle(quiet)
    entry = command_entry(quiet, "echo")
    assert (entry["calls"], entry["cancelled"], entry["in_flight"]) == (1, 1, 0)


def test_a_result_after_the_caller_gave_up_is_a_late_reply(
    quiet: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    service = Calls()
    quiet.add_service(service)
    future = quiet.execute_command("slow", 5)
    assert service.entered.wait(10)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.01)
    with caplog.at_level(logging.WARNING, logger="bus"):
        service.gate.set()
        wait_idle(quiet)
    assert future.result() == 5  # it still completes
    assert command_entry(quiet, "slow")["late_replies"] == 1
    assert any("late reply: slow" in r.getMessage() for r in caplog.records)


def test_callbacks_and_wait_see_a_call_complete(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    future = quiet.execute_command("slow", 7)
    assert service.entered.wait(10)
    called: list[tuple[Any, str]] = []
    future.add_done_callback(lambda f: called.append((f.result(), threading.current_thread().name)))
    plain = quiet.execute_command("echo", 8)
    waiting = threading.Thread(target=concurrent.futures.wait, args=([plain], 20))
    waiting.start()
    service.gate.set()
    waiting.join(20)
    assert not waiting.is_alive()
    assert plain.done()
    assert future.result(10) == 7
    assert called == [(7, "bus:quiet/calls")]  # once, on the service's thread


def test_inspect_during_a_call_shows_it_running_then_idle(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    future = quiet.execute_command("slow", 1)
    assert service.entered.wait(10)
    [thread] = service_entry(quiet, "calls")["threads"]
    assert (thread["state"], thread["handler"]) == ("busy", "slow")
    [worker] = quiet.router.command("slow").destination.workers  # type: ignore[attr-defined]
    assert worker.future is future
    service.gate.set()
    assert future.result(10) == 1
    wait_idle(quiet)
    [thread] = service_entry(quiet, "calls")["threads"]
    assert (thread["state"], thread["handler"]) == ("idle", None)
    assert worker.future is None
    assert worker.current is None


def test_a_handler_calls_another_service_and_waits(quiet: Bus) -> None:
    quiet.add_service(Calls())
    quiet.add_service(Asker())
    assert [quiet.execute_command("ask", i).result(10) for i in range(50)] == [
        ((i,), {}) for i in range(50)
    ]
    assert command_entry(quiet, "echo")["calls"] == 50


def _run_scenario() -> dict[str, Any]:
    """Calls that reach every branch; what the bus reports of them."""
    with Bus(name="same", tracing=False) as b:
        service = Calls()
        b.add_service(service)
        b.add_service(Asker())
        slow = b.execute_command("slow", 0)
        assert service.entered.wait(10)
        cancelled = b.execute_command("echo", "cancelled")
        assert cancelled.cancel()
        failing = b.execute_command("boom", "no")
        late = b.execute_command("slow", 1)
        plain = [b.execute_command("echo", i) for i in range(5)]
        plain += [b.execute_command("double", i) for i in range(5)]
        asked = b.execute_command("ask", "via")
        service.gate.set()
        with pytest.raises(ValueError, match="no"):
            failing.result(10)
        results = [slow.result(10), late.result(10), asked.result(10)]
        results += [f.result(10) for f in plain]
        wait_idle(b)
        snapshot = b.inspect()
        timeless = ("p50_ms", "p99_ms", "last_error_at", "registered_at")
        commands = [
            {k: v for k, v in entry.items() if k not in timeless} for entry in snapshot["commands"]
        ]
        services = [
            {k: s[k] for k in ("name", "handled", "failed", "dropped", "rejected", "mailbox")}
            for s in snapshot["services"]
        ]
        return {
            "ran": service.ran,
            "results": results,
            "commands": commands,
            "services": services,
            "totals": snapshot["totals"],
        }


def test_the_accelerator_and_the_python_code_report_the_same_calls(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_run_scenario)
    assert accelerated == reference
    echo = next(c for c in reference["commands"] if c["name"] == "echo")
    assert (echo["calls"], echo["cancelled"]) == (6, 1)
    boom = next(c for c in reference["commands"] if c["name"] == "boom")
    assert (boom["calls"], boom["errors"]) == (1, 1)


# -- the caller's side: execute_command and result ---------------------------------------


def test_a_future_made_in_c_is_the_one_python_makes(quiet: Bus) -> None:
    """ExecuteCommand makes the future without running __init__: same slots, same values."""
    quiet.add_service(Calls())
    made = quiet.execute_command("echo", 1)
    made.result(10)
    handler = quiet.router.command("echo")
    reference = CommandFuture(handler, quiet._waits)
    reference.set_running_or_notify_cancel()
    reference.set_result(made.result())
    for name in CommandFuture.__slots__:
        ours, theirs = getattr(made, name), getattr(reference, name)
        if name in ("_lock", "_settled"):
            assert type(ours) is type(theirs)
            assert ours.locked() == theirs.locked()
        else:
            assert ours == theirs, name
    assert not hasattr(made, "__dict__") or not vars(made)  # no attribute beside the slots
    assert (made.chain, made.via, made._task) == (None, None, None)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument 'x'"),
        ((1, 2), {}, "too many positional arguments"),
        ((), {"y": 1}, "unexpected keyword argument 'y'"),
    ],
)
def test_arguments_that_do_not_bind_are_refused_before_anything_is_sent(
    quiet: Bus, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    service = Calls()
    quiet.add_service(service)
    with pytest.raises(TypeError, match=message):
        quiet.execute_command("slow", *args, **kwargs)
    entry = command_entry(quiet, "slow")
    assert (entry["calls"], entry["in_flight"], entry["dropped"]) == (0, 0, 0)
    assert service.ran == []


def test_unknown_commands_and_a_closed_bus_are_refused_as_in_python(mode: str) -> None:
    with Bus(name="refusing", tracing=False) as b:
        b.add_service(Calls())
        with pytest.raises(CommandNotFoundError, match="ecko"):
            b.execute_command("ecko", 1)
    with pytest.raises(BusClosedError):
        b.execute_command("echo", 1)


def test_a_held_call_is_caught_on_both_paths(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    assert quiet.execute_command("double", 1).result(10) == 2  # the quick path, warmed
    hold = quiet.holds.add("double")
    future = quiet.execute_command("double", 2)
    [item] = quiet.holds.held()
    assert (item.kind, item.name, item.args) == ("call", "double", (2,))
    assert not future.done()
    quiet.holds.remove(hold.id)
    assert future.result(10) == 4
    assert quiet.execute_command("double", 3).result(10) == 6  # no hold: the quick path
    assert service.ran == [("double", 1), ("double", 2), ("double", 3)]


def test_a_full_mailbox_refuses_a_call(mode: str) -> None:
    with Bus(name="full", tracing=False, mailbox_size=1) as b:
        service = Calls()
        b.add_service(service)
        running = b.execute_command("slow", 1)
        assert service.entered.wait(10)
        queued = b.execute_command("double", 2)
        with pytest.raises(MailboxFullError):
            b.execute_command("double", 3)
        service.gate.set()
        assert (running.result(10), queued.result(10)) == (1, 4)
        assert command_entry(b, "double")["dropped"] == 1


def test_result_with_a_timeout_or_on_a_service_thread_waits_the_python_way(quiet: Bus) -> None:
    service = Calls()
    quiet.add_service(service)
    quiet.add_service(Asker())
    future = quiet.execute_command("slow", 4)
    assert service.entered.wait(10)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(0.01)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.01)
    service.gate.set()
    assert future.result(None) == 4
    assert future.result(timeout=None) == 4
    assert quiet.execute_command("ask", 3).result() == ((3,), {})


def test_the_verbs_keep_their_signatures_and_docs(quiet: Bus) -> None:
    signature = inspect.signature(quiet.execute_command)
    assert list(signature.parameters) == ["name", "args", "kwargs"]
    assert list(inspect.signature(CommandFuture.result).parameters) == ["self", "timeout"]
    assert CommandFuture.result.__doc__
    assert "Wait for the result" in CommandFuture.result.__doc__
    assert BusCore.execute_command.__name__ == "execute_command"
    speedups = "c" if _accel.mode() == "c" else "python"
    assert speedups == quiet.inspect()["bus"]["speedups"]


def test_keyword_arguments_take_the_quick_path_too(quiet: Bus, mode: str) -> None:
    """In C, a call or an event with keywords runs no Python code of the verbs."""
    quiet.add_service(Calls())
    heard: list[Any] = []
    quiet.register_listener("tick", lambda *a, **k: heard.append((a, k)))
    quiet.fire_event("tick", 0)  # the first fire of a name routes it, in Python
    wait_idle(quiet)
    heard.clear()
    ran: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name in ("execute_command", "fire_event"):
            ran.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        future = quiet.execute_command("echo", 1, key=2)
        quiet.fire_event("tick", 3, key=4)
    finally:
        sys.setprofile(None)
    assert future.result(10) == ((1,), {"key": 2})
    wait_idle(quiet)
    assert heard == [((3,), {"key": 4})]
    assert ran == ([] if mode == "c" else ["execute_command", "fire_event"])


def test_a_handler_that_changes_its_kwargs_changes_no_other_items(quiet: Bus) -> None:
    """Items sent without keywords share one empty dict: a handler gets a copy."""
    seen: list[dict[str, Any]] = []

    def meddle(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(dict(kwargs))
        kwargs["meddled"] = True
        return kwargs

    quiet.register_listener("tick", meddle)
    quiet.register_command("meddle", meddle)
    for _ in range(3):
        quiet.fire_event("tick", 1)
        assert quiet.execute_command("meddle", 1).result(10) == {"meddled": True}
    wait_idle(quiet)
    assert seen == [{}] * 6
    assert NO_KWARGS == {}
