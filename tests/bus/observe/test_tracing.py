"""Spans for every command and event, read back from an in-memory exporter."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from bus import Bus, Service, command, listener
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)

Spans = Callable[[Bus], list[ReadableSpan]]


def _one(spans: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in spans]
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


class Greeter(Service):
    @command("say_hello")
    def say_hello(self, name: str) -> str:
        return f"Hello, {name}!"

    @command("fail")
    def fail(self, reason: str) -> None:
        raise KeyError(reason)

    @listener("greet_event")
    def on_greet(self, name: str) -> None:
        pass

    @listener("greet_*")
    def on_any_greet(self, name: str) -> None:
        if name == "bad":
            raise RuntimeError("cannot greet bad")


def test_command_has_client_and_server_spans(traced_bus: Bus, finished_spans: Spans) -> None:
    traced_bus.add_service(Greeter())
    assert traced_bus.execute_command("say_hello", "Alice").result(timeout=5) == "Hello, Alice!"

    spans = finished_spans(traced_bus)
    client = _one(spans, "say_hello", SpanKind.CLIENT)
    server = _one(spans, "say_hello", SpanKind.SERVER)

    assert client.parent is None
    assert server.context.trace_id == client.context.trace_id
    assert _parent_id(server) == client.context.span_id
    for span in (client, server):
        attrs = span.attributes or {}
        assert attrs["rpc.system.name"] == "bus"
        assert attrs["rpc.method"] == "say_hello"
        assert attrs["bus.service"] == "greeter"
        assert attrs["bus.caller"] == "MainThread"
        assert attrs["bus.args"] == '["Alice"]'
        assert span.status.status_code == StatusCode.UNSET
    server_attrs = server.attributes or {}
    assert server_attrs["bus.result"] == '"Hello, Alice!"'
    assert server_attrs["thread.name"] == "bus:traced/greeter"
    assert float(server_attrs["bus.queued_ms"]) >= 0  # type: ignore[arg-type]
    assert client.start_time is not None
    assert server.start_time is not None
    assert client.start_time <= server.start_time
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "bus"


def test_event_has_producer_and_a_consumer_per_listener(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    traced_bus.add_service(Greeter())
    traced_bus.fire_event("greet_event", "Bob")
    wait_idle(traced_bus)

    spans = finished_spans(traced_bus)
    producer = _one(spans, "send greet_event", SpanKind.PRODUCER)
    consumers = [s for s in spans if s.kind == SpanKind.CONSUMER]

    assert [s.name for s in consumers] == ["process greet_event"] * 2
    pattern_of = {(s.attributes or {})["bus.listener.pattern"] for s in consumers}
    assert pattern_of == {"greet_event", "greet_*"}
    attrs = producer.attributes or {}
    assert attrs["messaging.system"] == "bus"
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.destination.name"] == "greet_event"
    assert attrs["bus.listeners"] == 2
    assert attrs["bus.args"] == '["Bob"]'
    for consumer in consumers:
        assert consumer.context.trace_id == producer.context.trace_id
        assert _parent_id(consumer) == producer.context.span_id
        c_attrs = consumer.attributes or {}
        assert c_attrs["messaging.system"] == "bus"
        assert c_attrs["messaging.operation.type"] == "process"
        assert c_attrs["messaging.destination.name"] == "greet_event"
        assert c_attrs["bus.service"] == "greeter"
        assert c_attrs["thread.name"] == "bus:traced/greeter"
        assert float(c_attrs["bus.queued_ms"]) >= 0  # type: ignore[arg-type]


def test_command_failure_records_error_type_status_and_exception(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    traced_bus.add_service(Greeter())
    with pytest.raises(KeyError):
        traced_bus.execute_command("fail", "no such key").result(timeout=5)

    spans = finished_spans(traced_bus)
    client = _one(spans, "fail", SpanKind.CLIENT)
    server = _one(spans, "fail", SpanKind.SERVER)
    for span in (client, server):
        assert (span.attributes or {})["error.type"] == "KeyError"
        assert span.status.status_code == StatusCode.ERROR
    assert "bus.result" not in (server.attributes or {})
    [event] = [e for e in server.events if e.name == "exception"]
    event_attrs = event.attributes or {}
    assert event_attrs["exception.type"] == "KeyError"
    assert event_attrs["exception.message"] == "'no such key'"
    assert "in fail" in str(event_attrs["exception.stacktrace"])


def test_listener_failure_is_recorded_on_its_consumer_span(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    traced_bus.add_service(Greeter())
    traced_bus.fire_event("greet_event", "bad")
    wait_idle(traced_bus)

    spans = finished_spans(traced_bus)
    consumers = {
        (s.attributes or {})["bus.listener.pattern"]: s
        for s in spans
        if s.kind == SpanKind.CONSUMER
    }
    failed, fine = consumers["greet_*"], consumers["greet_event"]
    assert (failed.attributes or {})["error.type"] == "RuntimeError"
    assert failed.status.status_code == StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert fine.status.status_code == StatusCode.UNSET
    assert "error.type" not in (fine.attributes or {})
    producer = _one(spans, "send greet_event", SpanKind.PRODUCER)
    assert producer.status.status_code == StatusCode.UNSET


def test_nested_command_and_event_are_children_of_the_handler_span(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    class Outer(Service):
        @command("outer")
        def outer(self) -> str:
            self.bus.fire_event("outer.done")
            return str(self.bus.execute_command("say_hello", "Nested").result(timeout=5))

    traced_bus.add_service(Greeter())
    traced_bus.add_service(Outer())
    assert traced_bus.execute_command("outer").result(timeout=5) == "Hello, Nested!"

    spans = finished_spans(traced_bus)
    outer_server = _one(spans, "outer", SpanKind.SERVER)
    inner_client = _one(spans, "say_hello", SpanKind.CLIENT)
    inner_server = _one(spans, "say_hello", SpanKind.SERVER)
    producer = _one(spans, "send outer.done", SpanKind.PRODUCER)
    assert {s.context.trace_id for s in spans} == {outer_server.context.trace_id}
    assert _parent_id(inner_client) == outer_server.context.span_id
    assert _parent_id(inner_server) == inner_client.context.span_id
    assert _parent_id(producer) == outer_server.context.span_id
    assert (inner_client.attributes or {})["bus.caller"] == "outer"


def test_user_span_in_a_handler_nests_under_the_bus_span(
    traced_bus: Bus, tracer_provider: TracerProvider, finished_spans: Spans
) -> None:
    tracer = tracer_provider.get_tracer("user-code")

    def handler(x: int) -> int:
        with tracer.start_as_current_span("user.work") as span:
            span.set_attribute("x", x)
        current = trace.get_current_span()
        current.set_attribute("user.annotation", "yes")
        current.add_event("user.event", {"n": 1})
        return x * 2

    traced_bus.register_command("double", handler)
    assert traced_bus.execute_command("double", 21).result(timeout=5) == 42

    spans = finished_spans(traced_bus)
    server = _one(spans, "double", SpanKind.SERVER)
    user = _one(spans, "user.work", SpanKind.INTERNAL)
    assert user.context.trace_id == server.context.trace_id
    assert _parent_id(user) == server.context.span_id
    assert (server.attributes or {})["user.annotation"] == "yes"
    assert [e.name for e in server.events] == ["user.event"]


def test_caller_span_is_the_parent_of_the_client_span(
    traced_bus: Bus, tracer_provider: TracerProvider, finished_spans: Spans
) -> None:
    traced_bus.add_service(Greeter())
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        traced_bus.execute_command("say_hello", "Eve").result(timeout=5)
        traced_bus.fire_event("greet_event", "Eve")
    wait_idle(traced_bus)

    spans = finished_spans(traced_bus)
    request_id = request.get_span_context().span_id
    assert _parent_id(_one(spans, "say_hello", SpanKind.CLIENT)) == request_id
    assert _parent_id(_one(spans, "send greet_event", SpanKind.PRODUCER)) == request_id


def test_args_and_result_are_bounded_json_marked_when_cut_or_lossy(
    tracer_provider: TracerProvider,
    finished_spans: Spans,
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus(tracer_provider=tracer_provider, json_limit=40)
    b.register_command("echo", lambda *a, **k: a[0] if a else None)

    b.execute_command("echo", "x" * 100).result(timeout=5)
    b.execute_command("echo", {1, 2}).result(timeout=5)
    b.execute_command("echo", 1, when=object()).result(timeout=5)

    servers = [s for s in finished_spans(b) if s.kind == SpanKind.SERVER]
    long_text, a_set, kw_object = (s.attributes or {} for s in servers)
    assert len(str(long_text["bus.args"])) == 40
    assert long_text["bus.args.truncated"] is True
    assert long_text["bus.result.truncated"] is True
    assert json.loads(str(a_set["bus.args"]))[0]["$type"] == "set"
    assert a_set["bus.args.lossy"] is True
    assert a_set["bus.result.lossy"] is True
    assert "bus.args.truncated" not in a_set
    # Both at once: a repr too long for the limit, cut.
    assert str(kw_object["bus.kwargs"]).startswith('{"when":{"$repr":"<object object at')
    assert (kw_object["bus.kwargs.lossy"], kw_object["bus.kwargs.truncated"]) == (True, True)
    assert kw_object["bus.args"] == "[1]"


def test_mutable_arguments_are_recorded_as_sent(traced_bus: Bus, finished_spans: Spans) -> None:
    def mutate(items: list[int]) -> int:
        items.append(99)
        return len(items)

    traced_bus.register_command("mutate", mutate)
    traced_bus.execute_command("mutate", [1, 2]).result(timeout=5)

    server = _one(finished_spans(traced_bus), "mutate", SpanKind.SERVER)
    assert (server.attributes or {})["bus.args"] == "[[1,2]]"


def test_secrets_are_redacted_by_default(traced_bus: Bus, finished_spans: Spans) -> None:
    traced_bus.register_command("login", lambda user, password, options=None: user)
    traced_bus.execute_command(
        "login", "ann", password="hunter2", options={"api_key": "k", "depth": 1}
    ).result(timeout=5)

    client = _one(finished_spans(traced_bus), "login", SpanKind.CLIENT)
    kwargs = json.loads(str((client.attributes or {})["bus.kwargs"]))
    assert kwargs == {"password": "***", "options": {"api_key": "***", "depth": 1}}
    assert "hunter2" not in json.dumps(dict(client.attributes or {}))


def test_custom_redaction_hook_and_a_failing_hook(
    tracer_provider: TracerProvider, finished_spans: Spans, make_bus: Callable[..., Bus]
) -> None:
    def redact(key: str, value: Any) -> Any:
        if key == "boom":
            raise ValueError("hook broke")
        return "<hidden>" if key == "card" else value

    b = make_bus(tracer_provider=tracer_provider, redact=redact)
    b.register_command("pay", lambda **kw: "paid")
    assert b.execute_command("pay", card="4111", amount=3, boom=1).result(timeout=5) == "paid"

    client = _one(finished_spans(b), "pay", SpanKind.CLIENT)
    kwargs = json.loads(str((client.attributes or {})["bus.kwargs"]))
    assert kwargs == {"card": "<hidden>", "amount": 3, "boom": "***"}


def test_tracing_false_produces_no_spans(
    tracer_provider: TracerProvider,
    span_exporter: Any,
    make_bus: Callable[..., Bus],
) -> None:
    b = make_bus(tracing=False, tracer_provider=tracer_provider)
    b.add_service(Greeter())
    b.execute_command("say_hello", "A").result(timeout=5)
    b.fire_event("greet_event", "B")
    wait_idle(b)
    assert b.flush_traces(5)
    assert span_exporter.get_finished_spans() == ()
    assert b.spans.spans() == []
    assert b.inspect()["tracing"]["enabled"] is False


def test_otel_sdk_disabled_produces_no_spans(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: Any,
    make_bus: Callable[..., Bus],
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    b = make_bus(tracer_provider=tracer_provider)
    b.add_service(Greeter())
    b.execute_command("say_hello", "A").result(timeout=5)
    wait_idle(b)
    assert b.flush_traces(5)
    assert span_exporter.get_finished_spans() == ()
    assert b.tracing is False


def test_own_provider_keeps_recent_spans_in_the_ring(make_bus: Callable[..., Bus]) -> None:
    b = make_bus(name="ring", ring_size=5)
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        assert b._own_provider is not None  # no provider anywhere: the bus made its own
    b.add_service(Greeter())
    for i in range(10):
        b.execute_command("say_hello", str(i)).result(timeout=5)
    assert b.flush_traces(5)

    spans = b.spans.spans()
    assert len(spans) == 5  # bounded: only the most recent
    assert [(s.attributes or {})["bus.args"] for s in spans if s.kind == SpanKind.SERVER][
        -1
    ] == '["9"]'
    newest = b.spans.trace_ids(1)[0]
    assert all(s.context.trace_id == newest for s in b.spans.trace(newest))
    assert b.inspect()["tracing"]["exported"] == 20


class _Blocking(SpanProcessor):
    """A processor whose first ``on_end`` blocks until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.entered.set()
        self.release.wait(10)


def test_spans_that_cannot_keep_up_are_dropped_and_counted(
    make_bus: Callable[..., Bus],
) -> None:
    provider = TracerProvider()
    blocking = _Blocking()
    provider.add_span_processor(blocking)
    b = make_bus(name="tiny", tracer_provider=provider, span_buffer=3, tracing=True)
    b.register_command("noop", lambda: None)

    b.execute_command("noop").result(timeout=5)
    assert blocking.entered.wait(5)  # the trace thread is now stuck exporting
    for _ in range(10):
        b.execute_command("noop").result(timeout=5)
    wait_idle(b)

    tracing = b.inspect()["tracing"]
    assert tracing["dropped"] == 10 - 3
    assert tracing["buffered"] == 3
    blocking.release.set()
    assert b.flush_traces(5)
    assert b.inspect()["tracing"]["buffered"] == 0
    provider.shutdown()


def test_the_applications_global_provider_is_used_when_set(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    finished_spans: Spans,
    make_bus: Callable[..., Bus],
) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    b = make_bus(name="global")
    b.register_command("ping", lambda: "pong")
    b.execute_command("ping").result(timeout=5)

    spans = finished_spans(b)
    assert {(s.name, s.kind) for s in spans} == {
        ("ping", SpanKind.CLIENT),
        ("ping", SpanKind.SERVER),
    }
    assert len(b.spans.spans()) == 2  # the ring keeps them too


def test_own_provider_honours_otel_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
    make_bus: Callable[..., Bus],
) -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global provider is set in this process")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    b = make_bus(name="envbus")
    b.register_command("ping", lambda: "pong")
    b.execute_command("ping").result(timeout=5)
    assert b.flush_traces(5)

    resource = b.spans.spans()[0].resource.attributes
    assert resource["service.name"] == "from-env"
    assert resource["deployment.environment"] == "test"
    # The exporter OTEL_TRACES_EXPORTER names is behind a batch processor of
    # the bus's own provider (the SDK offers no public way to list them).
    own = b._own_provider
    assert own is not None
    exporters = [p.span_exporter for p in own._active_span_processor._span_processors]  # type: ignore[attr-defined]
    assert [type(e).__name__ for e in exporters] == ["ConsoleSpanExporter"]


def test_own_provider_is_named_after_the_bus_by_default(
    monkeypatch: pytest.MonkeyPatch, make_bus: Callable[..., Bus]
) -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global provider is set in this process")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    b = make_bus(name="named")
    b.register_command("ping", lambda: "pong")
    b.execute_command("ping").result(timeout=5)
    assert b.flush_traces(5)
    assert b.spans.spans()[0].resource.attributes["service.name"] == "named"


def test_user_span_in_a_listener_nests_under_the_consumer_span(
    traced_bus: Bus, tracer_provider: TracerProvider, finished_spans: Spans
) -> None:
    tracer = tracer_provider.get_tracer("user-code")

    def on_event() -> None:
        with tracer.start_as_current_span("user.listener.work"):
            pass

    traced_bus.register_listener("user.event", on_event)
    traced_bus.fire_event("user.event")
    wait_idle(traced_bus)

    spans = finished_spans(traced_bus)
    consumer = _one(spans, "process user.event", SpanKind.CONSUMER)
    user = _one(spans, "user.listener.work", SpanKind.INTERNAL)
    assert _parent_id(user) == consumer.context.span_id


class _Gated(SpanProcessor):
    """Holds each span whose arguments are ``["NAME"]`` until ``gates[NAME]`` is set."""

    def __init__(self, *names: str) -> None:
        self.gates = {name: threading.Event() for name in names}
        self.entered = {name: threading.Event() for name in names}
        self.count = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        name = json.loads(str((span.attributes or {}).get("bus.args", "[null]")))[0]
        if name in self.gates:
            self.entered[name].set()
            self.gates[name].wait(10)
        self.count += 1


def test_flush_traces_waits_for_every_span_recorded_so_far(
    make_bus: Callable[..., Bus],
) -> None:
    provider = TracerProvider()
    gated = _Gated("hold", "late")
    provider.add_span_processor(gated)
    b = make_bus(name="flush", tracer_provider=provider)
    b.register_command("noop", lambda tag: None)

    b.execute_command("noop", "hold").result(timeout=5)
    assert gated.entered["hold"].wait(5)  # the trace thread holds one record
    b.execute_command("noop", "late").result(timeout=5)  # and one waits behind it
    flushed: list[bool] = []
    flusher = threading.Thread(target=lambda: flushed.append(b.flush_traces(10)))
    flusher.start()
    gated.gates["hold"].set()
    assert gated.entered["late"].wait(5)

    flusher.join(0.3)
    assert flusher.is_alive(), "flush_traces returned before every span was exported"
    gated.gates["late"].set()
    flusher.join(5)
    assert flushed == [True]
    assert gated.count == 4
    provider.shutdown()


def test_spans_of_handlers_finishing_after_close_are_counted_dropped(
    tracer_provider: TracerProvider, make_bus: Callable[..., Bus]
) -> None:
    b = make_bus(name="after", tracer_provider=tracer_provider, hung_after=60)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "late"

    b.register_command("slow", slow)
    future = b.execute_command("slow")
    assert started.wait(5)
    b.close(timeout=0.3)  # gives up on the handler, and fails its future
    assert future.done()
    release.set()
    # The span is submitted when the handler returns: wait for its thread.
    for thread in threading.enumerate():
        if thread.name.startswith("bus:after/pool"):
            thread.join(5)
    assert b.inspect()["tracing"]["dropped"] == 1


class _Broken(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("exporter down")


def test_a_failing_processor_is_counted_for_every_span_and_logged_once(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    provider = TracerProvider()
    provider.add_span_processor(_Broken())
    b = make_bus(tracer_provider=provider)
    b.register_command("echo", lambda x: x)
    with caplog.at_level(logging.ERROR, logger="bus.tracing"):
        for i in range(20):
            assert b.execute_command("echo", i).result(timeout=5) == i
        assert b.flush_traces(10)
    reports = [r for r in caplog.records if "a span processor failed" in r.getMessage()]
    assert len(reports) == 1  # once a second, not forty times
    assert b.inspect()["tracing"]["failed"] == 40  # CLIENT and SERVER of each call
    assert b.execute_command("echo", "still").result(timeout=5) == "still"
