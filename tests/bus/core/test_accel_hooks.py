"""A traced call's observer hooks in C (``_speedups_hooks.c``) and their Python reference.

With the accelerator, ``Hub.call_sent``, ``call_started``,
``handler_returned`` and ``call_ended`` are C method descriptors that write
down a traced call no watcher sees, and hand anything else to the Python
methods. Every span must be the same on both paths: names, kinds, statuses,
attributes, parents, links, and even the ids, which both draw from
``random`` in the same order. ``test_accel_traced`` covers the watched
calls (the Python methods' turn); these run without a watcher.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from bus import Bus, Service, command, listener
from bus._observe import _ctx
from bus._observe._hub import Hub
from bus._observe._replay import replaying
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(30)

HOOKS = (
    "call_sent",
    "call_started",
    "handler_returned",
    "call_ended",
    "delivery_started",
    "delivery_ended",
)


class Traced(Service):
    """Commands that reach each branch of the hooks."""

    name = "traced"

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[Any] = []

    @command("echo")
    def echo(self, *args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]  # mutable: frozen (encoded) as it returns

    @command("atom")
    def atom(self, x: Any) -> Any:
        self.contexts.append(otel_context.get_current())
        return x

    @command("mutate")
    def mutate(self, items: list[int], more: list[int]) -> list[int]:
        items.append(-1)  # the spans show what was sent, not this
        more.append(-2)
        return items

    @command("annotated")
    def annotated(self, x: int) -> int:
        span = trace.get_current_span()
        span.set_attribute("app.seen", x)
        span.add_event("looked", {"at": x})
        return x

    @command("boom")
    def boom(self, x: Any) -> None:
        raise ValueError(f"boom {x}")


class Outer(Service):
    """``nested`` calls ``atom`` on the other service, from inside its own span."""

    name = "outer"

    @command("nested")
    def nested(self, x: int) -> Any:
        return self.bus.execute_command("atom", x + 1).result(10)


def _span_rows(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """Every span, everything it says but times and threads, ids included."""
    varying = ("thread.name", "thread.id", "bus.duration_ms", "bus.queued_ms", "code.lineno")
    rows = []
    for span in spans:
        assert span.context is not None
        rows.append(
            (
                span.name,
                str(span.kind),
                str(span.status.status_code),
                span.status.description,
                {k: v for k, v in (span.attributes or {}).items() if k not in varying},
                span.context.trace_id,
                span.context.span_id,
                span.parent.span_id if span.parent is not None else None,
                [(e.name, dict(e.attributes or {})) for e in span.events],
                [(link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
                 for link in span.links],
            )
        )  # fmt: skip
    return sorted(rows, key=repr)


def _queued_ms_in_reason(spans: list[ReadableSpan]) -> None:
    """Every span's time in a mailbox, from the times its record kept: a few ms at most."""
    queued = [
        s.attributes["bus.queued_ms"] for s in spans if "bus.queued_ms" in (s.attributes or {})
    ]
    assert queued
    assert all(0 <= q < 10_000 for q in queued), queued


def _scenario() -> dict[str, Any]:
    """Traced, unwatched calls through every branch; the spans they make, ids and all."""
    with Bus(name="hooks", trace_overflow="wait") as b:
        service = Traced()
        b.add_service(service)
        b.add_service(Outer())
        results: list[Any] = []
        # One at a time, each seeded: the ids are the same draws on both paths.
        steps: list[Callable[[], Any]] = [
            lambda: b.execute_command("atom", 1).result(10),
            lambda: b.execute_command("atom", "text").result(10),
            lambda: b.execute_command("echo", 1, [2, 3], key={"a": 1}).result(10),
            lambda: b.execute_command("echo", 1, (2, 3), password="hunter2").result(10),
            lambda: b.execute_command("echo", key=None).result(10),
            lambda: b.execute_command("nested", 5).result(10),
            lambda: b.execute_command("annotated", 7).result(10),
            lambda: b.execute_command("mutate", [1], more=[2]).result(10),
        ]
        for seed, step in enumerate(steps):
            random.seed(seed)
            results.append(step())
        random.seed(100)
        with pytest.raises(ValueError, match="boom 1"):
            b.execute_command("boom", 1).result(10)
        # A parent span that is not the bus's, and a replay mark: Python's turn.
        random.seed(101)
        parent = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1))
        with trace.use_span(NonRecordingSpan(parent)):
            results.append(b.execute_command("atom", 2).result(10))
        random.seed(102)
        with replaying("0" * 31 + "9", "0" * 15 + "8"):
            results.append(b.execute_command("atom", 3).result(10))
        wait_idle(b)
        assert b.flush_traces(10)
        _queued_ms_in_reason(b.spans.spans())
        current = [ctx.get(_ctx.SPAN_KEY) for ctx in service.contexts]
        return {
            "results": results,
            "spans": _span_rows(b.spans.spans()),
            "current": [(s.trace_id, s.span_id, s.is_recording()) for s in current],
        }


@pytest.mark.usefixtures("ring_only")
def test_unwatched_traced_calls_make_the_same_spans_and_ids_on_both_paths(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_scenario)
    assert accelerated == reference
    assert reference["results"][:2] == [1, "text"]
    spans = reference["spans"]
    by_name: dict[str, list[Any]] = {}
    for row in spans:
        by_name.setdefault(f"{row[0]} {row[1]}", []).append(row)
    # the nested call: CLIENT under the outer SERVER span, in its trace
    (outer,) = by_name["nested SpanKind.SERVER"]
    inner = [r for r in by_name["atom SpanKind.CLIENT"] if r[7] == outer[6]]
    assert len(inner) == 1
    assert inner[0][5] == outer[5]
    # the foreign parent and the replay mark were kept
    assert any(r[5] == 0xABC and r[7] == 0xDEF for r in by_name["atom SpanKind.CLIENT"])
    replayed = [r for r in by_name["atom SpanKind.SERVER"] if r[4].get("bus.replayed")]
    assert len(replayed) == 1
    assert replayed[0][9] == [(9, 8, {"bus.replay": True})]
    # what the handler set on its span, the redacted argument, the frozen result
    (annotated,) = by_name["annotated SpanKind.SERVER"]
    assert annotated[4]["app.seen"] == 7
    assert annotated[8] == [("looked", {"at": 7})]
    assert any("hunter2" not in repr(r[4]) and "password" in repr(r[4]) for r in spans)
    assert any(r[4].get("bus.result") == '[[1,[2,3]],{"key":{"a":1}}]' for r in spans)
    (mutated,) = by_name["mutate SpanKind.SERVER"]
    assert (mutated[4]["bus.args"], mutated[4]["bus.kwargs"]) == ("[[1]]", '{"more":[2]}')
    assert mutated[4]["bus.result"] == "[1,-1]"
    (failed,) = by_name["boom SpanKind.SERVER"]
    assert failed[2] == "StatusCode.ERROR"
    # the span the handler saw as current: the SERVER span's, released once it returned
    servers = {(r[5], r[6]) for r in by_name["atom SpanKind.SERVER"]}
    assert len(reference["current"]) == 5
    assert all((t, s) in servers and not live for t, s, live in reference["current"])


class Hearing(Service):
    """Listeners that reach each branch of the delivery hooks."""

    name = "hearing"

    def __init__(self) -> None:
        super().__init__()
        self.current: list[Any] = []

    @listener("tick")
    def tick(self, x: Any, **kwargs: Any) -> None:
        self.current.append(trace.get_current_span())
        if x == "bad":
            raise ValueError("bad tick")
        if x == "note":
            trace.get_current_span().set_attribute("app.noted", True)
        if x == "again":
            self.bus.fire_event("tock", 1)

    @listener("tock")
    def tock(self, x: Any) -> None:
        self.current.append(trace.get_current_span())


def _event_scenario() -> dict[str, Any]:
    """Traced, unwatched deliveries through every branch; their spans, ids and all."""
    with Bus(name="events", trace_overflow="wait") as b:
        service = Hearing()
        b.add_service(service)
        for seed, (args, kwargs) in enumerate(
            [((1,), {}), (("text",), {"key": [1]}), (("bad",), {}), (("note",), {}),
             (("again",), {})]
        ):  # fmt: skip
            random.seed(seed)  # one at a time: the draws are made in the same order
            b.fire_event("tick", *args, **kwargs)
            wait_idle(b)
        assert b.flush_traces(10)
        _queued_ms_in_reason(b.spans.spans())
        return {
            "spans": _span_rows(b.spans.spans()),
            "current": [(s.trace_id, s.span_id, s.is_recording()) for s in service.current],
        }


@pytest.mark.usefixtures("ring_only")
def test_unwatched_traced_deliveries_make_the_same_spans_and_ids_on_both_paths(
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    accelerated, reference = on_both_paths(_event_scenario)
    assert accelerated == reference
    spans = reference["spans"]
    consumers = [r for r in spans if r[1] == "SpanKind.CONSUMER"]
    producers = {r[6]: r for r in spans if r[1] == "SpanKind.PRODUCER"}
    assert len(consumers) == 6
    assert len(producers) == 6
    for row in consumers:  # each under its event's span, in its trace
        assert producers[row[7]][5] == row[5]
    assert sum(r[2] == "StatusCode.ERROR" for r in consumers) == 1
    assert sum(r[4].get("app.noted") is True for r in consumers) == 1
    # tock, fired inside tick's delivery: its event span under that CONSUMER span
    (tock,) = [r for r in producers.values() if r[0] == "send tock"]
    assert any(r[6] == tock[7] and r[0] == "process tick" for r in consumers)
    # the span each listener saw as current: its CONSUMER span, ended once it returned
    ids = {(r[5], r[6]) for r in consumers}
    assert len(reference["current"]) == 6
    assert all((t, s) in ids and not live for t, s, live in reference["current"])


def test_the_hooks_are_c_with_the_accelerator_and_python_without(mode: str) -> None:
    for name in HOOKS:
        hook = Hub.__dict__[name]
        if mode == "c" and _ctx.VAR is not None:
            assert type(hook).__module__ == "bus._core._speedups", name
            assert hook.__wrapped__.__qualname__ == f"Hub.{name}"
        else:
            assert type(hook).__name__ == "function"
            assert hook.__qualname__ == f"Hub.{name}"


@pytest.mark.usefixtures("ring_only")
def test_a_watcher_added_between_the_send_and_the_end_sees_the_return(mode: str) -> None:
    """The end of a call sent unwatched is the Python method's once a watcher looks."""
    with Bus(name="late", trace_overflow="wait") as b:
        gate, entered = threading.Event(), threading.Event()

        class Slow(Service):
            name = "slow"

            @command("wait")
            def wait(self) -> str:
                entered.set()
                assert gate.wait(10)
                return "done"

        b.add_service(Slow())
        future = b.execute_command("wait")
        assert entered.wait(10)
        seen: list[Any] = []
        b.watch(seen.append)
        gate.set()
        assert future.result(10) == "done"
        wait_idle(b)
        returns = [a for a in seen if a.kind == "return"]
        assert len(returns) == 1
        assert returns[0].result == '"done"'
        assert returns[0].trace_id is not None
        assert returns[0].queued_ms is not None
        assert b.flush_traces(10)
        server = [s for s in b.spans.spans() if s.kind == trace.SpanKind.SERVER]
        assert [s.attributes["bus.result"] for s in server if s.attributes] == ['"done"']


@pytest.mark.usefixtures("ring_only")
def test_a_redaction_hook_runs_for_what_is_not_atoms_and_a_failing_one_masks(mode: str) -> None:
    """The Python hook the C hooks call (freeze, redaction): as in Python."""
    seen: list[str] = []

    def redact(key: str, value: Any) -> Any:
        seen.append(key)
        if key == "bad":
            raise RuntimeError("redaction broke")
        return "<hidden>" if key == "hide" else value

    with Bus(name="redacting", trace_overflow="wait", redact=redact) as b:
        b.add_service(Traced())
        answer = b.execute_command("echo", [1], bad=[2], hide=3).result(10)
        assert answer == [[[1]], {"bad": [2], "hide": 3}]  # the handler got the real values
        assert b.flush_traces(10)
        (server,) = [s for s in b.spans.spans() if s.kind == trace.SpanKind.SERVER]
        assert server.attributes is not None
        assert server.attributes["bus.kwargs"] == '{"bad":"***","hide":"<hidden>"}'
        assert server.attributes["bus.result"] == '[[[1]],{"bad":"***","hide":"<hidden>"}]'
        assert seen.count("bad") == 2
        assert seen.count("hide") == 2
