"""One trace across processes: CLIENT/PRODUCER here, SERVER/CONSUMER there, W3C headers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind

from bus import Bus, Service, command

pytestmark = pytest.mark.timeout(60)


def traced(nats_bus: Callable[..., Bus]) -> tuple[Bus, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return nats_bus(tracer_provider=provider), exporter


class Adder(Service):
    name = "adder"

    @command("add")
    def add(self, a: int, b: int) -> int:
        return a + b


def test_a_call_is_one_trace_client_span_here_server_span_there(
    nats_bus: Callable[..., Bus],
) -> None:
    caller, caller_spans = traced(nats_bus)
    callee, callee_spans = traced(nats_bus)
    callee.add_service(Adder())
    assert caller.wait_for_command("add", 5)
    assert caller.execute_command("add", 2, 3).result(timeout=5) == 5
    assert callee.wait_idle(5)
    caller.flush_traces()
    callee.flush_traces()
    [client] = [s for s in caller_spans.get_finished_spans() if s.name == "add"]
    [server] = [s for s in callee_spans.get_finished_spans() if s.name == "add"]
    assert client.kind == SpanKind.CLIENT
    assert server.kind == SpanKind.SERVER
    assert client.context is not None
    assert server.context is not None
    assert server.context.trace_id == client.context.trace_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    for span in (client, server):
        attrs: Any = span.attributes
        assert attrs["messaging.system"] == "nats"
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["messaging.destination.name"].endswith(".svc.adder.add")
        assert attrs["messaging.consumer.group.name"] == "q"
        assert attrs["rpc.method"] == "add"
    assert client.attributes is not None
    assert client.attributes["bus.result"] == "5"
    assert not [s for s in callee_spans.get_finished_spans() if s.kind == SpanKind.CLIENT]


def test_an_event_is_one_trace_producer_span_here_consumer_span_there(
    nats_bus: Callable[..., Bus],
) -> None:
    firer, firer_spans = traced(nats_bus)
    hearer, hearer_spans = traced(nats_bus)
    done = threading.Event()
    hearer.register_listener("door.*", lambda *a: done.set())
    assert hearer._nats is not None
    hearer._nats.settle()
    firer.fire_event("door.opened", "front")
    assert done.wait(5)
    assert hearer.wait_idle(5)
    firer.flush_traces()
    hearer.flush_traces()
    [producer] = [s for s in firer_spans.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    [consumer] = [s for s in hearer_spans.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert not [s for s in hearer_spans.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert producer.context is not None
    assert consumer.context is not None
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    attrs: Any = consumer.attributes
    assert attrs["messaging.system"] == "nats"
    assert attrs["messaging.destination.name"] == "door.opened"
    assert producer.attributes is not None
    assert producer.attributes["messaging.system"] == "nats"


def test_untraced_work_sends_no_trace_header(nats_bus: Callable[..., Bus]) -> None:
    caller = nats_bus(tracing=False)
    callee = nats_bus(tracing=False)
    callee.add_service(Adder())
    assert caller.wait_for_command("add", 5)
    seen = _spy_on_requests(callee)
    assert caller.execute_command("add", 1, 1).result(timeout=5) == 2
    assert seen == [None]


def test_the_trace_header_says_what_the_local_spans_say_whatever_the_sampler(
    nats_bus: Callable[..., Bus],
) -> None:
    # The bus records every command it traces, on the provider's processors,
    # without asking the provider's sampler (docs/traces.md): so the header
    # says "sampled" exactly when the CLIENT span here is recorded, and the
    # SERVER span there joins a trace whose first part exists.
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    caller = nats_bus(tracer_provider=provider)
    callee = nats_bus(tracing=False)
    callee.add_service(Adder())
    assert caller.wait_for_command("add", 5)
    seen = _spy_on_requests(callee)
    assert caller.execute_command("add", 1, 1).result(timeout=5) == 2
    caller.flush_traces()
    [client] = [s for s in exporter.get_finished_spans() if s.name == "add"]
    assert client.context is not None
    expected = f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}-01"
    assert [h.get("traceparent") if h else None for h in seen] == [expected]


def _spy_on_requests(callee: Bus) -> list[Any]:
    """The headers of every request ``callee`` serves from now on."""
    assert callee._nats is not None
    serving = callee._nats.serving
    original = serving.on_request
    seen: list[Any] = []

    async def spy(msg: Any) -> None:
        seen.append(msg.headers)
        await original(msg)

    serving.on_request = spy  # type: ignore[method-assign]
    # The subscription holds the bound method taken when it was made: renew it.
    for sub in list(serving.services.values()):
        sub._cb = spy
    return seen


def test_a_served_call_is_watched_as_sent_by_its_remote_service(
    nats_bus: Callable[..., Bus],
) -> None:
    # The handler's process recorded the call as sent by its own NATS loop
    # thread ("bus:NAME/nats"); its span already named the sender.
    class Asker(Service):
        name = "asker"

        @command("ask")
        def ask(self) -> int:
            return int(self.bus.execute_command("add", 1, 2).result(timeout=5))

    asking, callee = nats_bus(), nats_bus()
    callee.add_service(Adder())
    asking.add_service(Asker())
    calls: list[Any] = []
    unwatch = callee.watch(lambda a: calls.append(a) if a.kind == "call" else None)
    try:
        assert asking.wait_for_command("add", 5)
        assert asking.execute_command("ask").result(timeout=5) == 3
        assert callee.wait_idle(5)
    finally:
        unwatch.dispose()
    assert asking._nats is not None
    assert [(a.name, a.caller) for a in calls] == [("add", f"asker@{asking._nats.label}")]
