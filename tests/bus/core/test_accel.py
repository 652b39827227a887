"""Untraced event delivery, the same with the C accelerator and with its Python reference.

Every test here runs twice, through the ``mode`` fixture: with the
extension (``_speedups``, skipped where it was not built) and with the
pure-Python code it replaces (``BUS_PURE_PYTHON=1`` does the same for a
process). The traced tests elsewhere never reach the accelerator: an
observed event always goes the Python way.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, listener
from bus._core import _accel
from bus._core._bus import BusCore
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


class Heard(Service):
    """Keeps what its listeners hear; ``fail`` makes ``tick`` raise on that value."""

    def __init__(self, name: str, fail: Any = None, gate: threading.Event | None = None) -> None:
        super().__init__(name=name)
        self.heard: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.threads: set[str] = set()
        self.fail = fail
        self.gate = gate  # the value "block" waits for it
        self.started = threading.Event()

    @listener("tick")
    def on_tick(self, *args: Any, **kwargs: Any) -> None:
        self.threads.add(threading.current_thread().name)
        if self.gate is not None and args == ("block",):
            self.started.set()
            assert self.gate.wait(20)
        if args and args[0] == self.fail:
            raise ValueError(f"no {args[0]}")
        self.heard.append(("tick", args, kwargs))

    @listener("room.*")
    def on_room(self, *args: Any, **kwargs: Any) -> None:
        self.heard.append(("room", args, kwargs))


class Blocking(Service):
    """Its ``tick`` listener waits on ``release`` for the value ``"block"``."""

    def __init__(self, name: str = "blocking") -> None:
        super().__init__(name=name)
        self.started = threading.Event()
        self.release = threading.Event()
        self.heard: list[Any] = []

    @listener("tick")
    def on_tick(self, value: Any) -> None:
        if value == "block":
            self.started.set()
            assert self.release.wait(20)
        self.heard.append(value)


def _listener(b: Bus, owner: str, pattern: str = "tick") -> dict[str, Any]:
    snapshot = b.inspect()
    return next(
        entry
        for entry in snapshot["listeners"]
        if entry["owner"] == owner and entry["pattern"] == pattern
    )


def _service(b: Bus, name: str) -> dict[str, Any]:
    return next(s for s in b.inspect()["services"] if s["name"] == name)


def test_every_listener_hears_each_event_in_order_with_its_arguments(quiet: Bus) -> None:
    first, second = Heard("first"), Heard("second")
    quiet.add_service(first)
    quiet.add_service(second)
    for i in range(200):
        quiet.fire_event("tick", i)
    quiet.fire_event("tick", "k", flag=True)  # keyword arguments: the Python way
    quiet.fire_event("room.hall", 1, 2)
    wait_idle(quiet)
    expected = [("tick", (i,), {}) for i in range(200)]
    expected += [("tick", ("k",), {"flag": True}), ("room", (1, 2), {})]
    assert first.heard == expected
    assert second.heard == expected
    assert first.threads == {"bus:quiet/first"}
    entry = _listener(quiet, "first")
    assert (entry["deliveries"], entry["errors"], entry["in_flight"]) == (201, 0, 0)
    assert entry["p50_ms"] is not None
    service = _service(quiet, "first")
    assert (service["handled"], service["failed"], service["dropped"]) == (202, 0, 0)
    assert quiet.inspect()["totals"]["handled"] == 404


def test_a_failing_listener_is_logged_counted_and_harms_nothing_else(
    quiet: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    failing, other = Heard("failing", fail=3), Heard("other")
    quiet.add_service(failing)
    quiet.add_service(other)
    with caplog.at_level(logging.ERROR, logger="bus"):
        for i in range(6):
            quiet.fire_event("tick", i)  # the firer never sees the error
        wait_idle(quiet)
    assert [args for _, args, _ in failing.heard] == [(i,) for i in (0, 1, 2, 4, 5)]
    assert len(other.heard) == 6
    [record] = [r for r in caplog.records if "failed on event" in r.getMessage()]
    assert "on_tick" in record.getMessage()
    assert "'failing'" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)
    assert str(record.exc_info[1]) == "no 3"
    assert record.exc_info[1].__traceback__ is not None
    entry = _listener(quiet, "failing")
    assert (entry["deliveries"], entry["errors"]) == (6, 1)
    assert entry["last_error"] == "ValueError: no 3"
    service = _service(quiet, "failing")
    assert (service["handled"], service["failed"]) == (6, 1)


def test_a_full_mailbox_drops_the_delivery_and_counts_it(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Bus(name="small", tracing=False, mailbox_size=2) as b:
        blocking = b.add_service(Blocking())
        assert isinstance(blocking, Blocking)
        b.fire_event("tick", "block")
        assert blocking.started.wait(5)
        b.fire_event("tick", 1)
        b.fire_event("tick", 2)
        with caplog.at_level(logging.WARNING, logger="bus"):
            b.fire_event("tick", 3)  # never raises: dropped and counted
        assert any("dropped" in r.getMessage() for r in caplog.records)
        service = _service(b, "blocking")
        assert (service["mailbox"], service["dropped"], service["activity"]) == (2, 1, "busy")
        entry = _listener(b, "blocking")
        assert (entry["dropped"], entry["in_flight"]) == (1, 3)
        assert b.inspect()["totals"]["dropped"] == 1
        blocking.release.set()
        wait_idle(b)
        assert blocking.heard == ["block", 1, 2]
        assert _listener(b, "blocking")["deliveries"] == 3


def test_inspect_during_a_delivery_shows_it_running_and_wait_idle_waits_for_it(
    quiet: Bus,
) -> None:
    blocking = Blocking()
    quiet.add_service(blocking)
    quiet.fire_event("tick", "block")
    assert blocking.started.wait(5)
    [thread] = _service(quiet, "blocking")["threads"]
    assert (thread["state"], thread["handler"]) == ("busy", "tick")
    assert thread["running_for"] is not None
    assert thread["running_for"] >= 0
    assert not quiet.wait_idle(0.05)
    blocking.release.set()
    wait_idle(quiet)
    [thread] = _service(quiet, "blocking")["threads"]
    assert (thread["state"], thread["handler"]) == ("idle", None)


def test_close_drops_and_counts_the_events_still_queued(mode: str) -> None:
    b = Bus(name="closing", tracing=False, hung_after=60)
    blocking = Blocking()
    b.add_service(blocking)
    b.fire_event("tick", "block")
    assert blocking.started.wait(5)
    for i in range(5):
        b.fire_event("tick", i)
    b.close(timeout=0.2)  # gives up on the blocked listener
    entry = _listener(b, "blocking")
    assert (entry["dropped"], entry["in_flight"]) == (5, 1)  # the blocked one still runs
    assert _service(b, "blocking")["dropped"] == 5
    blocking.release.set()
    worker = next(rt for rt in b.runtimes() if rt.name == "blocking").threads[0]
    worker.join(10)
    assert blocking.heard == ["block"]  # it finished late; nothing queued ran
    assert _listener(b, "blocking")["deliveries"] == 1


def test_a_hold_catches_an_untraced_event_and_lets_it_go(quiet: Bus) -> None:
    heard = Heard("heard")
    quiet.add_service(heard)
    hold = quiet.holds.add("tick", kind="event")
    quiet.fire_event("tick", 1)
    [item] = quiet.holds.held()
    assert (item.kind, item.name) == ("event", "tick")
    assert heard.heard == []
    quiet.holds.remove(hold.id)
    wait_idle(quiet)
    quiet.fire_event("tick", 2)  # no hold left: the plain path again
    wait_idle(quiet)
    assert heard.heard == [("tick", (1,), {}), ("tick", (2,), {})]


def test_pool_and_async_listeners_hear_every_event(quiet: Bus) -> None:
    pooled: list[int] = []
    quiet.register_listener("tick", pooled.append)  # from this thread: the shared pool

    class Looped(Service):
        def __init__(self) -> None:
            super().__init__(name="looped")
            self.heard: list[int] = []

        @listener("tick")
        async def on_tick(self, value: int) -> None:
            await asyncio.sleep(0)
            self.heard.append(value)

    looped = Looped()
    quiet.add_service(looped)
    for i in range(50):
        quiet.fire_event("tick", i)
    wait_idle(quiet)
    assert sorted(pooled) == list(range(50))
    assert looped.heard == list(range(50))
    assert _listener(quiet, "pool")["deliveries"] == 50
    assert _listener(quiet, "looped")["deliveries"] == 50


def test_a_validated_bus_converts_then_fires_through_the_same_path(mode: str) -> None:
    with Bus(name="checked", tracing=False, validate=True) as b:
        heard = Heard("heard")
        b.add_service(heard)
        b.fire_event("tick", 7)
        wait_idle(b)
        assert heard.heard == [("tick", (7,), {})]


class _Broken(BaseException):
    """A bus error from inside the bus, not a listener's."""


def test_a_bus_error_after_a_listener_failed_ends_the_thread_and_fails_the_service(
    quiet: Bus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = Heard("failing", fail=0)
    quiet.add_service(failing)
    runtime = next(rt for rt in quiet.runtimes() if rt.name == "failing")

    def broken(*args: Any) -> None:
        raise _Broken("the log broke")

    monkeypatch.setattr(runtime, "listener_failed", broken)
    with caplog.at_level(logging.CRITICAL, logger="bus"):
        quiet.fire_event("tick", 0)
        wait_idle(quiet)
    assert any("died of _Broken" in r.getMessage() for r in caplog.records)
    service = _service(quiet, "failing")
    assert service["state"] == "failed"
    quiet.fire_event("tick", 1)  # refused by the failed mailbox: dropped, counted
    entry = _listener(quiet, "failing")
    assert (entry["errors"], entry["dropped"]) == (1, 1)
    assert _service(quiet, "failing")["dropped"] == 1


def _run_scenario() -> dict[str, Any]:
    """Work that touches every branch of the fan-out; what the bus reports of it."""
    with Bus(name="same", tracing=False, mailbox_size=3) as b:
        gate = threading.Event()
        first, failing = Heard("first", gate=gate), Heard("failing", fail=2, gate=gate)
        blocking = Blocking()
        blocking.release = gate
        for service in (first, failing, blocking):
            b.add_service(service)
        pooled: list[Any] = []
        b.register_listener("room.*", lambda *args, **kwargs: pooled.append((args, kwargs)))
        b.fire_event("tick", "block")  # every service busy: the next three wait, three drop
        for started in (first.started, failing.started, blocking.started):
            assert started.wait(5)
        for i in range(6):
            b.fire_event("tick", i)
        b.fire_event("room.hall", "lamp", on=True)
        b.fire_event("nobody.listens")
        gate.set()
        wait_idle(b)
        snapshot = b.inspect()
        heard = {"first": first.heard, "failing": failing.heard, "blocking": blocking.heard}
        timeless = ("p50_ms", "p99_ms", "last_error_at", "registered_at")
        listeners = [
            {k: v for k, v in entry.items() if k not in timeless} for entry in snapshot["listeners"]
        ]
        services = [
            {k: s[k] for k in ("name", "handled", "failed", "dropped", "rejected", "mailbox")}
            for s in snapshot["services"]
        ]
        return {
            "heard": heard,
            "pooled": pooled,
            "listeners": listeners,
            "services": services,
            "totals": snapshot["totals"],
        }


def test_the_accelerator_and_the_python_code_report_the_same(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_run_scenario)
    assert accelerated == reference
    # The scenario did reach each branch: drops, an error, the pool.
    assert reference["totals"]["dropped"] == 11  # 3 ticks each, and room.hall twice
    assert reference["totals"]["failed"] == 1
    assert reference["pooled"] == [(("lamp",), {"on": True})]
    assert reference["heard"]["blocking"] == ["block", 0, 1, 2]


def test_fire_event_keeps_the_signature_and_doc_of_its_python_code(quiet: Bus) -> None:
    signature = inspect.signature(quiet.fire_event)
    assert list(signature.parameters) == ["name", "args", "kwargs"]
    assert quiet.fire_event.__doc__ == _accel._fire_python.__doc__
    assert BusCore.fire_event.__name__ == "fire_event"


@pytest.mark.parametrize(
    ("value", "expected"), [("1", "python"), ("yes", "python"), ("0", None), ("", None)]
)
def test_bus_pure_python_forces_the_fallback_in_a_process(value: str, expected: str | None) -> None:
    env = {**os.environ, _accel.ENV: value}
    code = (
        "from bus import Bus\n"
        "with Bus(name='env', tracing=False) as b:\n"
        "    print(b.inspect()['bus']['speedups'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    default = "c" if _accel.available() else "python"
    assert result.stdout.strip() == (expected or default)


def test_use_reports_whether_the_accelerator_runs(mode: str) -> None:
    assert _accel.mode() == mode
    assert isinstance(vars(BusCore)["fire_event"], Callable)  # type: ignore[arg-type]
    assert (vars(BusCore)["fire_event"] is _accel._fire_python) == (mode == "python")


def test_without_the_extension_the_bus_runs_its_python_code() -> None:
    # As on a machine without a compiler, where setuptools skips the
    # optional extension: the import fails and nothing else does.
    code = (
        "import sys\n"
        "sys.modules['bus._core._speedups'] = None\n"
        "import threading\n"
        "from bus import Bus\n"
        "from bus._core import _accel\n"
        "heard = []\n"
        "with Bus(name='plain', tracing=False) as b:\n"
        "    b.register_listener('tick', heard.append)\n"
        "    b.fire_event('tick', 1)\n"
        "    b.wait_idle(10)\n"
        "    print(_accel.available(), _accel.use(True), b.inspect()['bus']['speedups'], heard)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "python", "[1]"]


def test_counts_go_on_exactly_past_a_machine_word(quiet: Bus) -> None:
    heard = Heard("heard")
    quiet.add_service(heard)
    [handler] = [h for h in quiet.router.listeners() if h.name == "tick"]
    [worker] = handler.destination.workers  # type: ignore[attr-defined]
    wait_idle(quiet)
    # Near the ends of the fast representations the extension uses
    # (itertools.count's machine word, a one-digit int).
    start = sys.maxsize - 2
    handler.dispatched = handler.stats.dispatched = itertools.count(start)
    handler.stats.calls = 2**30 - 2
    worker.handled = 2**62
    for i in range(4):
        quiet.fire_event("tick", i)
    wait_idle(quiet)
    assert [args for _, args, _ in heard.heard] == [(i,) for i in range(4)]
    assert next(handler.dispatched) == start + 4
    assert handler.stats.calls == 2**30 + 2
    assert worker.handled == 2**62 + 4


def test_a_count_or_start_time_read_earlier_keeps_its_value(quiet: Bus) -> None:
    # The extension may update a count or a start time in place when nobody
    # else holds it; whoever read one holds it, and must keep what they read.
    heard = Heard("heard")
    quiet.add_service(heard)
    [worker] = next(rt for rt in quiet.runtimes() if rt.name == "heard").workers
    for i in range(300):  # past the ints Python shares
        quiet.fire_event("tick", i)
    wait_idle(quiet)
    handled, since = worker.handled, worker.since
    assert handled == 300
    copies = (int(str(handled)), float(repr(since)))
    for i in range(5):
        quiet.fire_event("tick", i)
    wait_idle(quiet)
    assert (handled, since) == copies
    assert worker.handled == 305
    assert worker.since > since
