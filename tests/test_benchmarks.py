"""The benchmarks: baselines that work, scenarios that run, reports that render.

No timing is asserted here: figures depend on the machine. What is asserted is
that every implementation does the work it is timed on (right answers, every
event delivered, every span exported), that the method holds (threads pinned,
none left running, lossy figures never counted), and that the report carries
every target.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import benchmarks._harness as harness
import benchmarks._rigs as rigs
import benchmarks._scenarios as scenarios
from benchmarks import (
    ALL_SCENARIOS,
    CallFloor,
    EventFloor,
    Footprint,
    Measurement,
    MemorySample,
    ObviousBus,
    ObviousTracedBus,
    Results,
    RssReport,
    counting_provider,
    render,
    run,
    to_json,
)
from benchmarks.__main__ import ExitStatus, main
from benchmarks._memory import queued_event_bytes, ring_span_bytes, rss_curve
from benchmarks._pinning import can_pin, pinned
from benchmarks._rigs import BenchmarkError, count_file_spans, environ, rig
from benchmarks._scenarios import SCENARIOS, Countdown, Scenario, Timing
from bus import Bus

SPANS_PER_OP = {
    "command_roundtrip": 2,  # CLIENT + SERVER
    "event_throughput": 2,  # PRODUCER + CONSUMER
    "event_fanout": 5,  # PRODUCER + 4 CONSUMER
    "nested_command": 4,  # CLIENT + SERVER, twice
    "typed_command": 2,  # CLIENT + SERVER
}
TRACED = {"obvious-traced", "bus-ring", "bus-app", "bus-file"}
TIMED = [s for s in ALL_SCENARIOS if s != "memory"]
needs_pinning = pytest.mark.skipif(not can_pin(), reason="no sched_setaffinity here")


def _fail(x: int) -> int:
    raise ValueError(f"bad {x}")


@pytest.fixture
def quick_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck run is declared stuck after half a second, not five."""
    for module in (rigs, scenarios, harness):
        monkeypatch.setattr(module, "STALL_SECONDS", 0.5)


# -- the baselines ---------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_counting_exporter_counts_every_span_and_resets() -> None:
    provider, exporter = counting_provider()
    try:
        tracer = provider.get_tracer("test")
        for i in range(1234):
            with tracer.start_as_current_span(f"span {i}"):
                pass
        provider.force_flush()
        assert exporter.count == 1234
        assert exporter.reset() == 1234
        assert exporter.count == 0
    finally:
        provider.shutdown()


def test_the_application_provider_has_the_sdks_default_queue_which_the_bus_sees() -> None:
    # The lossless bus waits for room in a BatchSpanProcessor's queue: the
    # application's provider is measured with the queue an application gets
    # by default, and the bus must find it to wait for it.
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from bus._observe._provider import batch_queues, processor_of

    provider, _ = counting_provider()
    try:
        processor = processor_of(provider)
        assert processor is not None
        [(_, size, _)] = batch_queues(processor)
        assert size == BatchSpanProcessor._default_max_queue_size()
    finally:
        provider.shutdown()


@pytest.mark.timeout(30)
def test_event_floor_calls_the_listener_on_its_worker_for_every_event_in_order() -> None:
    received: list[tuple[int, str]] = []

    def listener(i: int) -> None:
        if i == 500:
            raise ValueError("one bad event")  # logged; the worker goes on
        received.append((i, threading.current_thread().name))

    floor = EventFloor(listener, name="floor-test")
    for i in range(1000):
        floor.fire(i)
    floor.close()  # drains the queue, then joins
    floor.close()
    assert [i for i, _ in received] == [i for i in range(1000) if i != 500]
    assert {name for _, name in received} == {"floor-test"}
    assert not floor.thread.is_alive()


@pytest.mark.timeout(30)
def test_call_floor_answers_on_its_worker_and_reraises() -> None:
    threads: list[str] = []

    def handler(x: int) -> int:
        threads.append(threading.current_thread().name)
        return x * 2

    with CallFloor(handler, name="floor-calls-test") as floor:
        assert [floor.call(i) for i in range(100)] == [i * 2 for i in range(100)]
    assert threads == ["floor-calls-test"] * 100

    with CallFloor(_fail) as floor, pytest.raises(ValueError, match="bad 7"):
        floor.call(7)


@pytest.mark.timeout(30)
def test_obvious_bus_answers_and_delivers_every_event_to_every_listener() -> None:
    counts: list[Counter[int]] = [Counter() for _ in range(3)]
    lock = threading.Lock()

    def listener_for(counter: Counter[int]) -> Callable[[int], None]:
        def listen(i: int) -> None:
            with lock:
                counter[i] += 1

        return listen

    with ObviousBus() as obvious:
        obvious.register_command("echo", lambda x: x)
        obvious.register_command("fail", _fail)
        for counter in counts:
            obvious.register_listener("tick", listener_for(counter))
        assert [obvious.execute_command("echo", i).result() for i in range(50)] == list(range(50))
        with pytest.raises(ValueError, match="bad 3"):
            obvious.execute_command("fail", 3).result()
        for i in range(500):
            obvious.fire_event("tick", i)
        obvious.fire_event("nobody-listens", 1)
    for counter in counts:
        assert counter == Counter(range(500))


@pytest.mark.timeout(30)
def test_obvious_traced_bus_makes_the_expected_span_tree() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    received: list[int] = []
    with ObviousTracedBus(provider, max_workers=4) as obvious:
        obvious.register_command("inner", lambda x: x)
        obvious.register_command("outer", lambda x: obvious.execute_command("inner", x).result())
        obvious.register_listener("tick", received.append)
        assert obvious.execute_command("outer", 5).result() == 5
        obvious.fire_event("tick", 1)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    by_kind = Counter((s.name, s.kind) for s in spans)
    assert by_kind == {
        ("outer", SpanKind.CLIENT): 1,
        ("outer", SpanKind.SERVER): 1,
        ("inner", SpanKind.CLIENT): 1,
        ("inner", SpanKind.SERVER): 1,
        ("send tick", SpanKind.PRODUCER): 1,
        ("process tick", SpanKind.CONSUMER): 1,
    }
    ids = {(s.name, s.kind): s for s in spans}

    def parent_of(name: str, kind: SpanKind) -> tuple[str, SpanKind]:
        parent = ids[name, kind].parent
        assert parent is not None
        return next(k for k, s in ids.items() if s.context.span_id == parent.span_id)

    assert parent_of("outer", SpanKind.SERVER) == ("outer", SpanKind.CLIENT)
    assert parent_of("inner", SpanKind.CLIENT) == ("outer", SpanKind.SERVER)
    assert parent_of("inner", SpanKind.SERVER) == ("inner", SpanKind.CLIENT)
    assert parent_of("process tick", SpanKind.CONSUMER) == ("send tick", SpanKind.PRODUCER)
    assert received == [1]


@pytest.mark.timeout(30)
def test_obvious_traced_bus_exports_through_the_batch_processor() -> None:
    provider, exporter = counting_provider()
    try:
        with ObviousTracedBus(provider) as obvious:
            obvious.register_command("echo", lambda x: x)
            obvious.register_listener("tick", lambda x: None)
            obvious.register_listener("tick", lambda x: None)
            for i in range(100):
                assert obvious.execute_command("echo", i).result() == i
            for i in range(100):
                obvious.fire_event("tick", i)
        provider.force_flush()
        assert exporter.count == 100 * 2 + 100 * 3
    finally:
        provider.shutdown()


@pytest.mark.timeout(30)
def test_countdown_counts_from_several_threads_and_signals_its_total() -> None:
    sink = Countdown()
    sink.arm(4000)
    workers = [threading.Thread(target=lambda: [sink(i) for i in range(1000)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    sink.wait()
    for worker in workers:
        worker.join()
    assert sink.seen == 4000
    sink.arm(4000)  # a total already reached is signalled at once
    assert sink.done.is_set()


# -- the rigs: each traced set-up exports where it says ----------------------------------


def test_count_file_spans_counts_otlp_lines_from_an_offset(tmp_path: Path) -> None:
    def line(spans: int) -> str:
        scope = {"scope": {"name": "bus"}, "spans": [{"name": f"s{i}"} for i in range(spans)]}
        return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [scope]}]}) + "\n"

    path = tmp_path / "trace.jsonl"
    path.write_text(line(3) + line(5))
    assert count_file_spans(path) == 8
    assert count_file_spans(path, len(line(3))) == 5
    path.write_text(line(1) + "not json\n")
    with pytest.raises(BenchmarkError, match=r"line 2 .* is not OTLP JSON"):
        count_file_spans(path)


def test_environ_sets_removes_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_A", "before")
    monkeypatch.delenv("BENCH_B", raising=False)
    with environ({"BENCH_A": None, "BENCH_B": "inside"}):
        assert "BENCH_A" not in os.environ
        assert os.environ["BENCH_B"] == "inside"
    assert os.environ["BENCH_A"] == "before"
    assert "BENCH_B" not in os.environ


@pytest.mark.timeout(60)
@pytest.mark.parametrize("implementation", sorted(TRACED))
def test_each_traced_rig_counts_its_spans_where_they_went(implementation: str) -> None:
    sink = Countdown()
    with rig(implementation) as r:
        assert r.tally is not None
        if r.real is not None:
            from benchmarks._bus_services import tick_service

            r.real.add_service(tick_service("tick", sink))
        else:
            assert r.obvious is not None
            r.obvious.register_listener("tick", sink)
        sink.arm(10)
        for i in range(10):
            r.bus.fire_event("tick", i)
        sink.wait()
        r.tally.mark(20)
        sink.arm(310)
        for i in range(300):
            r.bus.fire_event("tick", i)
        sink.wait()
        assert r.tally.settle(600) == 600
        assert r.tally.exported() == 600  # counted again where they went: the file, say
        assert r.tally.dropped() == 0


@pytest.mark.timeout(30)
def test_own_provider_rigs_refuse_a_process_with_a_global_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rigs.trace, "get_tracer_provider", TracerProvider)
    for implementation in ("bus-ring", "bus-file"):
        with (
            pytest.raises(BenchmarkError, match="a global TracerProvider is set"),
            rig(implementation),
        ):
            pass
    figure = queued_event_bytes(10)
    assert figure.error is not None
    assert "a global TracerProvider is set (TracerProvider)" in figure.error


# -- the scenarios -----------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", TIMED)
def test_scenario_runs_every_implementation_and_exports_every_span(scenario: str) -> None:
    before = set(threading.enumerate())
    results = run([scenario], n=60, repeat=2)
    assert results.footprint == ()
    assert results.rss is None
    assert results.errors == []
    assert {m.scenario for m in results.measurements} == {scenario}
    listeners = 4 if scenario == "event_fanout" else 1
    for m in results.measurements:
        assert m.valid, m
        assert len(m.repeats_us) == 2
        assert all(us > 0 for us in m.repeats_us)
        assert m.best_us == min(m.repeats_us)
        assert len(m.repeats_cpu_us) == 2
        assert m.ops == 60 * listeners
        if m.implementation in TRACED:
            # Every span of both timed regions, counted where it was exported.
            assert m.spans_expected == 2 * 60 * SPANS_PER_OP[scenario]
            assert m.spans_exported == m.spans_expected
            assert m.spans_dropped == 0
        else:
            assert m.spans_expected is None
            assert m.spans_exported is None
    implementations = {m.implementation for m in results.measurements}
    assert implementations >= {"obvious", "obvious-traced", "bus", *TRACED}
    assert ("floor" in implementations) == (scenario in ("command_roundtrip", "event_throughput"))
    assert ("bus-validate" in implementations) == (scenario == "typed_command")
    # Every thread a run started was joined before the next run.
    assert set(threading.enumerate()) <= before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("implementation", ["floor", "obvious", "bus", "bus-app"])
@pytest.mark.parametrize("scenario", ["event_throughput", "command_roundtrip"])
def test_the_timed_work_is_done_n_times(implementation: str, scenario: str) -> None:
    timing = SCENARIOS[scenario].run_once(implementation, 500, 50)
    assert timing.ops == 500
    assert timing.calls == 500


@pytest.mark.timeout(60)
def test_events_lost_or_doubled_on_the_way_fail_the_run(
    monkeypatch: pytest.MonkeyPatch, quick_stalls: None
) -> None:
    put = EventFloor.fire

    def every_other(self: EventFloor, *args: Any) -> None:
        if args[0] % 2:
            put(self, *args)

    monkeypatch.setattr(EventFloor, "fire", every_other)
    with pytest.raises(BenchmarkError, match="stalled"):
        SCENARIOS["event_throughput"].run_once("floor", 100, 10)

    def twice(self: EventFloor, *args: Any) -> None:
        put(self, *args)
        put(self, *args)

    monkeypatch.setattr(EventFloor, "fire", twice)
    with pytest.raises(BenchmarkError, match=r"ran \[220\] times, not 110"):
        SCENARIOS["event_throughput"].run_once("floor", 100, 10)


@pytest.mark.timeout(60)
def test_a_lossy_traced_run_is_measured_but_never_counted(
    monkeypatch: pytest.MonkeyPatch, quick_stalls: None
) -> None:
    class LossyBus(Bus):
        """Drops spans: a buffer of one, and dropping when it is full."""

        def __init__(self, *args: Any, **options: Any) -> None:
            options.update(trace_overflow="drop", span_buffer=1)
            super().__init__(*args, **options)

    monkeypatch.setattr(rigs, "bus_class", lambda: LossyBus)
    results = run(["event_throughput"], n=3000, repeat=1)
    for key in ("bus-ring", "bus-app", "bus-file"):
        m = results.get("event_throughput", key)
        assert m is not None
        assert m.best_us is not None  # measured...
        assert m.spans_dropped
        assert m.spans_exported is not None
        assert m.spans_expected is not None
        assert m.spans_exported < m.spans_expected
        assert not m.valid  # ...but it does not count
        assert m.problem is not None
        assert "not lossless" in m.problem
    verdicts = {(t.scenario, t.measure): t.verdict for t in results.targets()}
    traced = [v for (scenario, _), v in verdicts.items() if scenario.startswith("event delivery,")]
    assert traced == ["INVALID", "INVALID"]
    assert any("bus-app: exported" in line for line in results.errors)
    assert "INVALID" in render(results)


@pytest.mark.timeout(60)
def test_a_run_that_leaves_a_thread_running_is_an_error(
    monkeypatch: pytest.MonkeyPatch, quick_stalls: None
) -> None:
    release = threading.Event()

    def leaks(implementation: str, n: int, warmup: int) -> Timing:
        threading.Thread(target=release.wait, name="leaked-exporter").start()
        return Timing(0.001, n, n)

    monkeypatch.setitem(SCENARIOS, "leaky", Scenario("leaky", "op", 10, 10, ("obvious",), leaks))
    try:
        errors: dict[str, str] = {}
        assert harness._run_once("leaky", "obvious", 10, None, errors) is None
        assert errors == {"obvious": "threads still running after the run closed: leaked-exporter"}
    finally:
        release.set()


# -- pinning -----------------------------------------------------------------------------


@needs_pinning
@pytest.mark.timeout(30)
def test_pinned_pins_the_threads_started_inside_and_puts_the_caller_back() -> None:
    allowed = os.sched_getaffinity(0)
    seen: list[set[int]] = []
    with pinned(True) as cpu:
        assert cpu == max(allowed)
        worker = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
        worker.start()
        worker.join()
    assert seen == [{cpu}]
    assert os.sched_getaffinity(0) == allowed
    with pinned(False) as none:
        assert none is None
        assert os.sched_getaffinity(0) == allowed
    with pytest.raises(ValueError, match="not one this process may use"), pinned(True, 10_000):
        pass


@pytest.fixture
def listener_cpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[frozenset[int]]]:
    """The CPUs every scenario listener saw, read on the listener's own thread."""
    seen: list[frozenset[int]] = []

    class Probing(Countdown):
        def __call__(self, *args: Any) -> None:
            seen.append(frozenset(os.sched_getaffinity(0)))
            super().__call__(*args)

    monkeypatch.setattr(scenarios, "Countdown", Probing)
    return seen


@needs_pinning
@pytest.mark.timeout(60)
def test_every_thread_a_scenario_starts_runs_on_the_pinned_cpu(
    listener_cpus: list[frozenset[int]],
) -> None:
    allowed = frozenset(os.sched_getaffinity(0))
    results = run(["event_throughput", "event_fanout"], n=50, repeat=1)
    cpu = results.settings["pinned_cpu"]
    assert cpu == max(allowed)
    assert results.settings["pin"] is True
    # Read by each listener on its own thread (the floor's worker, the pool's,
    # the services'), and by the harness from the kernel for every thread.
    assert listener_cpus
    assert set(listener_cpus) == {frozenset({cpu})}
    for m in results.measurements:
        assert m.cpus == {cpu}, m
    assert os.sched_getaffinity(0) == allowed  # the caller's affinity is back
    assert f"pinned to CPU {cpu}" in render(results)


@needs_pinning
@pytest.mark.timeout(60)
def test_unpinned_threads_may_use_every_cpu(listener_cpus: list[frozenset[int]]) -> None:
    allowed = frozenset(os.sched_getaffinity(0))
    results = run(["event_throughput"], n=50, repeat=1, pin=False)
    assert results.settings["pinned_cpu"] is None
    assert set(listener_cpus) == {allowed}
    for m in results.measurements:
        assert m.cpus == allowed
    assert "unpinned" in render(results)


# -- memory ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("traced", [True, False])
def test_queued_events_are_measured_while_they_wait(traced: bool) -> None:
    figure = queued_event_bytes(2000, traced=traced)
    assert figure.error is None
    assert figure.items == 2000
    assert figure.per_item is not None
    assert figure.per_item > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("work", "spans"), [("events", 500 - 200), ("commands", 1000 - 200)])
def test_ring_spans_are_measured_in_a_full_ring(work: Any, spans: int) -> None:
    # A ring of 500 records: events leave 500 spans (one per record) where
    # the warm-up left 200; commands 1,000 (two per record).
    figure = ring_span_bytes(500, work)
    assert figure.error is None
    assert figure.items == spans
    assert figure.per_item is not None
    assert figure.per_item > 0


@pytest.mark.timeout(60)
def test_rss_curve_samples_the_run_and_delivers_every_event() -> None:
    report = rss_curve(4000)
    assert report.error is None
    labels = [s.label for s in report.samples]
    assert labels == ["start", *(f"{p}%" for p in range(5, 101, 5)), "drained"]
    assert [s.fired for s in report.samples][-2:] == [4000, 4000]
    assert all(s.delivered == s.fired for s in report.samples)
    last = report.samples[-1].bus_sizes
    assert last["mailboxes"] == 0
    assert last["events dropped"] == 0
    assert last["spans dropped"] == 0
    assert report.growth is not None
    assert report.slope is not None
    assert report.flat is not None


@pytest.mark.timeout(60)
def test_memory_runs_the_rss_curve_only_when_asked() -> None:
    results = run(["memory"], quick=True)
    assert [f.label for f in results.footprint] == [
        "queued event, traced",
        "queued event, untraced",
        "ring span, events",
        "ring span, commands",
    ]
    assert all(f.error is None for f in results.footprint)
    assert results.rss is None
    rss = {t.scenario: t for t in results.targets()}[
        "memory: RSS flat over 10,000,000 traced events"
    ]
    assert rss.verdict == "n/a"
    assert "--memory-events 10000000" in rss.detail
    results = run(["memory"], quick=True, memory_events=2000)
    assert results.rss is not None
    assert results.rss.events == 2000
    assert results.settings["memory_events"] == 2000


# -- results and the report --------------------------------------------------------------


def _results(
    floor: float,
    bus: float,
    traced: float,
    obvious: float,
    growth: float,
    queued: int = 250,
    span: int = 350,
    exported: int = 20,
) -> Results:
    def m(scenario: str, implementation: str, us: float) -> Measurement:
        traced = implementation.startswith("bus-")
        return Measurement(
            scenario,
            implementation,
            "op",
            10,
            repeats_us=(us, us * 2),
            repeats_cpu_us=(us / 2, us),  # half the wall time: a busy machine
            cpus=frozenset({1}),
            spans_expected=20 if traced else None,
            spans_exported=exported if traced else None,
            spans_dropped=0 if traced else None,
        )

    measurements = tuple(
        m(scenario, key, us)
        for scenario in ("command_roundtrip", "event_throughput")
        for key, us in (
            ("floor", floor),
            ("obvious", obvious),
            ("bus", bus),
            ("bus-ring", traced),
            ("bus-app", traced),
            ("bus-file", traced),
        )
    )
    samples = (
        MemorySample("start", 0, 0, 900, 900),
        MemorySample("50%", 50, 50, 1000, 1000, {"mailboxes": 0}),
        MemorySample("100%", 100, 100, 2000, round(1000 * (1 + growth)), {"mailboxes": 0}),
        MemorySample("drained", 100, 100, 2000, 1000, {"mailboxes": 0}),
    )
    footprint = (
        Footprint("queued event, traced", "event", 100, queued * 100),
        Footprint("queued event, untraced", "event", 100, 20_000),
        Footprint("ring span, events", "span", 100, span * 100),
        Footprint("ring span, commands", "span", 100, 100 * 100),
    )
    return Results(
        measurements,
        footprint,
        RssReport(100, 1.0, samples),
        {"repeat": 2, "quick": False, "ops": {}, "pin": True, "pinned_cpu": 1},
        {"python": "3", "platform": "test", "cpus": 2},
    )


TARGETS = [
    ("event delivery to another service thread, untraced", "obvious / bus", ">=", 10),
    ("event delivery to another service thread, untraced", "bus / floor", "<=", 1.5),
    (
        "event delivery, traced lossless, app provider + BatchSpanProcessor",
        "obvious / bus app+BSP",
        ">=",
        1.5,
    ),
    (
        "event delivery, traced lossless, own provider writing a trace file",
        "obvious / bus file",
        ">=",
        2,
    ),
    ("command round trip, untraced", "obvious / bus", ">", 1),
    ("command round trip, untraced", "bus / floor", "<=", 1.3),
    ("command round trip, traced lossless, own provider (ring)", "bus ring / bus", "<=", 1.3),
    (
        "command round trip, traced lossless, app provider + BatchSpanProcessor",
        "bus app+BSP / bus",
        "<=",
        1.3,
    ),
    ("memory: a queued traced event", "bytes per event", "<=", 300),
    ("memory: a ring span", "bytes per span (worse of events, commands)", "<=", 400),
    ("memory: RSS flat over 100 traced events", "RSS at the end / half-way", "<=", 1.1),
]


def test_the_targets_table_has_every_target_of_the_design() -> None:
    targets = _results(floor=1, bus=1.2, traced=2, obvious=13, growth=0.01).targets()
    assert [(t.scenario, t.measure, t.op, t.limit) for t in targets] == [
        (scenario, measure, op, pytest.approx(limit)) for scenario, measure, op, limit in TARGETS
    ]


def test_targets_are_ratios_with_pass_and_miss() -> None:
    passing = _results(floor=1, bus=1.2, traced=1.5, obvious=13, growth=0.01).targets()
    assert [t.verdict for t in passing] == ["PASS"] * 11
    assert passing[0].value == pytest.approx(13 / 1.2)
    assert passing[1].value == pytest.approx(1.2)
    assert passing[8].value == pytest.approx(250)
    assert passing[9].value == pytest.approx(350)  # the worse of events (350) and commands
    assert passing[10].value == pytest.approx(1.01)
    missing = _results(
        floor=1, bus=5, traced=40, obvious=5, growth=0.5, queued=301, span=401
    ).targets()
    assert [t.verdict for t in missing] == ["MISS"] * 11
    empty = Results((), (), None, {}, {}).targets()
    assert [t.verdict for t in empty] == ["n/a"] * 11


def test_a_traced_side_that_lost_spans_makes_its_targets_invalid() -> None:
    results = _results(floor=1, bus=1.2, traced=2, obvious=13, growth=0.01, exported=19)
    verdicts = [t.verdict for t in results.targets()]
    # The four targets with a traced bus; the untraced ones still count.
    assert (
        verdicts
        == ["PASS", "PASS", "INVALID", "INVALID", "PASS", "PASS"]
        + [
            "INVALID",
            "INVALID",
        ]
        + ["PASS"] * 3
    )
    invalid = results.targets()[2].invalid
    assert invalid == "bus app+BSP: exported 19 spans of 20: not lossless"
    assert len(results.errors) == 6  # three traced implementations, two scenarios


def test_a_failed_memory_figure_is_invalid_and_listed() -> None:
    base = _results(floor=1, bus=1.2, traced=2, obvious=13, growth=0.01)
    broken = Results(
        base.measurements,
        (Footprint("queued event, traced", "event", 100, error="BenchmarkError: stalled"),),
        RssReport(100, error="BenchmarkError: dropped"),
        base.settings,
        base.environment,
    )
    by_scenario = {t.scenario: t for t in broken.targets()}
    assert by_scenario["memory: a queued traced event"].verdict == "INVALID"
    assert by_scenario["memory: a ring span"].verdict == "n/a"
    assert by_scenario["memory: RSS flat over 100 traced events"].verdict == "INVALID"
    assert broken.errors == [
        "memory, queued event, traced: BenchmarkError: stalled",
        "memory, RSS over 100 events: BenchmarkError: dropped",
    ]


@pytest.mark.parametrize("with_rich", [True, False])
def test_render_shows_figures_memory_and_verdicts(
    monkeypatch: pytest.MonkeyPatch, with_rich: bool
) -> None:
    if not with_rich:
        monkeypatch.setitem(sys.modules, "rich", None)
    text = render(_results(floor=1, bus=1.2, traced=2, obvious=13, growth=0.01))
    for expected in (
        "pinned to CPU 1",
        "SimpleQueue floor",
        "bus traced: app provider + BSP",
        "command_roundtrip",
        "event_throughput",
        "13.00",
        "queued event, traced",
        "250",
        "ring span, commands",
        "bytes/event over the second half",
        "performance targets",
        "PASS",
        "This process had 50% of the timed wall time as CPU time on its one CPU",
    ):
        assert expected in text, expected
    assert "DESIGN.md" not in text  # not a file a user has
    if not with_rich:
        assert "┃" not in text


def test_json_holds_measurements_memory_and_targets() -> None:
    results = _results(floor=1, bus=5, traced=40, obvious=5, growth=0.5, queued=301, span=401)
    document = json.loads(to_json(results))
    assert document["measurements"][0]["best_us"] == 1
    assert document["measurements"][0]["cpus"] == [1]
    assert [t["verdict"] for t in document["targets"]] == ["MISS"] * 11
    assert document["targets"][0]["op"] == ">="
    assert document["footprint"][0]["bytes_per_item"] == 301
    assert document["rss"]["flat"] is False
    assert document["settings"]["pinned_cpu"] == 1
    assert document["cpu_share"] == pytest.approx(0.5)


# -- the command line --------------------------------------------------------------------


def test_run_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        run(["nope"])
    with pytest.raises(ValueError, match="repeat"):
        run(["command_roundtrip"], repeat=0)
    with pytest.raises(ValueError, match="memory_events must be at least 1, got 0"):
        run(["memory"], memory_events=0)


@pytest.mark.timeout(60)
def test_main_writes_only_json_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--json", "--scenario", "command_roundtrip", "-n", "30", "--repeat", "1"])
    out = capsys.readouterr().out
    assert status == ExitStatus.SUCCESS
    document = json.loads(out)
    assert {m["implementation"] for m in document["measurements"]} == {
        "floor",
        "obvious",
        "obvious-traced",
        "bus",
        "bus-ring",
        "bus-app",
        "bus-file",
    }
    assert len(document["targets"]) == 11


@pytest.mark.timeout(60)
def test_main_prints_the_report_and_refuses_bad_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--scenario", "event_throughput", "-n", "30", "--repeat", "1", "--unpinned"]
    assert main(argv) == ExitStatus.SUCCESS
    out = capsys.readouterr().out
    assert "event_throughput" in out
    assert "unpinned" in out.splitlines()[0]
    for bad in (["-n", "0"], ["--memory-events", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == ExitStatus.USAGE


@pytest.mark.timeout(60)
def test_the_one_process_figures_stay_in_one_process_whatever_bus_nats_url_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every Bus() joins BUS_NATS_URL when it is set: the benchmark's would
    # measure a transport (or fail with no server there) instead of the bus.
    monkeypatch.setenv("BUS_NATS_URL", "nats://127.0.0.1:1")  # nothing listens there
    results = run(["command_roundtrip"], n=30, repeat=1)
    assert results.errors == []
    assert all(m.valid for m in results.measurements)
    assert os.environ["BUS_NATS_URL"] == "nats://127.0.0.1:1"  # the caller's, put back
