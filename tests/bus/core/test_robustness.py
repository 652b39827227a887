"""No value, hook failure or hung handler breaks the bus: issue 8's core promises.

Every test here failed before its fix: a result the encoder could not turn
into text killed its service's thread; a hung handler's future stayed pending
after ``close()``; a traced causal chain kept every earlier record alive; a
failed handler's span carried its caller's frames.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from bus import Activity, Bus, BusClosedError, Service, ServiceFailedError, command, listener
from bus._core._stats import HandlerStats
from bus._observe._records import BusSpan, CallRecord
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)

Spans = Callable[[Bus], list[ReadableSpan]]
HUGE = 10**5000  # beyond CPython's int-to-str digit limit


class Unrepresentable:
    """An object whose ``__repr__`` raises."""

    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class Echo(Service):
    """Returns what it is given, and counts what it hears."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @command("echo")
    def echo(self, value: Any) -> Any:
        return value

    @command("huge")
    def huge(self) -> list[int]:
        return [HUGE]

    @command("opaque")
    def opaque(self) -> Unrepresentable:
        return Unrepresentable()

    @listener("heard")
    def on_heard(self, value: Any) -> None:
        self.heard.append(value)


def _attr(spans: list[ReadableSpan], name: str, kind: str, key: str) -> Any:
    found = [s for s in spans if s.name == name and s.kind.name == kind]
    assert found, f"no {kind} span named {name!r}"
    assert found[-1].attributes is not None
    return found[-1].attributes.get(key)


@pytest.mark.parametrize("watched", [False, True], ids=["traced", "traced+watched"])
def test_unencodable_results_reach_the_caller_and_the_service_lives_on(
    traced_bus: Bus, finished_spans: Spans, watched: bool
) -> None:
    seen: list[Activity] = []
    if watched:
        traced_bus.watch(seen.append)
    traced_bus.add_service(Echo())

    assert traced_bus.execute_command("huge").result(timeout=5) == [HUGE]
    assert isinstance(traced_bus.execute_command("opaque").result(timeout=5), Unrepresentable)
    # The service thread is alive: the next command is served.
    assert traced_bus.execute_command("echo", 7).result(timeout=5) == 7
    assert traced_bus.inspect()["services"][0]["state"] == "running"

    spans = finished_spans(traced_bus)
    huge = json.loads(_attr(spans, "huge", "SERVER", "bus.result"))
    assert huge[0]["$unencodable"].startswith("ValueError: Exceeds the limit")
    assert _attr(spans, "huge", "SERVER", "bus.result.lossy") is True
    opaque = json.loads(_attr(spans, "opaque", "SERVER", "bus.result"))
    assert opaque == {"$unencodable": "ValueError: no repr for you", "$type": "Unrepresentable"}
    if watched:
        returns = {a.name: a for a in seen if a.kind == "return"}
        assert returns["huge"].result is not None
        assert "$unencodable" in returns["huge"].result
        assert "$unencodable" in (returns["opaque"].result or "")
        assert returns["echo"].result == "7"


@pytest.mark.parametrize("traced", [False, True], ids=["watched", "traced+watched"])
def test_unencodable_arguments_do_not_make_the_verbs_raise(
    make_bus: Callable[..., Bus], traced: bool
) -> None:
    b = make_bus(tracing=traced)
    seen: list[Activity] = []
    b.watch(seen.append)
    echo = Echo()
    b.add_service(echo)
    opaque = Unrepresentable()

    assert b.execute_command("echo", [HUGE]).result(timeout=5) == [HUGE]
    assert b.execute_command("echo", value=opaque).result(timeout=5) is opaque
    b.fire_event("heard", HUGE)
    b.fire_event("heard", value={HUGE: opaque})
    wait_idle(b)
    assert echo.heard == [HUGE, {HUGE: opaque}]
    events = [a for a in seen if a.kind == "event"]
    assert len(events) == 2
    assert "$unencodable" in (events[0].args or "")
    assert "$unencodable" in (events[1].kwargs or "")
    assert b.flush_traces(timeout=10)
    assert b.inspect()["tracing"].get("failed", 0) == 0


class Unprintable(Exception):
    """An exception whose ``str()`` raises: a handler may raise one."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Raising(Service):
    name = "raising"

    @command("unprintable")
    def unprintable(self) -> None:
        raise Unprintable()

    @listener("unprintable")
    def on_unprintable(self) -> None:
        raise Unprintable()


@pytest.mark.parametrize("traced", [False, True], ids=["untraced", "traced"])
def test_an_exception_whose_str_raises_is_reported_and_the_service_lives_on(
    make_bus: Callable[..., Bus],
    tracer_provider: TracerProvider,
    finished_spans: Spans,
    mode: str,
    traced: bool,
) -> None:
    # Its text was made with f"{error}" in the statistics: the service's
    # thread died of the RuntimeError, and every later call failed.
    b = make_bus(tracer_provider=tracer_provider) if traced else make_bus(tracing=False)
    seen: list[Activity] = []
    b.watch(seen.append)
    b.add_service(Raising())
    with pytest.raises(Unprintable):
        b.execute_command("unprintable").result(timeout=5)
    b.fire_event("unprintable")
    wait_idle(b)
    assert b.inspect()["services"][0]["state"] == "running"
    with pytest.raises(Unprintable):  # served again: the thread lives
        b.execute_command("unprintable").result(timeout=5)
    [entry] = [c for c in b.inspect()["commands"] if c["name"] == "unprintable"]
    assert (entry["errors"], entry["last_error"]) == (2, "Unprintable: <exception str() failed>")
    errors = [a.error for a in seen if a.error is not None]
    assert errors == [{"type": "Unprintable", "message": "<exception str() failed>"}] * 3
    if traced:
        failed = [s for s in finished_spans(b) if s.status.description]
        assert {s.status.description for s in failed} == {"Unprintable: <exception str() failed>"}
        assert len(failed) == 5  # two calls (CLIENT and SERVER) and a delivery


def test_a_service_whose_thread_dies_is_failed_and_fails_its_work_at_once(
    make_bus: Callable[..., Bus],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing a handler does ends its thread any more, so the test plays a bug
    # in the bus: its statistics raise after the handler "boom" has run. It
    # raises: a call that succeeds is counted in C when the accelerator runs,
    # one that fails the same Python way on both paths.
    finish = HandlerStats.finish
    boom_stats: list[HandlerStats] = []

    def faulty(self: HandlerStats, elapsed: float, error: BaseException | None) -> None:
        if self in boom_stats:
            raise RuntimeError("a bug in the bus")
        finish(self, elapsed, error)

    monkeypatch.setattr(HandlerStats, "finish", faulty)
    b = make_bus(tracing=False)
    release = threading.Event()

    class Doomed(Service):
        name = "doomed"

        @command("boom")
        def boom(self) -> str:
            release.wait(10)
            raise ValueError("never delivered")

        @command("fine")
        def fine(self) -> str:
            return "fine"

        @listener("tick")
        def on_tick(self) -> None:
            pass

    b.add_service(Doomed())
    boom_stats.append(b.router.command("boom").stats)
    with caplog.at_level(logging.WARNING, logger="bus"):
        running = b.execute_command("boom")
        queued = b.execute_command("fine")
        release.set()
        with pytest.raises(ServiceFailedError, match="died of RuntimeError: a bug in the bus"):
            running.result(timeout=5)
        with pytest.raises(ServiceFailedError):
            queued.result(timeout=5)
        # Later work fails at once, not at a deadline.
        with pytest.raises(ServiceFailedError) as raised:
            b.execute_command("fine")
        assert raised.value.service == "doomed"
        b.fire_event("tick")  # dropped and counted, never raised to the firer

    described = b.inspect()["services"][0]
    assert described["state"] == "failed"
    assert described["error"] == "RuntimeError: a bug in the bus"
    assert described["dropped"] == 1
    assert b.wait_idle(timeout=5)  # nothing is left in flight
    deaths = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(deaths) == 1, [r.getMessage() for r in caplog.records]
    assert deaths[0].exc_info is not None


def test_close_fails_the_future_of_a_hung_handler_and_names_its_thread(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    b = make_bus(name="hung", hung_after=60)
    started, release = threading.Event(), threading.Event()

    class Sleepy(Service):
        name = "sleepy"

        @command("nap")
        def nap(self) -> str:
            started.set()
            release.wait(20)
            return "late"

    b.add_service(Sleepy())
    future = b.execute_command("nap")
    assert started.wait(5)
    with caplog.at_level(logging.WARNING, logger="bus"):
        b.close(timeout=0.3)
    try:
        assert future.done()
        with pytest.raises(
            BusClosedError, match="'nap' was still running on thread bus:hung/sleepy"
        ):
            future.result(timeout=0)
        assert any("still running: bus:hung/sleepy" in r.getMessage() for r in caplog.records), [
            r.getMessage() for r in caplog.records
        ]
    finally:
        release.set()
    # When the handler does return, its result is a late reply, not a crash.
    for thread in threading.enumerate():
        if thread.name == "bus:hung/sleepy":
            thread.join(10)
    (nap,) = b.inspect()["commands"]
    assert nap["late_replies"] == 1


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


@pytest.mark.timeout(120)
def test_a_traced_causal_chain_keeps_no_earlier_records_alive(make_bus: Callable[..., Bus]) -> None:
    hops = 3000
    done = threading.Event()

    class Relay(Service):
        name = "relay"

        @listener("hop")
        def hop(self, n: int) -> None:
            if n < hops:
                self.bus.fire_event("hop", n + 1)
            else:
                self.bus.execute_command("step", 0)  # a chain of commands next

        @command("step")
        def step(self, n: int) -> None:
            if n < hops:
                self.bus.execute_command("step", n + 1)  # sent, not waited on
            else:
                done.set()

    b = make_bus(span_buffer=10 * hops)
    b.add_service(Relay())
    # Earlier tests may leave a few records behind (in logged tracebacks, say).
    before = {kind: _live(kind) for kind in (BusSpan, CallRecord)}
    b.fire_event("hop", 0)
    assert done.wait(60)
    wait_idle(b)
    assert b.flush_traces(timeout=30)
    assert b.inspect()["tracing"]["dropped"] == 0
    # Exported records are gone; at most the last step's are still referenced.
    for kind, count in before.items():
        assert _live(kind) - count <= 2, kind.__name__


def test_a_failed_handlers_span_holds_the_handlers_frames_only(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    class Failing(Service):
        name = "failing"

        @command("fail")
        def fail_in_handler(self) -> None:
            raise KeyError("inside the handler")

        @listener("fail.event")
        def fail_in_listener(self) -> None:
            raise KeyError("inside the listener")

    traced_bus.add_service(Failing())

    def caller_frame_marker() -> None:
        traced_bus.execute_command("fail").result(timeout=5)

    with pytest.raises(KeyError):
        caller_frame_marker()
    traced_bus.fire_event("fail.event")
    wait_idle(traced_bus)
    spans = finished_spans(traced_bus)
    for name, handler in (("fail", "fail_in_handler"), ("process fail.event", "fail_in_listener")):
        (span,) = [s for s in spans if s.name == name and s.kind.name in ("SERVER", "CONSUMER")]
        (event,) = [e for e in span.events if e.name == "exception"]
        assert event.attributes is not None
        stack = str(event.attributes["exception.stacktrace"])
        assert handler in stack
        assert "caller_frame_marker" not in stack
        assert "_call" not in stack.split("\n")[1], stack  # starts at the handler


def test_a_trace_thread_that_dies_is_reported_and_its_spans_counted_dropped(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    # A span processor runs on the trace thread; one that raises SystemExit
    # (not an Exception, so not counted as a failed export) plays the unforeseen.
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class Exiting(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise SystemExit("a processor exits")

    provider = TracerProvider()
    provider.add_span_processor(Exiting())
    b = make_bus(tracer_provider=provider)
    b.add_service(Echo())
    with caplog.at_level(logging.CRITICAL, logger="bus.tracing"):
        assert b.execute_command("echo", value=1).result(timeout=5) == 1
        assert b.flush_traces(timeout=5) is False  # not every span was exported
        # The bus goes on; its spans are counted, not silently lost.
        assert b.execute_command("echo", value=2).result(timeout=5) == 2
    tracing = b.inspect()["tracing"]
    assert tracing["error"] == "SystemExit: a processor exits"
    # The record being exported when it died, and the one submitted after.
    assert (tracing["exported"], tracing["dropped"]) == (0, 2)
    assert len([r for r in caplog.records if "trace thread died" in r.getMessage()]) == 1


def test_a_redaction_hook_that_exits_masks_the_value_and_breaks_nothing(
    make_bus: Callable[..., Bus],
) -> None:
    def exiting(key: str, value: Any) -> Any:
        raise SystemExit(f"redacting {key}")

    b = make_bus(redact=exiting)
    b.add_service(Echo())
    assert b.execute_command("echo", value={"token": 1}).result(timeout=5) == {"token": 1}
    assert b.flush_traces(timeout=5)
    (server,) = [s for s in b.spans.spans() if s.kind.name == "SERVER"]
    assert server.attributes is not None
    assert server.attributes["bus.kwargs"] == '{"value":"***"}'
    assert b.inspect()["tracing"]["error"] is None


def test_a_pool_that_cannot_start_another_thread_still_runs_the_work(
    make_bus: Callable[..., Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus._core._runtime as runtime_module

    real_start = runtime_module.start_thread

    def limited(name: str, target: Callable[[], None], *, batch: bool = False) -> threading.Thread:
        if name.endswith("/pool-0"):
            return real_start(name, target, batch=batch)
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(runtime_module, "start_thread", limited)
    b = make_bus(max_pool_threads=4)
    release = threading.Event()
    b.register_command("wait_then", lambda i: release.wait(10) and i)
    futures = [b.execute_command("wait_then", i) for i in range(3)]  # none raises
    release.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2]
    (pool,) = [s for s in b.inspect()["services"] if s["kind"] == "pool"]
    assert len(pool["threads"]) == 1


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"mailbox_size": "10"}, TypeError, "mailbox_size must be an int, not str"),
        ({"mailbox_size": 0}, ValueError, "mailbox_size must be at least 1, not 0"),
        ({"max_pool_threads": 0}, ValueError, "between 1 and 1024"),
        ({"max_pool_threads": 10**6}, ValueError, "between 1 and 1024"),
        ({"hung_after": -1}, ValueError, "hung_after must be a positive number"),
        ({"hung_after": float("nan")}, ValueError, "hung_after must be a positive number"),
        ({"hung_after": "10"}, TypeError, "hung_after must be a number"),
        ({"json_limit": 0}, ValueError, "json_limit must be at least 16"),
        ({"span_buffer": -1}, ValueError, "span_buffer must be at least 1"),
        ({"ring_size": 0}, ValueError, "ring_size must be at least 1"),
        ({"redact": "mask"}, TypeError, "redact must be callable or None"),
    ],
)
def test_bad_bus_options_are_refused_with_a_clear_error_and_start_nothing(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = threading.active_count()
    with pytest.raises(error, match=message):
        Bus(name="bad", **options)
    assert threading.active_count() == before


@pytest.mark.parametrize(
    ("concurrency", "error"), [("3", TypeError), (0, ValueError), (10**9, ValueError)]
)
def test_a_bad_concurrency_is_refused_before_any_thread_starts(
    bus: Bus, concurrency: Any, error: type[Exception]
) -> None:
    before = threading.active_count()
    with pytest.raises(error, match="concurrency must be"):
        bus.add_service(Service(name="wide", concurrency=concurrency))
    assert threading.active_count() == before
    assert bus.inspect()["services"] == []
