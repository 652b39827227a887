"""Stress: several services, hundreds of thousands of events and nested commands at once.

Every event must reach each matching listener exactly once, every future must
resolve, and the counts in ``inspect()`` must equal what was sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from bus import Bus, Service
from bus._core._patterns import pattern_matches
from bus.testing import wait_idle

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SENDERS = 4
EVENTS_PER_SENDER = 50_000  # 200k events in all
NESTED_EVERY = 50  # a nested command chain every 50 events (4,000 chains)
EVENT_NAMES = ("stress.a", "stress.b.c", "other.x", "stress.a.deep")
SERVICES = 4


class Node(Service):
    """Listens to two patterns; ``nodeN.add`` counts, ``nodeN.nested`` calls the next node."""

    def __init__(self, index: int) -> None:
        super().__init__(name=f"node{index}")
        self.index = index
        self.patterns = ("stress.*", EVENT_NAMES[index % len(EVENT_NAMES)])
        self.seen: dict[str, list[int]] = {p: [] for p in self.patterns}
        self.added = 0

    def on_start(self) -> None:
        me = self.service_name()
        for pattern in self.patterns:
            self.bus.register_listener(pattern, self._listener(self.seen[pattern]))
        self.bus.register_command(f"{me}.add", self.add)
        self.bus.register_command(f"{me}.nested", self.nested)

    @staticmethod
    def _listener(into: list[int]) -> Callable[..., None]:
        def on_event(sender: int, seq: int) -> None:
            into.append(sender * EVENTS_PER_SENDER + seq)

        return on_event

    def add(self, value: int) -> int:
        self.added += 1
        return value + 1

    def nested(self, value: int) -> int:
        # node0 -> node1 -> ... -> the pool: a chain, never a cycle.
        target = f"node{self.index + 1}.nested" if self.index + 1 < SERVICES else "pool.add"
        return int(self.bus.execute_command(target, value).result(timeout=60)) + 1


@pytest.mark.parametrize(
    ("tracing", "events_per_sender"),
    [(False, EVENTS_PER_SENDER), (True, EVENTS_PER_SENDER // 2)],
    ids=["untraced-200k", "traced-100k"],
)
def test_stress_every_event_once_every_future_resolved_counts_equal(
    make_bus: Callable[..., Bus],
    live_bus_threads: Callable[[str], list[threading.Thread]],
    tracing: bool,
    events_per_sender: int,
) -> None:
    # Senders outrun the services; a mailbox bound above the burst keeps the
    # test about delivery, not about the overflow policy (tested elsewhere).
    b = make_bus(name="stress", tracing=tracing, mailbox_size=1_000_000, span_buffer=10_000_000)
    nodes = [Node(i) for i in range(SERVICES)]
    for node in nodes:
        b.add_service(node)
    pool_seen: list[int] = []
    pool_lock = threading.Lock()
    pool_adds = Counter[str]()

    def pool_listener(sender: int, seq: int) -> None:
        with pool_lock:
            pool_seen.append(sender * EVENTS_PER_SENDER + seq)

    def pool_add(value: int) -> int:
        with pool_lock:
            pool_adds["calls"] += 1
        return value + 1

    b.register_listener("*.deep", pool_listener)
    b.register_command("pool.add", pool_add)

    futures: list[list[Future[Any]]] = [[] for _ in range(SENDERS)]
    sent = Counter[str]()
    sent_lock = threading.Lock()
    go = threading.Barrier(SENDERS + 1, timeout=30)

    def sender(index: int) -> None:
        mine = futures[index]
        local = Counter[str]()
        go.wait()
        for seq in range(events_per_sender):
            name = EVENT_NAMES[seq % len(EVENT_NAMES)]
            b.fire_event(name, index, seq)
            local[name] += 1
            if seq % NESTED_EVERY == 0:
                start = seq % SERVICES
                mine.append(b.execute_command(f"node{start}.nested", seq))
                local[f"node{start}.nested"] += 1
        with sent_lock:
            sent.update(local)

    threads = [
        threading.Thread(target=sender, args=(i,), name=f"sender{i}") for i in range(SENDERS)
    ]
    for t in threads:
        t.start()
    go.wait()
    for t in threads:
        t.join(100)
    assert all(not t.is_alive() for t in threads)

    # Every future resolves, with the value its chain computes.
    chains = 0
    for index in range(SENDERS):
        for future in futures[index]:
            value = future.result(timeout=60)
            chains += 1
            assert value > 0
    wait_idle(b, timeout=60)

    # Every event reached every matching listener exactly once.
    all_ids = {
        name: [
            s * EVENTS_PER_SENDER + q
            for s in range(SENDERS)
            for q in range(events_per_sender)
            if EVENT_NAMES[q % len(EVENT_NAMES)] == name
        ]
        for name in EVENT_NAMES
    }
    expected_deliveries: dict[tuple[str, str], int] = {}
    for node in nodes:
        for pattern, got in node.seen.items():
            expected = sorted(
                i for name, ids in all_ids.items() if pattern_matches(pattern, name) for i in ids
            )
            assert len(got) == len(expected), (node.service_name(), pattern)
            assert sorted(got) == expected
            expected_deliveries[(node.service_name(), pattern)] = len(expected)
    deep = sorted(all_ids["stress.a.deep"])
    assert sorted(pool_seen) == deep
    expected_deliveries[("pool", "*.deep")] = len(deep)

    # The counts in inspect() equal what was sent.
    snapshot = b.inspect()
    for entry in snapshot["listeners"]:
        key = (entry["owner"], entry["pattern"])
        assert entry["deliveries"] == expected_deliveries[key], key
        assert (entry["errors"], entry["dropped"], entry["in_flight"]) == (0, 0, 0)
    commands = {c["name"]: c for c in snapshot["commands"]}
    total_chains = sum(sent[f"node{i}.nested"] for i in range(SERVICES))
    assert chains == total_chains
    assert pool_adds["calls"] == total_chains == commands["pool.add"]["calls"]
    # nodeK.nested is called by the senders for chains starting at K, and by
    # node K-1 for every chain that started before K.
    for k in range(SERVICES):
        started_at_or_before = sum(sent[f"node{i}.nested"] for i in range(k + 1))
        assert commands[f"node{k}.nested"]["calls"] == started_at_or_before
        assert commands[f"node{k}.nested"]["errors"] == 0
    totals = snapshot["totals"]
    assert (totals["failed"], totals["rejected"], totals["dropped"]) == (0, 0, 0)
    handled = sum(expected_deliveries.values()) + sum(commands[name]["calls"] for name in commands)
    assert totals["handled"] == handled

    if tracing:
        assert b.flush_traces(60)
        stats = b.inspect()["tracing"]
        deliveries = sum(expected_deliveries.values())
        events = sum(len(ids) for ids in all_ids.values())
        calls = sum(commands[name]["calls"] for name in commands)
        assert stats["dropped"] == 0
        assert stats["failed"] == 0
        assert stats["exported"] == events + deliveries + 2 * calls

    b.close()
    assert live_bus_threads("stress") == []
