"""Live statistics: per command, per listener, per service; hung handlers, late replies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest

from bus import Activity, Bus, Service, command, listener
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the bus reaches on its own thread (watchdog, timers)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        pause.wait(0.01)


def _command(bus: Bus, name: str) -> dict[str, Any]:
    return next(c for c in bus.inspect()["commands"] if c["name"] == name)


def _service(bus: Bus, name: str) -> dict[str, Any]:
    return next(s for s in bus.inspect()["services"] if s["name"] == name)


class Calc(Service):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()

    @command("calc.div", readonly=True)
    def div(self, a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    @command("calc.hold")
    def hold(self) -> str:
        self.started.set()
        self.release.wait(10)
        return "held"

    @listener("calc.*")
    def on_calc(self, *args: Any) -> None:
        if args and args[0] == "fail":
            raise ValueError("listener failed")


def test_command_statistics_count_calls_errors_and_latency(bus: Bus) -> None:
    bus.add_service(Calc())
    for i in range(1, 11):
        bus.execute_command("calc.div", 10, i).result(timeout=5)
    with pytest.raises(ZeroDivisionError):
        bus.execute_command("calc.div", 1, 0).result(timeout=5)
    wait_idle(bus)

    div = _command(bus, "calc.div")
    assert (div["calls"], div["errors"], div["in_flight"]) == (11, 1, 0)
    assert div["last_error"] == "ZeroDivisionError: division by zero"
    assert div["last_error_at"] is not None
    assert div["p50_ms"] is not None
    assert div["p99_ms"] is not None
    assert 0 <= div["p50_ms"] <= div["p99_ms"]
    assert (div["owner"], div["handler"], div["doc"]) == ("calc", "Calc.div", "Divide a by b.")
    assert div["signature"] == "(a: float, b: float) -> float"
    assert [p["name"] for p in div["params"]] == ["a", "b"]
    assert (div["readonly"], _command(bus, "calc.hold")["readonly"]) == (True, False)
    service = _service(bus, "calc")
    assert (service["handled"], service["failed"]) == (11, 1)
    totals = bus.inspect()["totals"]
    assert (totals["commands"], totals["listeners"], totals["handled"], totals["failed"]) == (
        2,
        1,
        11,
        1,
    )


def test_listener_statistics_count_deliveries_and_errors(bus: Bus) -> None:
    bus.add_service(Calc())
    bus.fire_event("calc.ok")
    bus.fire_event("calc.bad", "fail")
    bus.fire_event("other")  # matches nothing
    wait_idle(bus)

    entry = bus.inspect()["listeners"][0]
    described = (entry["pattern"], entry["owner"], entry["handler"])
    assert described == ("calc.*", "calc", "Calc.on_calc")
    assert (entry["deliveries"], entry["errors"], entry["in_flight"]) == (2, 1, 0)
    assert entry["last_error"] == "ValueError: listener failed"
    assert entry["p50_ms"] is not None


def test_in_flight_mailbox_depth_busy_and_current_handler(bus: Bus) -> None:
    calc = Calc()
    bus.add_service(calc)
    held = bus.execute_command("calc.hold")
    assert calc.started.wait(5)
    queued = [bus.execute_command("calc.div", 1, 1) for _ in range(3)]

    service = _service(bus, "calc")
    thread = service["threads"][0]
    assert service["activity"] == "busy"
    assert service["mailbox"] == 3
    assert (thread["name"], thread["state"], thread["handler"]) == (
        "bus:test/calc",
        "busy",
        "calc.hold",
    )
    assert thread["running_for"] is not None
    assert thread["running_for"] >= 0
    assert thread["hung"] is False
    assert _command(bus, "calc.div")["in_flight"] == 3
    assert _command(bus, "calc.hold")["in_flight"] == 1

    calc.release.set()
    assert held.result(timeout=5) == "held"
    assert [f.result(timeout=5) for f in queued] == [1.0, 1.0, 1.0]
    wait_idle(bus)
    service = _service(bus, "calc")
    assert (service["activity"], service["mailbox"]) == ("idle", 0)
    assert service["threads"][0]["handler"] is None
    assert service["threads"][0]["running_for"] is None


def test_hung_handler_is_logged_once_and_shown(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    b = make_bus(hung_after=0.1)
    calc = Calc()
    b.add_service(calc)
    with caplog.at_level(logging.WARNING, logger="bus"):
        future = b.execute_command("calc.hold")
        assert calc.started.wait(5)
        _until(lambda: bool(b.inspect()["totals"]["hung"]))
        _until(lambda: any("hung handler" in r.getMessage() for r in caplog.records))
        thread = _service(b, "calc")["threads"][0]
        assert thread["hung"] is True
        assert thread["handler"] == "calc.hold"
        assert thread["running_for"] > 0.1
        # Logged once, however long it keeps running.
        time.sleep(0.3)
        hung_logs = [r for r in caplog.records if "hung handler" in r.getMessage()]
        assert len(hung_logs) == 1
        assert "'calc.hold'" in hung_logs[0].getMessage()
        calc.release.set()
        assert future.result(timeout=5) == "held"
    wait_idle(b)
    assert b.inspect()["totals"]["hung"] == 0


def test_late_reply_is_counted_when_the_caller_gave_up(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    calc = Calc()
    bus.add_service(calc)
    future = bus.execute_command("calc.hold")
    assert calc.started.wait(5)

    with pytest.raises(TimeoutError):
        future.result(timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="bus"):
        calc.release.set()
        wait_idle(bus)

    hold = _command(bus, "calc.hold")
    assert (hold["calls"], hold["late_replies"]) == (1, 1)
    assert bus.inspect()["totals"]["late_replies"] == 1
    assert any("late reply" in r.getMessage() for r in caplog.records)
    assert future.result(timeout=0) == "held"  # the result is still there


def test_cancel_too_late_counts_a_late_reply_and_cancel_in_time_skips_the_handler(
    bus: Bus,
) -> None:
    calc = Calc()
    bus.add_service(calc)
    running = bus.execute_command("calc.hold")
    assert calc.started.wait(5)
    queued = bus.execute_command("calc.div", 4, 2)

    assert running.cancel() is False  # already running: the caller gives up
    assert queued.cancel() is True  # not started: never runs
    calc.release.set()
    wait_idle(bus)

    with pytest.raises(CancelledError):
        queued.result(timeout=0)
    div, hold = _command(bus, "calc.div"), _command(bus, "calc.hold")
    assert (div["calls"], div["cancelled"], div["in_flight"]) == (0, 1, 0)
    assert (hold["calls"], hold["late_replies"]) == (1, 1)


def test_readonly_on_register_command_is_shown(bus: Bus) -> None:
    bus.register_command("get", lambda: 1, readonly=True, doc="Read a thing.")
    bus.register_command("set", lambda v: None)

    commands = {c["name"]: c for c in bus.inspect()["commands"]}
    assert commands["get"]["readonly"] is True
    assert commands["get"]["doc"] == "Read a thing."
    assert commands["set"]["readonly"] is False


def test_inspect_is_json_ready_and_describes_the_bus(make_bus: Callable[..., Bus]) -> None:
    import json

    b = make_bus(name="described", mailbox_size=7, hung_after=3.0)
    b.add_service(Calc())
    b.execute_command("calc.div", object(), 1)  # fails: TypeError inside the handler
    wait_idle(b)

    snapshot = json.loads(json.dumps(b.inspect()))
    assert snapshot["bus"]["name"] == "described"
    assert snapshot["bus"]["state"] == "running"
    assert (snapshot["bus"]["mailbox_size"], snapshot["bus"]["hung_after"]) == (7, 3.0)
    assert snapshot["tracing"]["enabled"] is True
    assert set(snapshot) >= {"bus", "totals", "services", "commands", "listeners", "waits"}


def test_watch_reports_calls_returns_events_and_deliveries(bus: Bus) -> None:
    seen: list[Activity] = []
    lock = threading.Lock()

    def watcher(activity: Activity) -> None:
        with lock:
            seen.append(activity)

    bus.add_service(Calc())
    with bus.watch(watcher):
        bus.execute_command("calc.div", 6, 3).result(timeout=5)
        bus.fire_event("calc.done", 2.0)
        wait_idle(bus)
    bus.execute_command("calc.div", 1, 1).result(timeout=5)  # no longer watched
    wait_idle(bus)

    kinds = sorted(a.kind for a in seen)
    assert kinds == ["call", "delivery", "event", "return"]
    ret = next(a for a in seen if a.kind == "return")
    assert (ret.name, ret.service, ret.result, ret.ok) == ("calc.div", "calc", "2.0", True)
    call = next(a for a in seen if a.kind == "call")
    assert (call.args, call.trace_id) == ("[6,3]", ret.trace_id)
    event = next(a for a in seen if a.kind == "event")
    assert (event.name, event.listeners, event.args) == ("calc.done", 1, "[2.0]")


def test_a_failing_watcher_is_counted_and_never_disturbs_the_bus(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(activity: Activity) -> None:
        raise RuntimeError("watcher broke")

    bus.register_command("ok", lambda: "fine")
    with caplog.at_level(logging.ERROR, logger="bus"), bus.watch(broken):
        assert bus.execute_command("ok").result(timeout=5) == "fine"
        wait_idle(bus)

    assert bus.inspect()["tracing"]["watch_errors"] == 2  # the call and its return
    # Logged once, not once per step: a watcher failing on every step of a
    # busy bus must not flood the log.
    assert len([r for r in caplog.records if "activity watcher failed" in r.getMessage()]) == 1


def test_activity_serialises_to_one_json_line(bus: Bus) -> None:
    import json

    seen: list[Activity] = []
    bus.register_command("ok", lambda x: x)
    with bus.watch(seen.append):
        bus.execute_command("ok", {"password": "p", "n": 1}).result(timeout=5)
        wait_idle(bus)

    call = next(a for a in seen if a.kind == "call")
    line = call.dumps()
    assert "\n" not in line
    data = json.loads(line)
    assert data["kind"] == "call"
    assert data["name"] == "ok"
    assert json.loads(data["args"]) == [{"password": "***", "n": 1}]
    assert "result" not in data  # None fields are left out
