"""Bounded mailboxes, their overflow policy, and close() leaving nothing behind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from bus import Bus, BusClosedError, MailboxFullError, Service, command, listener
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)

Threads = Callable[[str], list[threading.Thread]]


class Gate(Service):
    """A service whose handler blocks until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(name="gate")
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[Any] = []

    @command("gate.block")
    def block(self) -> str:
        self.started.set()
        self.release.wait(10)
        return "released"

    @command("gate.echo")
    def echo(self, value: Any) -> Any:
        return value

    @listener("gate.event")
    def on_event(self, value: Any) -> None:
        self.seen.append(value)


def _blocked_gate(bus: Bus) -> tuple[Gate, Future[Any]]:
    gate = Gate()
    bus.add_service(gate)
    blocker = bus.execute_command("gate.block")
    assert gate.started.wait(5)
    return gate, blocker


def test_full_mailbox_refuses_commands_and_drops_events_counting_both(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    b = make_bus(mailbox_size=2)
    gate, blocker = _blocked_gate(b)

    queued = [b.execute_command("gate.echo", i) for i in range(2)]
    with pytest.raises(MailboxFullError) as info:
        b.execute_command("gate.echo", 99)
    assert (info.value.service, info.value.size) == ("gate", 2)
    with caplog.at_level(logging.WARNING, logger="bus"):
        b.fire_event("gate.event", "lost")  # never raises: dropped and counted
    assert any("dropped" in r.getMessage() for r in caplog.records)

    snapshot = b.inspect()
    service = snapshot["services"][0]
    assert (service["mailbox"], service["mailbox_size"]) == (2, 2)
    assert (service["rejected"], service["dropped"]) == (1, 1)
    assert service["activity"] == "busy"
    echo = next(c for c in snapshot["commands"] if c["name"] == "gate.echo")
    assert (echo["dropped"], echo["in_flight"]) == (1, 2)
    listener_stats = snapshot["listeners"][0]
    assert listener_stats["dropped"] == 1
    assert (snapshot["totals"]["rejected"], snapshot["totals"]["dropped"]) == (1, 1)

    gate.release.set()
    assert blocker.result(timeout=5) == "released"
    assert [f.result(timeout=5) for f in queued] == [0, 1]
    wait_idle(b)
    assert gate.seen == []
    assert b.inspect()["services"][0]["mailbox"] == 0


def test_close_fails_what_cannot_finish_and_joins_every_thread(
    make_bus: Callable[..., Bus], live_bus_threads: Threads
) -> None:
    b = make_bus(name="stuck", hung_after=60)
    gate, blocker = _blocked_gate(b)
    queued = [b.execute_command("gate.echo", i) for i in range(5)]

    closer = threading.Thread(target=lambda: b.close(timeout=0.5))
    closer.start()
    closer.join(10)
    assert not closer.is_alive()

    # The handler was still blocked when close gave up: what was queued
    # fails, and so does the blocked handler's own future.
    for future in queued:
        assert future.done()
        with pytest.raises(BusClosedError):
            future.result(timeout=0)
    assert blocker.done()
    with pytest.raises(BusClosedError, match="still running"):
        blocker.result(timeout=0)
    gate.release.set()
    for thread in live_bus_threads("stuck"):
        thread.join(5)
    assert live_bus_threads("stuck") == []


def test_close_finishes_work_already_sent(make_bus: Callable[..., Bus]) -> None:
    b = make_bus()
    gate, blocker = _blocked_gate(b)
    queued = [b.execute_command("gate.echo", i) for i in range(50)]
    threading.Timer(0.05, gate.release.set).start()

    b.close()

    assert blocker.result(timeout=0) == "released"
    assert [f.result(timeout=0) for f in queued] == list(range(50))


def test_handlers_in_flight_may_still_send_work_while_closing(
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus()
    release = threading.Event()
    started = threading.Event()

    class Chain(Service):
        @command("chain.first")
        def first(self) -> int:
            started.set()
            release.wait(10)
            # The bus is closing now; a chain in progress can still finish.
            return int(self.bus.execute_command("chain.second").result(timeout=10)) + 1

    class Second(Service):
        @command("chain.second")
        def second(self) -> int:
            return 41

    b.add_service(Second())
    b.add_service(Chain())
    future = b.execute_command("chain.first")
    assert started.wait(5)
    threading.Timer(0.1, release.set).start()
    b.close()
    assert future.result(timeout=0) == 42


def test_close_under_load_resolves_every_future_and_leaves_no_thread(
    make_bus: Callable[..., Bus], live_bus_threads: Threads
) -> None:
    b = make_bus(name="load")

    class Worker(Service):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)

        def on_start(self) -> None:
            me = self.service_name()
            self.bus.register_command(f"{me}.work", lambda x: x)
            self.bus.register_command(
                f"{me}.nested",
                lambda x: self.bus.execute_command("pooled", x).result(timeout=10),
            )
            self.bus.register_listener("load.*", lambda *a: None)

    for name in ("w1", "w2", "w3"):
        b.add_service(Worker(name))
    b.register_command("pooled", lambda x: x)
    b.register_listener("load.*", lambda *a: None)

    futures: list[Future[Any]] = []
    unexpected: list[BaseException] = []
    go = threading.Barrier(5, timeout=10)

    def hammer(index: int) -> None:
        go.wait()
        i = 0
        while True:
            i += 1
            try:
                if i % 3 == 0:
                    b.fire_event("load.tick", index, i)
                else:
                    command = ("w1.work", "w2.nested", "pooled", "w3.work")[i % 4]
                    futures.append(b.execute_command(command, i))
            except BusClosedError:
                return
            except BaseException as exc:
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    go.wait()
    while len(futures) < 2000:
        threading.Event().wait(0.001)
    b.close()
    for t in threads:
        t.join(10)

    assert unexpected == []
    assert all(not t.is_alive() for t in threads)
    outcomes = {"ok": 0, "closed": 0}
    for future in futures:
        assert future.done(), future
        error = future.exception(timeout=0)
        if error is None:
            outcomes["ok"] += 1
        else:
            assert isinstance(error, BusClosedError), error
            outcomes["closed"] += 1
    assert outcomes["ok"] >= 2000 // 2
    assert live_bus_threads("load") == []


def test_close_fails_pending_futures_of_a_service_that_stops(
    make_bus: Callable[..., Bus],
) -> None:
    """Work posted after a service's thread took its stop is failed, not lost."""
    b = make_bus()
    gate, blocker = _blocked_gate(b)
    stopping = threading.Event()

    class Late(Service):
        def on_stop(self) -> None:
            stopping.set()

    b.add_service(Late())
    closer = threading.Thread(target=lambda: b.close(timeout=2))
    closer.start()
    gate.release.set()
    closer.join(10)
    assert stopping.is_set()
    assert blocker.result(timeout=0) == "released"
    assert b.inspect()["bus"]["state"] == "closed"
    assert {s["state"] for s in b.inspect()["services"]} == {"stopped"}


def test_pool_growing_while_it_stops_leaves_no_thread(
    make_bus: Callable[..., Bus], live_bus_threads: Threads
) -> None:
    """A pool handler that sends to the pool after the pool was told to stop."""
    b = make_bus(name="growing", hung_after=60)
    release = threading.Event()
    started = threading.Event()

    def outer() -> int:
        started.set()
        release.wait(10)
        return int(b.execute_command("inner").result(timeout=10)) + 1

    b.register_command("outer", outer)
    b.register_command("inner", lambda: 1)
    future = b.execute_command("outer")
    assert started.wait(5)

    def release_when_the_pool_stops() -> None:
        while not release.is_set():
            pool = [s for s in b.inspect()["services"] if s["name"] == "pool"]
            if pool and pool[0]["state"] != "running":
                release.set()
            threading.Event().wait(0.002)

    watcher = threading.Thread(target=release_when_the_pool_stops)
    watcher.start()
    b.close(timeout=3)
    release.set()
    watcher.join(5)

    assert future.result(timeout=0) == 2  # the chain in progress could finish
    for thread in live_bus_threads("growing"):
        thread.join(5)
    assert live_bus_threads("growing") == []


def test_a_second_close_waits_for_the_first_to_finish(
    make_bus: Callable[..., Bus], live_bus_threads: Threads
) -> None:
    b = make_bus(name="twice")
    gate, blocker = _blocked_gate(b)
    first = threading.Thread(target=b.close)
    first.start()
    _until_closing(b)
    threading.Timer(0.1, gate.release.set).start()

    b.close()  # returns only once the bus is really closed

    assert live_bus_threads("twice") == []
    assert b.inspect()["bus"]["state"] == "closed"
    assert blocker.result(timeout=0) == "released"
    first.join(10)


def _until_closing(b: Bus) -> None:
    while b.inspect()["bus"]["state"] == "running":
        threading.Event().wait(0.001)


def test_commands_failed_at_close_are_traced_watched_and_counted(
    make_bus: Callable[..., Bus],
    tracer_provider: Any,
    finished_spans: Callable[[Bus], list[Any]],
) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    from bus import Activity

    b = make_bus(name="traced_close", tracer_provider=tracer_provider, hung_after=60)
    gate, blocker = _blocked_gate(b)
    returns: list[Activity] = []
    b.watch(lambda a: returns.append(a) if a.kind == "return" else None)
    failed = b.execute_command("gate.echo", 1)
    cancelled = b.execute_command("gate.echo", 2)
    assert cancelled.cancel()

    b.close(timeout=0.3)
    gate.release.set()
    with pytest.raises(BusClosedError, match="still running"):
        blocker.result(timeout=0)

    with pytest.raises(BusClosedError):
        failed.result(timeout=0)
    echo = next(c for c in b.inspect()["commands"] if c["name"] == "gate.echo")
    assert (echo["calls"], echo["dropped"], echo["cancelled"], echo["in_flight"]) == (0, 1, 1, 0)
    clients = [s for s in finished_spans(b) if s.name == "gate.echo" and s.kind == SpanKind.CLIENT]
    assert sorted((s.attributes or {})["error.type"] for s in clients) == [
        "BusClosedError",
        "CancelledError",
    ]
    assert {s.status.status_code for s in clients} == {StatusCode.ERROR}
    assert not [s for s in finished_spans(b) if s.name == "gate.echo" and s.kind == SpanKind.SERVER]
    echo_returns = sorted((a.error or {}).get("type", "") for a in returns if a.name == "gate.echo")
    assert echo_returns == ["BusClosedError", "CancelledError"]


def test_a_refused_command_is_traced_and_watched_as_refused(
    make_bus: Callable[..., Bus],
    tracer_provider: Any,
    finished_spans: Callable[[Bus], list[Any]],
) -> None:
    from opentelemetry.trace import SpanKind

    from bus import Activity

    b = make_bus(mailbox_size=1, tracer_provider=tracer_provider)
    gate, blocker = _blocked_gate(b)
    seen: list[Activity] = []
    b.watch(seen.append)
    queued = b.execute_command("gate.echo", 1)
    with pytest.raises(MailboxFullError):
        b.execute_command("gate.echo", 2)
    gate.release.set()
    assert (blocker.result(timeout=5), queued.result(timeout=5)) == ("released", 1)
    wait_idle(b)

    echo = [(a.kind, a.args, (a.error or {}).get("type")) for a in seen if a.name == "gate.echo"]
    assert sorted(echo, key=str) == sorted(
        [
            ("call", "[1]", None),
            ("call", "[2]", None),
            ("return", None, "MailboxFullError"),
            ("return", None, None),
        ],
        key=str,
    )
    clients = {
        (s.attributes or {})["bus.args"]: s
        for s in finished_spans(b)
        if s.name == "gate.echo" and s.kind == SpanKind.CLIENT
    }
    assert (clients["[2]"].attributes or {})["error.type"] == "MailboxFullError"
    assert "error.type" not in (clients["[1]"].attributes or {})


def test_close_while_a_concurrent_service_starts_leaves_no_thread(
    make_bus: Callable[..., Bus], live_bus_threads: Threads
) -> None:
    b = make_bus(name="racing")
    starting, go_on = threading.Event(), threading.Event()
    stopped: list[str] = []

    class Wide(Service):
        concurrency = 3

        def on_start(self) -> None:
            starting.set()
            go_on.wait(10)

        def on_stop(self) -> None:
            stopped.append(threading.current_thread().name)

    outcome: list[object] = []
    adder = threading.Thread(target=lambda: outcome.append(_try_add(b, Wide())))
    adder.start()
    assert starting.wait(5)
    closer = threading.Thread(target=lambda: b.close(timeout=5))
    closer.start()
    # Let close reach the service (told to stop while on_start still runs).
    while next(s for s in b.inspect()["services"] if s["name"] == "wide")["state"] == "starting":
        threading.Event().wait(0.001)
    go_on.set()
    adder.join(10)
    closer.join(10)

    assert len(stopped) == 1
    assert next(s for s in b.inspect()["services"] if s["name"] == "wide")["state"] == "stopped"
    for thread in live_bus_threads("racing"):
        thread.join(5)
    assert live_bus_threads("racing") == []


def _try_add(b: Bus, service: Service) -> object:
    try:
        return b.add_service(service)
    except BusClosedError as exc:
        return exc


def test_a_service_whose_thread_starts_after_close_stopped_it_still_ends(
    make_bus: Callable[..., Bus],
    live_bus_threads: Threads,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """add_service racing close(): close stops the service before its thread exists."""
    from bus._core import _runtime

    b = make_bus(name="late")
    inserted, closed = threading.Event(), threading.Event()
    original = _runtime.Runtime.start

    def delayed_start(self: Any, ready: Any = None) -> None:
        if self.name == "latecomer":
            inserted.set()
            closed.wait(10)
        original(self, ready)

    monkeypatch.setattr(_runtime.Runtime, "start", delayed_start)
    stopped: list[str] = []

    class Latecomer(Service):
        def on_stop(self) -> None:
            stopped.append(threading.current_thread().name)

    adder = threading.Thread(target=lambda: _try_add(b, Latecomer()))
    adder.start()
    assert inserted.wait(5)
    b.close(timeout=2)
    closed.set()
    adder.join(10)

    for thread in live_bus_threads("late"):
        thread.join(5)
    assert live_bus_threads("late") == []
    assert stopped == ["bus:late/latecomer"]
    with pytest.raises(BusClosedError):
        b.add_service(Service(name="after"))


def test_a_dropped_delivery_has_a_span_saying_why_and_the_log_is_rate_limited(
    tracer_provider: Any,
    finished_spans: Callable[[Bus], list[Any]],
    make_bus: Callable[..., Bus],
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = make_bus(mailbox_size=1, tracer_provider=tracer_provider)
    gate, blocker = _blocked_gate(b)
    b.fire_event("gate.event", "queued")  # fills the mailbox
    with caplog.at_level(logging.WARNING, logger="bus"):
        for i in range(50):
            b.fire_event("gate.event", i)
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1, drops  # one report a second, not fifty
    assert "mailbox of service 'gate' is full (1 items)" in drops[0]
    (listener_stats,) = b.inspect()["listeners"]
    assert listener_stats["dropped"] == 50
    gate.release.set()
    assert blocker.result(timeout=5) == "released"
    assert b.wait_idle(5)
    consumers = [s for s in finished_spans(b) if s.name == "process gate.event"]
    refused = [s for s in consumers if s.status.status_code.name == "ERROR"]
    assert len(consumers) == 51
    assert len(refused) == 50
    assert refused[0].attributes["error.type"] == "MailboxFullError"
    assert "thread.name" not in refused[0].attributes
    assert gate.seen == ["queued"]
