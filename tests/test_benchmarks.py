"""The benchmarks: baselines that work, scenarios that run, reports that render.

No timing is asserted here: figures depend on the machine. What is asserted is
that every implementation does the work it is timed on (right answers, every
event delivered, every span exported), so the figures compare like with like.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from benchmarks import (
    ALL_SCENARIOS,
    BareHandoff,
    Measurement,
    MemoryReport,
    MemorySample,
    ObviousBus,
    ObviousTracedBus,
    Results,
    counting_provider,
    render,
    run,
    to_json,
)
from benchmarks.__main__ import ExitStatus, main

SPANS_PER_OP = {
    "command_roundtrip": 2,  # CLIENT + SERVER
    "event_throughput": 2,  # PRODUCER + CONSUMER
    "event_fanout": 5,  # PRODUCER + 4 CONSUMER
    "nested_command": 4,  # CLIENT + SERVER, twice
    "typed_command": 2,  # CLIENT + SERVER
}
TRACED = {"obvious-traced", "bus-on"}


def _fail(x: int) -> int:
    raise ValueError(f"bad {x}")


@pytest.mark.timeout(120)
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


@pytest.mark.timeout(120)
def test_bare_handoff_answers_on_its_worker_and_reraises() -> None:
    threads: list[str] = []

    def handler(x: int) -> int:
        threads.append(threading.current_thread().name)
        return x * 2

    with BareHandoff(handler, name="bare-test") as handoff:
        assert [handoff.call(i) for i in range(100)] == [i * 2 for i in range(100)]
        with pytest.raises(RuntimeError, match="without a listener"):
            handoff.fire(1)
    assert set(threads) == {"bare-test"}

    with BareHandoff(_fail) as handoff, pytest.raises(ValueError, match="bad 7"):
        handoff.call(7)


@pytest.mark.timeout(120)
def test_bare_handoff_delivers_every_event_in_order() -> None:
    received: list[int] = []
    handoff = BareHandoff(lambda x: x, received.append)
    for i in range(1000):
        handoff.fire(i)
    handoff.close()  # drains the queue, then joins
    handoff.close()
    assert received == list(range(1000))


@pytest.mark.timeout(120)
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


@pytest.mark.timeout(120)
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


@pytest.mark.timeout(120)
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


@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", [s for s in ALL_SCENARIOS if s != "memory"])
def test_scenario_runs_every_implementation_and_exports_every_span(scenario: str) -> None:
    results = run([scenario], n=60, repeat=2)
    assert results.memory is None
    assert results.errors == []
    assert {m.scenario for m in results.measurements} == {scenario}
    for m in results.measurements:
        assert m.error is None, m
        assert len(m.repeats_us) == 2
        assert all(us > 0 for us in m.repeats_us)
        assert m.best_us == min(m.repeats_us)
        listeners = 4 if scenario == "event_fanout" else 1
        assert m.ops == 60 * listeners
        if m.implementation in TRACED:
            assert m.spans_expected == 2 * 60 * SPANS_PER_OP[scenario]
            assert m.spans_exported == m.spans_expected
        else:
            assert m.spans_expected is None
            assert m.spans_exported is None
    implementations = {m.implementation for m in results.measurements}
    assert implementations >= {"obvious", "obvious-traced", "bus-off", "bus-on"}
    assert ("bare" in implementations) == (scenario in ("command_roundtrip", "event_throughput"))


@pytest.mark.timeout(120)
def test_memory_scenario_samples_the_run_and_delivers_every_event() -> None:
    results = run(["memory"], memory_events=3000)
    memory = results.memory
    assert memory is not None
    assert memory.error is None
    assert [s.label for s in memory.samples] == ["start", "10%", "50%", "100%", "drained"]
    assert [s.fired for s in memory.samples] == [0, 300, 1500, 3000, 3000]
    assert memory.samples[-1].delivered == 3000
    assert all(s.max_rss_kib > 0 for s in memory.samples)
    assert memory.samples[-1].bus_sizes["mailboxes"] == 0
    assert memory.samples[-1].bus_sizes["events dropped"] == 0
    assert memory.growth is not None
    assert memory.flat is not None
    assert results.settings["ops"] == {"memory": 3000}


def _results(bare: float, off: float, on: float, obvious: float, growth: float) -> Results:
    def m(scenario: str, implementation: str, us: float) -> Measurement:
        return Measurement(scenario, implementation, "op", 10, (us, us * 2))

    samples = (
        MemorySample("50%", 50, 50, 1000, None, {"mailboxes": 0}),
        MemorySample("100%", 100, 100, round(1000 * (1 + growth)), None, {"mailboxes": 0}),
    )
    return Results(
        (
            m("command_roundtrip", "bare", bare),
            m("command_roundtrip", "bus-off", off),
            m("command_roundtrip", "bus-on", on),
            m("event_throughput", "obvious", obvious),
            m("event_throughput", "bus-off", off),
            m("event_throughput", "bus-on", on),
        ),
        MemoryReport(100, 1.0, samples),
        {"repeat": 2, "quick": False, "ops": {}},
        {"python": "3", "platform": "test", "cpus": 1},
    )


@pytest.mark.timeout(120)
def test_targets_are_ratios_with_pass_and_miss() -> None:
    passing = _results(bare=10, off=12, on=14, obvious=130, growth=0.01).targets()
    assert [t.verdict for t in passing] == ["PASS"] * 5
    assert passing[0].ratio == pytest.approx(1.2)
    assert passing[2].ratio == pytest.approx(130 / 12)
    missing = _results(bare=10, off=20, on=30, obvious=40, growth=0.5).targets()
    assert [t.verdict for t in missing] == ["MISS"] * 5
    empty = Results((), None, {}, {}).targets()
    assert [t.verdict for t in empty] == ["n/a"] * 5


@pytest.mark.timeout(120)
@pytest.mark.parametrize("with_rich", [True, False])
def test_render_shows_figures_and_verdicts(
    monkeypatch: pytest.MonkeyPatch, with_rich: bool
) -> None:
    if not with_rich:
        monkeypatch.setitem(sys.modules, "rich", None)
    text = render(_results(bare=10, off=12, on=14, obvious=130, growth=0.01))
    for expected in ("command_roundtrip", "event_throughput", "12.00", "130", "PASS", "memory"):
        assert expected in text
    assert "performance targets" in text
    assert "DESIGN.md" not in text  # not a file a user has
    if not with_rich:
        assert "┃" not in text


@pytest.mark.timeout(120)
def test_json_holds_measurements_and_targets() -> None:
    document = json.loads(to_json(_results(bare=10, off=20, on=30, obvious=40, growth=0.5)))
    assert document["measurements"][0]["best_us"] == 10
    assert [t["verdict"] for t in document["targets"]] == ["MISS"] * 5
    assert document["memory"]["flat"] is False


@pytest.mark.timeout(120)
def test_run_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        run(["nope"])
    with pytest.raises(ValueError, match="repeat"):
        run(["command_roundtrip"], repeat=0)


@pytest.mark.timeout(120)
def test_main_writes_only_json_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--json", "--scenario", "command_roundtrip", "-n", "30", "--repeat", "1"])
    out = capsys.readouterr().out
    assert status == ExitStatus.SUCCESS
    document = json.loads(out)
    assert {m["implementation"] for m in document["measurements"]} == {
        "bare",
        "obvious",
        "obvious-traced",
        "bus-off",
        "bus-on",
    }


@pytest.mark.timeout(120)
def test_main_prints_the_report_and_refuses_bad_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--scenario", "event_throughput", "-n", "30", "--repeat", "1"]) == 0
    assert "event_throughput" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["-n", "0"])
    assert exit_info.value.code == ExitStatus.USAGE
