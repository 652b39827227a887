"""Traced calls and events, the same with the C accelerator and with its Python reference.

The accelerator runs traced calls and deliveries too, telling the bus's
observer what the Python code tells it, where it tells it: the spans and
the activity they make must not tell the two paths apart, and an observer
that raises (a bug in the bus) must fail the service on both.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, ServiceFailedError, listener
from bus.testing import wait_idle
from tests.bus.core.call_services import Asker, Calls, service_entry

pytestmark = pytest.mark.timeout(30)


# -- traced calls: the observer told the same things on both paths -----------------------


def _traced_scenario() -> dict[str, Any]:
    """Traced calls that reach every branch; the spans and activity they make."""
    with Bus(name="traced", trace_overflow="wait") as b:
        activity: list[dict[str, Any]] = []
        b.watch(lambda a: activity.append({k: getattr(a, k) for k in _STEADY}))
        service = Calls()
        b.add_service(service)
        b.add_service(Asker())
        assert b.execute_command("double", 21).result(10) == 42
        assert b.execute_command("echo", 1, key=2).result(10) == ((1,), {"key": 2})
        with pytest.raises(ValueError, match="no"):
            b.execute_command("boom", "no").result(10)
        assert b.execute_command("ask", 5).result(10) == ((5,), {})
        slow = b.execute_command("slow", 3)
        assert service.entered.wait(10)
        cancelled = b.execute_command("double", 9)
        assert cancelled.cancel()
        with pytest.raises(concurrent.futures.TimeoutError):
            slow.result(0.01)
        service.gate.set()
        wait_idle(b)
        assert b.flush_traces(10)
        return _observed(b, activity)


def _observed(b: Bus, activity: list[dict[str, Any]]) -> dict[str, Any]:
    """The spans in ``b``'s ring and the activity, without what varies from run to run."""
    spans = (
        (
            span.name,
            str(span.kind),
            str(span.status.status_code),
            {k: v for k, v in (span.attributes or {}).items() if k not in _VARYING},
            span.parent is not None,
        )
        for span in b.spans.spans()
    )
    # Sorted: threads report in whatever order they run.
    return {"spans": sorted(map(repr, spans)), "activity": sorted(map(repr, activity))}


_STEADY = ("kind", "name", "service", "caller", "args", "kwargs", "result", "error", "stubbed")
_VARYING = ("thread.name", "thread.id", "bus.duration_ms", "bus.queued_ms", "code.lineno")


def test_traced_calls_make_the_same_spans_and_activity_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    accelerated, reference = on_both_paths(_traced_scenario)
    assert accelerated == reference
    spans = reference["spans"]
    assert sum("('double', 'SpanKind.SERVER'" in s for s in spans) == 1  # the one that ran
    assert sum("('double', 'SpanKind.CLIENT'" in s for s in spans) == 2  # and the cancelled
    assert any("('boom', 'SpanKind.SERVER', 'StatusCode.ERROR'" in s for s in spans), spans


def test_an_observer_that_raises_fails_the_service_and_the_call(
    mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the bus at the handler's start: the service fails, nothing hangs."""
    from bus._observe._hub import Hub

    def broken(self: Hub, ticket: Any, worker: Any) -> Any:
        raise RuntimeError("the observer broke")

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    with Bus(name="broken", trace_overflow="wait") as b:
        service = Calls()
        b.add_service(service)
        monkeypatch.setattr(Hub, "call_started", broken)
        with caplog.at_level(logging.CRITICAL, logger="bus"):
            future = b.execute_command("double", 1)
            with pytest.raises(
                ServiceFailedError, match="died of RuntimeError: the observer broke"
            ):
                future.result(10)
        assert service.ran == []
        assert service_entry(b, "calls")["state"] == "failed"
        with pytest.raises(ServiceFailedError):
            b.execute_command("double", 2)


class Listening(Service):
    """Hears ``tick`` (raising on ``"bad"``); ``block`` waits for ``gate``."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.heard: list[Any] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    @listener("tick")
    def on_tick(self, value: Any) -> None:
        if value == "block":
            self.entered.set()
            assert self.gate.wait(20)
        if value == "bad":
            raise ValueError("bad tick")
        self.heard.append(value)


def _traced_events() -> dict[str, Any]:
    """Traced events that reach every branch; the spans and activity they make."""
    with Bus(name="traced", trace_overflow="wait", mailbox_size=2) as b:
        activity: list[dict[str, Any]] = []
        b.watch(lambda a: activity.append({k: getattr(a, k) for k in _STEADY}))
        first, second = Listening("first"), Listening("second")
        b.add_service(first)
        b.add_service(second)
        for value in (1, "bad", 2):  # one at a time: the mailboxes are small
            b.fire_event("tick", value)
            wait_idle(b)
        b.fire_event("tick", "block")  # both busy: two wait, the third is refused
        assert first.entered.wait(10)
        assert second.entered.wait(10)
        for value in (3, 4, 5):
            b.fire_event("tick", value)
        first.gate.set()
        second.gate.set()
        wait_idle(b)
        assert b.flush_traces(10)
        heard = {"first": first.heard, "second": second.heard}
        return {"heard": heard, **_observed(b, activity)}


def test_traced_events_make_the_same_spans_and_activity_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    accelerated, reference = on_both_paths(_traced_events)
    assert accelerated == reference
    assert reference["heard"]["first"] == [1, 2, "block", 3, 4]  # 5 was refused
    spans = reference["spans"]
    assert sum("('send tick', 'SpanKind.PRODUCER'" in s for s in spans) == 7
    assert sum("('process tick', 'SpanKind.CONSUMER', 'StatusCode.UNSET'" in s for s in spans) == 10
    # "bad" raised in both services, and each refused 5: an error each
    assert sum("('process tick', 'SpanKind.CONSUMER', 'StatusCode.ERROR'" in s for s in spans) == 4


def test_a_delivery_observer_that_raises_fails_the_service(
    mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bus._observe._hub import Hub

    def broken(self: Hub, ticket: Any, worker: Any) -> Any:
        raise RuntimeError("the observer broke")

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    with Bus(name="broken", trace_overflow="wait") as b:
        service = Listening("listening")
        b.add_service(service)
        monkeypatch.setattr(Hub, "delivery_started", broken)
        with caplog.at_level(logging.CRITICAL, logger="bus"):
            b.fire_event("tick", 1)
            wait_idle(b)
        assert service.heard == []
        assert service_entry(b, "listening")["state"] == "failed"
        assert any("the observer broke" in r.getMessage() for r in caplog.records)
