"""Spans and hung-handler detection for async handlers.

A task's SERVER or CONSUMER span starts when the task starts and ends when
it finishes, not at its first await; spans a handler opens nest under it
even while other tasks interleave; ``inspect()`` and the watchdog see each
running task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind

from bus import Bus, Service, command, current_event, listener
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)

Spans = Callable[[Bus], list[ReadableSpan]]


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` (a look at the bus's state) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _tasks(bus: Bus, name: str) -> list[dict[str, Any]]:
    (service,) = [s for s in bus.inspect()["services"] if s["name"] == name]
    return [t for thread in service["threads"] for t in thread.get("tasks", ())]


def test_interleaved_tasks_each_keep_their_own_span_for_their_whole_run(
    traced_bus: Bus, tracer_provider: TracerProvider, finished_spans: Spans, gate: Any
) -> None:
    tracer = tracer_provider.get_tracer("user-code")
    opened = gate()
    arrived = threading.Semaphore(0)

    class Worker(Service):
        @command("work")
        async def work(self, i: int) -> int:
            arrived.release()
            await opened.wait()  # both tasks are suspended here at once
            with tracer.start_as_current_span(f"user.{i}"):
                await asyncio.sleep(0.05)
            trace.get_current_span().set_attribute("user.i", i)
            return i

    traced_bus.add_service(Worker())
    futures = [traced_bus.execute_command("work", i) for i in range(2)]
    for _ in range(2):
        assert arrived.acquire(timeout=5)
    opened.open()
    assert [f.result(timeout=5) for f in futures] == [0, 1]

    spans = finished_spans(traced_bus)
    servers = {
        (s.attributes or {})["user.i"]: s
        for s in spans
        if s.name == "work" and s.kind == SpanKind.SERVER
    }
    assert set(servers) == {0, 1}
    for i, server in servers.items():
        (user,) = [s for s in spans if s.name == f"user.{i}"]
        assert _parent_id(user) == server.context.span_id
        assert user.context.trace_id == server.context.trace_id
        # The SERVER span covers the whole run, its awaits included.
        assert server.start_time is not None
        assert server.end_time is not None
        assert user.start_time is not None
        assert user.end_time is not None
        assert server.start_time <= user.start_time
        assert user.end_time <= server.end_time
        assert server.end_time - server.start_time >= 50_000_000
        assert (server.attributes or {})["thread.name"] == "bus:traced/worker"


def test_commands_sent_from_an_async_handler_are_its_children(
    traced_bus: Bus, finished_spans: Spans
) -> None:
    class Outer(Service):
        @command("outer")
        async def outer(self) -> Any:
            await asyncio.sleep(0)
            inner = await self.bus.execute_command("inner")
            self.bus.fire_event("outer.done")
            return inner

    class Inner(Service):
        @command("inner")
        async def inner(self) -> str:
            return "inner"

    traced_bus.add_service(Outer())
    traced_bus.add_service(Inner())
    assert traced_bus.execute_command("outer").result(timeout=5) == "inner"
    spans = finished_spans(traced_bus)
    (outer_server,) = [s for s in spans if s.name == "outer" and s.kind == SpanKind.SERVER]
    (inner_client,) = [s for s in spans if s.name == "inner" and s.kind == SpanKind.CLIENT]
    (producer,) = [s for s in spans if s.name == "send outer.done"]
    assert _parent_id(inner_client) == outer_server.context.span_id
    assert _parent_id(producer) == outer_server.context.span_id


def test_an_async_listeners_consumer_span_covers_its_run_and_parents_user_spans(
    traced_bus: Bus, tracer_provider: TracerProvider, finished_spans: Spans
) -> None:
    tracer = tracer_provider.get_tracer("user-code")
    done = threading.Event()
    ids: list[tuple[str | None, str | None]] = []

    class Listening(Service):
        @listener("lights.*")
        async def on_lights(self) -> None:
            await asyncio.sleep(0.02)
            with tracer.start_as_current_span("user.listen"):
                info = current_event()
                assert info is not None
                ids.append((info.trace_id, info.span_id))
            done.set()

    traced_bus.add_service(Listening())
    traced_bus.fire_event("lights.on")
    assert done.wait(5)
    wait_idle(traced_bus)
    spans = finished_spans(traced_bus)
    (consumer,) = [s for s in spans if s.name == "process lights.on"]
    (user,) = [s for s in spans if s.name == "user.listen"]
    assert _parent_id(user) == consumer.context.span_id
    assert ids == [
        (format(consumer.context.trace_id, "032x"), format(consumer.context.span_id, "016x"))
    ]
    assert consumer.start_time is not None
    assert consumer.end_time is not None
    assert consumer.end_time - consumer.start_time >= 20_000_000


def test_a_poster_context_does_not_leak_into_a_task_when_tracing_is_off(
    make_bus: Callable[..., Bus], tracer_provider: TracerProvider
) -> None:
    b = make_bus(tracing=False)
    tracer = tracer_provider.get_tracer("app")

    class Looker(Service):
        @command("look")
        async def look(self) -> bool:
            return trace.get_current_span().get_span_context().is_valid

    b.add_service(Looker())
    # Once the loop idles, the next post wakes it from the poster's thread.
    assert b.execute_command("look").result(timeout=5) is False
    with tracer.start_as_current_span("caller"):
        assert b.execute_command("look").result(timeout=5) is False


def test_hung_async_handlers_show_in_inspect_and_are_logged_once(
    make_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture, gate: Any
) -> None:
    b = make_bus(hung_after=0.2)
    opened = gate()

    class Slow(Service):
        @command("slow.wait")
        async def wait(self) -> str:
            await opened.wait()
            return "done"

        @command("slow.quick")
        async def quick(self) -> str:
            return "quick"

    b.add_service(Slow())
    with caplog.at_level(logging.WARNING, logger="bus"):
        futures = [b.execute_command("slow.wait") for _ in range(2)]
        assert _until(lambda: len(_tasks(b, "slow")) == 2)
        assert b.execute_command("slow.quick").result(timeout=5) == "quick"  # the thread is free
        assert _until(lambda: all(t["hung"] for t in _tasks(b, "slow")))
        # Several watchdog rounds (every 0.05 s here) after both were reported.
        assert _until(lambda: all(t["running_for"] > 0.6 for t in _tasks(b, "slow")))
        snapshot = b.inspect()
        opened.open()
        assert [f.result(timeout=5) for f in futures] == ["done", "done"]
    (service,) = [s for s in snapshot["services"] if s["name"] == "slow"]
    (thread,) = service["threads"]
    assert (thread["name"], thread["state"], thread["hung"]) == ("bus:test/slow", "idle", True)
    assert [(t["kind"], t["handler"], t["state"], t["hung"]) for t in thread["tasks"]] == [
        ("command", "slow.wait", "busy", True),
        ("command", "slow.wait", "busy", True),
    ]
    assert snapshot["totals"]["hung"] == 2
    assert service["activity"] == "busy"
    hung = [r.getMessage() for r in caplog.records if "hung handler" in r.getMessage()]
    assert len(hung) == 2, hung
    assert all("command 'slow.wait' on bus:test/slow (async) has run for" in m for m in hung)
    wait_idle(b)
    assert _tasks(b, "slow") == []


def test_a_task_awaiting_a_command_shows_what_it_waits_on(bus: Bus, gate: Any) -> None:
    opened = gate()

    class Front(Service):
        @command("front.ask")
        async def ask(self) -> Any:
            return await self.bus.execute_command("back.slow")

    class Back(Service):
        @command("back.slow")
        async def slow(self) -> str:
            await opened.wait()
            return "ok"

    bus.add_service(Front())
    bus.add_service(Back())
    future = bus.execute_command("front.ask")
    assert _until(lambda: [t["state"] for t in _tasks(bus, "front")] == ["waiting"])
    (task,) = _tasks(bus, "front")
    assert (task["handler"], task["waiting_on"]) == ("front.ask", "back.slow")
    opened.open()
    assert future.result(timeout=5) == "ok"
