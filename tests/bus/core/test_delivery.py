"""Where handlers run, in what order, and what listeners receive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from bus import Bus, EventInfo, Service, command, current_event, listener
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)


class Recorder(Service):
    """Records each call with the thread that ran it."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.calls: list[tuple[str, Any, str]] = []

    @command("rec.cmd")
    def cmd(self, value: Any) -> str:
        self.calls.append(("cmd", value, threading.current_thread().name))
        return threading.current_thread().name

    @listener("rec.event")
    def on_event(self, value: Any) -> None:
        self.calls.append(("event", value, threading.current_thread().name))


def test_service_handlers_run_on_the_service_thread(bus: Bus) -> None:
    rec = Recorder("rec")
    bus.add_service(rec)

    assert bus.execute_command("rec.cmd", 1).result(timeout=5) == "bus:test/rec"
    bus.fire_event("rec.event", 2)
    wait_idle(bus)

    assert rec.calls == [("cmd", 1, "bus:test/rec"), ("event", 2, "bus:test/rec")]


def test_handlers_registered_from_a_foreign_thread_run_on_the_pool(bus: Bus) -> None:
    where: list[str] = []

    def register() -> None:
        bus.register_command("pooled", lambda: threading.current_thread().name)
        bus.register_listener("pooled.event", lambda: where.append(threading.current_thread().name))

    thread = threading.Thread(target=register, name="foreign")
    thread.start()
    thread.join(5)

    assert bus.execute_command("pooled").result(timeout=5).startswith("bus:test/pool")
    bus.fire_event("pooled.event")
    wait_idle(bus)
    assert where
    assert where[0].startswith("bus:test/pool")
    owners = {c["name"]: c["owner"] for c in bus.inspect()["commands"]}
    assert owners == {"pooled": "pool"}


def test_pool_runs_several_foreign_handlers_at_once(bus: Bus) -> None:
    barrier = threading.Barrier(3, timeout=5)
    bus.register_command("meet", lambda: barrier.wait())

    futures = [bus.execute_command("meet") for _ in range(3)]

    # Three handlers can only all pass the barrier if they run at the same time.
    assert sorted(f.result(timeout=10) for f in futures) == [0, 1, 2]


def test_service_concurrency_n_really_runs_n_at_once(bus: Bus) -> None:
    barrier = threading.Barrier(3, timeout=5)

    class Io(Service):
        concurrency = 3

        @command("io.meet")
        def meet(self) -> str:
            barrier.wait()
            return threading.current_thread().name

    bus.add_service(Io())
    futures = [bus.execute_command("io.meet") for _ in range(3)]

    names = sorted(f.result(timeout=10) for f in futures)
    assert names == ["bus:test/io-0", "bus:test/io-1", "bus:test/io-2"]
    service = next(s for s in bus.inspect()["services"] if s["name"] == "io")
    assert service["concurrency"] == 3
    assert len(service["threads"]) == 3


def test_single_threaded_service_never_runs_two_handlers_at_once(bus: Bus) -> None:
    active = 0
    overlap: list[int] = []

    class One(Service):
        @command("one.work")
        def work(self, i: int) -> int:
            nonlocal active
            active += 1
            overlap.append(active)
            active -= 1
            return i

    bus.add_service(One())
    futures = [bus.execute_command("one.work", i) for i in range(200)]
    assert [f.result(timeout=10) for f in futures] == list(range(200))
    assert set(overlap) == {1}


def test_fifo_per_sender_commands_and_events_interleaved(bus: Bus) -> None:
    rec = Recorder("fifo")
    bus.add_service(rec)

    def send(tag: str) -> None:
        for i in range(300):
            if i % 2:
                bus.fire_event("rec.event", (tag, i))
            else:
                bus.execute_command("rec.cmd", (tag, i))

    senders = [threading.Thread(target=send, args=(tag,)) for tag in "abc"]
    for t in senders:
        t.start()
    for t in senders:
        t.join(10)
    wait_idle(bus)

    assert len(rec.calls) == 900
    for tag in "abc":
        seen = [value[1] for _, value, _ in rec.calls if value[0] == tag]
        assert seen == list(range(300)), f"sender {tag} out of order"


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("*", ["a", "lights.on", "x.y.z"], []),
        ("lights.*", ["lights.on", "lights.kitchen.on"], ["lights", "light.on", "xlights.on"]),
        ("*.changed", ["thermostat.changed", "a.b.changed"], ["changed", "thermostat.change"]),
        ("exact.name", ["exact.name"], ["exact.names", "exact", "exact.name.x"]),
    ],
)
def test_wildcard_listeners(
    bus: Bus, pattern: str, matching: list[str], not_matching: list[str]
) -> None:
    got: list[str] = []

    def on_any(*args: Any) -> None:
        info = current_event()
        assert info is not None
        got.append(info.name)

    bus.register_listener(pattern, on_any)
    for name in [*matching, *not_matching]:
        bus.fire_event(name)
    wait_idle(bus)

    # Registered from the test's thread, the listener runs on the shared pool,
    # which may run deliveries side by side: each exactly once, in any order.
    assert sorted(got) == sorted(matching)


def test_several_listeners_called_once_each_in_registration_order(bus: Bus) -> None:
    calls: list[str] = []

    class Many(Service):
        @listener("lights.on")
        def exact(self, room: str) -> None:
            calls.append(f"exact:{room}")

        @listener("lights.*")
        def glob(self, room: str) -> None:
            calls.append(f"glob:{room}")

        @listener("*")
        def everything(self, room: str) -> None:
            calls.append(f"all:{room}")

    bus.add_service(Many())
    bus.fire_event("lights.on", "hall")
    wait_idle(bus)

    assert sorted(calls) == ["all:hall", "exact:hall", "glob:hall"]
    orders = [entry["order"] for entry in bus.inspect()["listeners"]]
    assert orders == sorted(orders)


def test_listener_gets_exactly_the_arguments_given(bus: Bus) -> None:
    received: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    payload = {"nested": [1, 2]}

    def spy(*args: Any, **kwargs: Any) -> None:
        received.append((args, kwargs))

    bus.register_listener("args.event", spy)
    bus.fire_event("args.event")
    bus.fire_event("args.event", 1, "two", payload, flag=True, none=None)
    wait_idle(bus)

    # A pool listener's two deliveries may run side by side: their order of
    # finishing is not promised, only what each one gets.
    received.sort(key=lambda call: len(call[0]))
    assert received == [((), {}), ((1, "two", payload), {"flag": True, "none": None})]
    assert received[1][0][2] is payload  # the very object, not a copy


def test_current_event_tells_a_wildcard_listener_the_event(bus: Bus) -> None:
    seen: list[EventInfo | None] = []

    class Watcher(Service):
        @listener("lights.*")
        def on_lights(self, *args: Any, **kwargs: Any) -> None:
            seen.append(current_event())

        @command("outside")
        def outside(self) -> EventInfo | None:
            return current_event()

    bus.add_service(Watcher())
    bus.fire_event("lights.kitchen.on", 3, level=7)
    wait_idle(bus)

    assert len(seen) == 1
    info = seen[0]
    assert info is not None
    assert (info.name, info.args, info.kwargs, info.pattern, info.service) == (
        "lights.kitchen.on",
        (3,),
        {"level": 7},
        "lights.*",
        "watcher",
    )
    assert info.trace_id is not None
    assert len(info.trace_id) == 32
    assert info.span_id is not None
    assert len(info.span_id) == 16
    # Outside a listener there is no current event.
    assert current_event() is None
    assert bus.execute_command("outside").result(timeout=5) is None


def test_current_event_without_tracing_has_no_ids(make_bus: Any) -> None:
    b: Bus = make_bus(tracing=False)
    seen: list[EventInfo | None] = []
    b.register_listener("*", lambda: seen.append(current_event()))
    b.fire_event("plain")
    wait_idle(b)
    assert seen[0] is not None
    assert (seen[0].name, seen[0].trace_id, seen[0].span_id) == ("plain", None, None)


def test_the_pool_never_grows_past_max_pool_threads(make_bus: Callable[..., Bus]) -> None:
    bus = make_bus(max_pool_threads=3)
    release = threading.Event()
    running = threading.Semaphore(0)

    def block(i: int) -> int:
        running.release()
        release.wait(10)
        return i

    bus.register_command("block", block)
    senders = 12
    barrier = threading.Barrier(senders)
    futures: list[Future[Any]] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        barrier.wait(10)
        future = bus.execute_command("block", i)
        with lock:
            futures.append(future)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # The pool grows from its own threads too (a thread taking work looks for
    # more waiting), so growth may lag the posts: wait for three to run.
    for _ in range(3):
        assert running.acquire(timeout=10)
    (pool,) = [s for s in bus.inspect()["services"] if s["kind"] == "pool"]
    assert len(pool["threads"]) == 3
    assert pool["mailbox"] == senders - 3
    assert not running.acquire(timeout=0.2)  # no fourth thread took work
    release.set()
    assert sorted(f.result(timeout=10) for f in futures) == list(range(senders))
