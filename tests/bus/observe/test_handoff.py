"""Spans reach an application's processors as ``on_end`` would hand them, a chunk at a time.

The trace thread appends a chunk of spans straight to a ``BatchSpanProcessor``'s
queue (``_handoff``) instead of calling ``on_end`` per span. What the exporter
behind it receives must be exactly what ``on_end`` would have given it, and a
processor that is not the SDK's own batch processor must still be called per
span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import Bus, Service, command, listener
from bus.otlp import encode_spans
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)


class Echo(Service):
    """A command, a failing one and a listener: spans of every kind."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.heard = threading.Event()

    @command("echo")
    def echo(self, value: Any) -> Any:
        return value

    @command("boom")
    def boom(self) -> None:
        raise RuntimeError("boom")

    @listener("ping")
    def ping(self, n: int) -> None:
        self.heard.set()


class CountingBatch(BatchSpanProcessor):
    """A subclass of the batch processor, whose ``on_end`` may do more: called per span."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        super().__init__(exporter)
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1
        super().on_end(span)


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    made = TracerProvider()
    yield made
    made.shutdown()


def _traffic(bus: Bus, commands: int = 50) -> None:
    for i in range(commands):
        assert bus.execute_command("echo", i).result(timeout=5) == i
    with pytest.raises(RuntimeError):
        bus.execute_command("boom").result(timeout=5)
    bus.fire_event("ping", 1)
    wait_idle(bus)
    assert bus.flush_traces(timeout=10)


def _by_id(spans: list[Any]) -> list[Any]:
    data = encode_spans(spans)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    return sorted(data, key=lambda span: span["spanId"])


@pytest.mark.parametrize("kind", ["batch", "subclass"])
def test_the_exporter_gets_the_spans_the_bus_made(
    make_bus: Callable[..., Bus], provider: TracerProvider, kind: str
) -> None:
    exporter = InMemorySpanExporter()
    processor = BatchSpanProcessor(exporter) if kind == "batch" else CountingBatch(exporter)
    provider.add_span_processor(processor)
    bus = make_bus(tracer_provider=provider, trace_overflow="wait")
    bus.add_service(Echo())
    _traffic(bus)
    provider.force_flush()
    exported = exporter.get_finished_spans()
    assert len(exported) == 2 * 51 + 2  # CLIENT and SERVER per command; send and process
    assert all(type(span) is ReadableSpan for span in exported)
    assert _by_id(list(exported)) == _by_id(bus.spans.spans())
    assert bus.inspect()["tracing"]["exported"] == len(exported)
    handoff = bus._sink._handoff  # type: ignore[union-attr]
    if kind == "batch":
        assert handoff.direct  # the installed SDK's batch processor takes whole chunks
    else:
        assert not handoff.direct
        assert processor.ended == len(exported)  # type: ignore[attr-defined]


def test_a_processor_added_after_the_bus_gets_the_spans_from_then_on(
    make_bus: Callable[..., Bus], provider: TracerProvider
) -> None:
    # The application may set its provider up after the bus: a processor
    # added later gets what the bus records from then on, as with the SDK's
    # own tracer (the bus once decided at start that nobody wanted spans).
    bus = make_bus(tracer_provider=provider)
    bus.add_service(Echo())
    _traffic(bus, commands=1)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert bus.execute_command("echo", "late").result(timeout=5) == "late"
    assert bus.flush_traces(timeout=10)
    spans = exporter.get_finished_spans()
    assert [(span.name, span.kind.name) for span in spans] == [
        ("echo", "CLIENT"),
        ("echo", "SERVER"),
    ]
    assert {span.attributes["bus.args"] for span in spans} == {'["late"]'}


def test_a_shut_down_processor_is_left_to_the_sdk(
    make_bus: Callable[..., Bus], provider: TracerProvider
) -> None:
    # After shutdown the SDK's on_end refuses spans: the chunk goes its way.
    exporter = InMemorySpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    bus = make_bus(tracer_provider=provider)
    bus.add_service(Echo())
    _traffic(bus, commands=1)
    provider.shutdown()
    before = len(exporter.get_finished_spans())
    assert bus.execute_command("echo", 2).result(timeout=5) == 2
    assert bus.flush_traces(timeout=10)
    assert len(exporter.get_finished_spans()) == before
    assert bus.inspect()["tracing"]["failed"] == 0


def test_the_ring_alone_counts_the_spans_of_its_records(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No processor and no file: the count comes from the records themselves.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    bus = make_bus()
    bus.add_service(Echo())
    _traffic(bus, commands=3)
    assert bus.spans.span_count() == 2 * 4 + 2
    assert bus.inspect()["tracing"]["exported"] == 2 * 4 + 2


class Failing(SimpleSpanProcessor):
    """A processor whose ``on_end`` always raises."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor down")


def test_a_failing_processor_does_not_keep_spans_from_the_next(
    make_bus: Callable[..., Bus], provider: TracerProvider
) -> None:
    # The SDK's multi-processor stops at the first that raises; the bus hands
    # each processor its spans on its own, so one failing loses only its own.
    exporter = InMemorySpanExporter()
    provider.add_span_processor(Failing(InMemorySpanExporter()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = make_bus(tracer_provider=provider)
    bus.add_service(Echo())
    for i in range(3):
        assert bus.execute_command("echo", i).result(timeout=5) == i
    assert bus.flush_traces(timeout=10)
    assert len(exporter.get_finished_spans()) == 6
    assert bus.inspect()["tracing"]["failed"] == 6
