"""Events across processes: every matching listener hears each event exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus, Service, listener
from bus.patterns import pattern_matches

pytestmark = pytest.mark.timeout(120)


def settle(*buses: Bus) -> None:
    """Everything fired reached the server, and every bus has run what it got."""
    for b in buses:
        assert b._nats is not None
        assert b._nats.settle()
    for b in buses:
        assert b._nats is not None
        assert b._nats.settle()
        assert b.wait_idle(10)


class Heard:
    """Thread-safe tally of (listener, event) deliveries."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, who: str, event: str) -> None:
        with self.lock:
            self.counts[(who, event)] += 1


def make_service(heard: Heard, name: str, patterns: list[str], broadcast: bool) -> Service:
    """A service with one listener per pattern, each tallying under ``name/pattern``."""
    from bus import current_event

    methods: dict[str, Any] = {"name": name}
    for i, pattern in enumerate(patterns):

        def on(self: Service, *args: Any, _key: str = f"{name}/{pattern}", **kwargs: Any) -> None:
            info = current_event()
            assert info is not None
            heard.add(_key, info.name)

        on.__qualname__ = f"{name}.on_{i}"
        methods[f"on_{i}"] = listener(pattern, broadcast=broadcast)(on)
    cls = type(f"S_{name}", (Service,), methods)
    return cls()  # type: ignore[no-any-return]


def test_a_listener_in_another_process_hears_the_event_with_its_arguments(
    nats_bus: Callable[..., Bus],
) -> None:
    got: list[Any] = []
    done = threading.Event()
    a, b = nats_bus(), nats_bus()

    def on(*args: Any, **kwargs: Any) -> None:
        got.append((args, kwargs))
        done.set()

    b.register_listener("lights.*", on)
    settle(b)
    a.fire_event("lights.kitchen.on", 1, "two", level=3.5)
    assert done.wait(5)
    assert got == [((1, "two"), {"level": 3.5})]


def test_a_replicated_service_hears_each_event_once_and_broadcast_hears_it_everywhere(
    nats_bus: Callable[..., Bus],
) -> None:
    heard = Heard()
    firer, r1, r2 = nats_bus(), nats_bus(), nats_bus()
    for b, where in ((r1, "r1"), (r2, "r2")):
        b.add_service(make_service(heard, "once", ["x.*"], broadcast=False))
        b.add_service(make_service(heard, "every", ["x.*"], broadcast=True))

        def mine(*args: Any, _where: str = where) -> None:
            heard.add(f"pool@{_where}", "x.y")

        b.register_listener("x.y", mine)  # the pool's listeners belong to their process
    settle(firer, r1, r2)
    for _ in range(20):
        firer.fire_event("x.y")
    settle(firer, r1, r2)
    assert heard.counts[("once/x.*", "x.y")] == 20
    assert heard.counts[("every/x.*", "x.y")] == 40
    assert heard.counts[("pool@r1", "x.y")] == 20
    assert heard.counts[("pool@r2", "x.y")] == 20


def test_the_firing_process_serves_its_own_replica_and_no_other_hears_it_again(
    nats_bus: Callable[..., Bus],
) -> None:
    heard = Heard()
    here, there = nats_bus(), nats_bus()
    here.add_service(make_service(heard, "svc", ["e"], broadcast=False))
    there.add_service(make_service(heard, "svc", ["e"], broadcast=False))
    settle(here, there)
    for _ in range(30):
        here.fire_event("e")
    settle(here, there)
    assert heard.counts == Counter({("svc/e", "e"): 30})
    local = {entry["pattern"]: entry for entry in here.inspect()["listeners"]}
    assert local["e"]["deliveries"] == 30  # all of them here, none over the network


NAMES = st.sampled_from(["a", "b", "a.b", "a.c", "b.a", "a.b.c", "x-y.z_1", "a.bc"])
PATTERNS = st.sampled_from(["*", "a", "a.*", "*.b", "a.b", "*b*", "a.*.c", "b*", "x-y.*", "*.c"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    layout=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["s1", "s2", "pool"]), PATTERNS),
        min_size=1,
        max_size=6,
    ),
    fired=st.lists(st.tuples(st.integers(0, 2), NAMES), min_size=1, max_size=10),
)
def test_delivery_over_nats_equals_pattern_matches_exactly_once(
    three_buses: list[Bus], layout: list[tuple[int, str, str]], fired: list[tuple[int, str]]
) -> None:
    heard = Heard()
    registrations = []
    # A logical listener: one per (service, pattern) whatever the processes
    # hosting it, one per (process, pattern) for the pool's.
    expected_listeners: set[str] = set()
    for where, service, pattern in layout:
        b = three_buses[where]
        if service == "pool":
            key = f"pool@{where}/{pattern}"

            def on(*args: Any, _key: str = key, **kwargs: Any) -> None:
                from bus import current_event

                info = current_event()
                assert info is not None
                heard.add(_key, info.name)

            on.__qualname__ = f"pool_{where}_{pattern}"
            registrations.append(b.register_listener(pattern, on))
        else:
            key = f"{service}/{pattern}"
            registrations.append(_ServiceListener(heard, b, service, pattern, key).registration())
        expected_listeners.add(key)
    try:
        settle(*three_buses)
        for where, name in fired:
            three_buses[where].fire_event(name)
        settle(*three_buses)
        expected: Counter[tuple[str, str]] = Counter()
        for key in expected_listeners:
            pattern = key.split("/", 1)[1]
            for _, name in fired:
                if pattern_matches(pattern, name):
                    expected[(key, name)] += 1
        assert heard.counts == expected
    finally:
        for r in registrations:
            r.dispose()
        settle(*three_buses)


class _ServiceListener:
    """A listener registered on a service's thread, so it belongs to that service."""

    def __init__(self, heard: Heard, bus: Bus, service: str, pattern: str, key: str) -> None:
        self.heard, self.bus, self.service, self.pattern, self.key = (
            heard,
            bus,
            service,
            pattern,
            key,
        )

    def registration(self) -> Any:
        runtime = self.bus._runtimes[self.service]
        result: list[Any] = []
        done = threading.Event()
        key, heard = self.key, self.heard

        def on(*args: Any, **kwargs: Any) -> None:
            from bus import current_event

            info = current_event()
            assert info is not None
            heard.add(key, info.name)

        # The same qualname in every process: replicas of one listener.
        on.__qualname__ = f"{self.service}.on[{self.pattern}]"

        def register() -> None:
            result.append(self.bus.register_listener(self.pattern, on))
            done.set()

        runtime.post((register, (), {}, _task(), None))
        assert done.wait(5)
        return result[0]


def _task() -> Any:
    from bus._core._runtime import TASK

    return TASK


@pytest.fixture(scope="module")
def three_buses(nats_server: Any) -> Any:
    buses = [Bus(name="prop", nats=nats_server.url) for _ in range(3)]

    class Plain(Service):
        pass

    for b in buses:
        b.add_service(Plain(name="s1"))
        b.add_service(Plain(name="s2"))
    try:
        yield buses
    finally:
        for b in buses:
            b.close()
