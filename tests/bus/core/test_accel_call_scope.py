"""A traced command's current span, the same whether the service thread keeps it or makes it anew.

The C service loop (``_speedups_call.c``) calls the hub's C call hooks
directly and, like a traced delivery (``test_accel_scope.py``), keeps the
thread's span, its ``Context`` and the context's variables from one traced
call for the next (``_speedups_scope.c``), the same entry serving the
thread's deliveries in between. Whatever a handler does with its span and
context, what it, its caller and the trace see must be what the Python
reference gives: spans and contexts kept keep their ids, copies keep their
span, attributes do not leak into the next call, nested calls are children
of the handler's SERVER span, annotations and errors reach that span, and
nothing is current on the thread once a call is over, even when making the
call's scope fails.
"""

from __future__ import annotations

import contextvars
import random
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from bus import Activity, Bus, Service, command, listener
from bus._core import _accel
from bus._core._worker import Worker
from bus._observe import _ctx
from bus._observe._hub import Hub
from bus._observe._records import CallRecord
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)

OTHER: contextvars.ContextVar[Any] = contextvars.ContextVar("other", default=None)


def _ids(span: Any) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


def _span_of(kept: Any) -> Any:
    return trace.get_current_span(kept) if isinstance(kept, otel_context.Context) else kept


class Inner(Service):
    name = "inner"

    @command("inner")
    def inner(self, n: int) -> int:
        return n + 1000


class Server(Service):
    """A command that does, on each call, one thing with its span or context."""

    name = "server"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []
        self.kept: list[tuple[Any, tuple[int, int]]] = []
        self.copies: list[tuple[contextvars.Context, tuple[int, int], Any]] = []
        self.weak: list[tuple[weakref.ref[Any], tuple[int, int]]] = []
        self.ticks: list[tuple[int, int]] = []

    @listener("tick")
    def tick(self) -> None:  # a delivery on the same thread, between calls
        self.ticks.append(_ids(trace.get_current_span()))

    @command("work")
    def work(self, n: int, how: str) -> Any:
        span = trace.get_current_span()
        ids = _ids(span)
        self.seen.append(
            {
                "n": n,
                "ids": ids,
                "keys": len(otel_context.get_current()),
                "variables": len(contextvars.copy_context()),
                "other": OTHER.get(),
                "note": getattr(span, "note", None),
                "live": span.is_recording(),
            }
        )
        if how == "keep":
            self.kept.append((span, ids))
        elif how == "keep-context":
            self.kept.append((otel_context.get_current(), ids))
        elif how == "copy":
            self.copies.append((contextvars.copy_context(), ids, None))
        elif how == "copy-set":
            copy = contextvars.copy_context()
            copy.run(OTHER.set, "in the copy")
            self.copies.append((copy, ids, "in the copy"))
        elif how == "weak":
            self.weak.append((weakref.ref(span), ids))
        elif how == "note":
            span.note = n  # type: ignore[attr-defined]
        elif how == "annotate":
            span.set_attribute("app.n", n)
        elif how == "attach":
            otel_context.attach(otel_context.Context())  # never detached
        elif how == "nest":
            return self.bus.execute_command("inner", n).result(timeout=10)
        elif how == "raise":
            raise ValueError(f"no {n}")
        elif how == "set-other":
            OTHER.set(n)  # never reset: the thread's context keeps it
        return {"n": n}


PLAN = (
    ["plain"] * 3
    + ["keep", "plain", "keep-context", "plain", "copy", "plain", "copy-set", "plain"]
    + ["weak", "plain", "note", "plain", "annotate", "plain", "raise", "plain"]
    + ["tick", "plain", "tick", "tick", "plain", "plain"]
    + ["attach", "plain", "nest", "plain", "plain"]
    + ["set-other", "plain", "plain"]
)


def _scenario() -> dict[str, Any]:
    with Bus(name="calls", trace_overflow="wait") as b:
        server = Server()
        b.add_service(server)
        b.add_service(Inner())
        random.seed(11)
        results: list[Any] = []
        for n, how in enumerate(PLAN):
            if how == "tick":
                b.fire_event("tick")
                wait_idle(b)
                continue
            try:
                results.append(b.execute_command("work", n, how).result(timeout=10))
            except ValueError as exc:
                results.append(f"raised {exc}")
        assert b.flush_traces(10)
        spans = b.spans.spans()
        servers = {_ids_of(s): s for s in spans if s.kind == SpanKind.SERVER and s.name == "work"}
        seen = server.seen
        assert [row["n"] for row in seen] == [n for n, how in enumerate(PLAN) if how != "tick"]
        # Every handler saw its own SERVER span as current, live, alone in its
        # context (until one attached a context of its own and left it).
        assert [row["ids"] for row in seen] == [_ids_of(s) for s in servers.values()]
        for row in seen:
            assert row["live"] is True
            assert row["keys"] == 1
            assert row["note"] is None  # an attribute set on an earlier span is not here
        # The nested call: its CLIENT span is a child of the handler's SERVER span.
        nest = next(row for row in seen if PLAN[row["n"]] == "nest")
        (client,) = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == "inner"]
        assert client.parent is not None
        assert (client.parent.trace_id, client.parent.span_id) == nest["ids"]
        by_n = {row["n"]: servers[row["ids"]] for row in seen}
        annotated = by_n[PLAN.index("annotate")]
        failed = by_n[PLAN.index("raise")]
        consumers = [s for s in spans if s.kind == SpanKind.CONSUMER and s.name == "process tick"]
        assert sorted(server.ticks) == sorted(_ids_of(s) for s in consumers)
        return {
            "results": results,
            "kept": [_ids(_span_of(kept)) == ids for kept, ids in server.kept],
            "ended": [not _span_of(kept).is_recording() for kept, _ in server.kept],
            "copies": [
                copy.run(lambda: (_ids(trace.get_current_span()), OTHER.get())) == (ids, other)
                for copy, ids, other in server.copies
            ],
            "weak": [ref() is None or _ids(ref()) == ids for ref, ids in server.weak],
            "annotated": dict(annotated.attributes or {}).get("app.n"),
            "plain attributes": sorted(
                set().union(*(set(s.attributes or {}) for s in servers.values())) - {"app.n"}
            ),
            "failed": (failed.status.status_code, failed.status.description),
            "ok": [s.status.status_code for n, s in sorted(by_n.items()) if PLAN[n] != "raise"],
            "other": [row["other"] for row in seen],
            "variables": [row["variables"] for row in seen],
            "ticks": len(server.ticks),
        }


def _ids_of(span: Any) -> tuple[int, int]:
    return span.context.trace_id, span.context.span_id


def test_what_a_handler_does_with_its_span_and_context_is_seen_the_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    accelerated, reference = on_both_paths(_scenario)
    assert accelerated == reference
    calls = [how for how in PLAN if how != "tick"]
    assert reference["results"][calls.index("nest")] == PLAN.index("nest") + 1000
    assert reference["results"][calls.index("raise")] == f"raised no {PLAN.index('raise')}"
    assert reference["kept"] == [True, True]
    assert reference["ended"] == [True, True]
    assert reference["copies"] == [True, True]
    assert reference["weak"] == [True]
    assert reference["annotated"] == PLAN.index("annotate")
    assert reference["failed"][0] == StatusCode.ERROR
    assert StatusCode.ERROR not in reference["ok"]
    assert reference["ticks"] == 3
    at = calls.index("set-other")
    assert reference["other"] == [None] * (at + 1) + [PLAN.index("set-other")] * (
        len(calls) - at - 1
    )
    assert reference["variables"] == [1] * (at + 1) + [2] * (len(calls) - at - 1)


@pytest.mark.parametrize("mode", ["c", "python"], indirect=True)
def test_nothing_is_current_on_the_service_thread_once_a_call_is_over(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watcher hears a call return on the service's thread, after its span was left."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with Bus(name="after", trace_overflow="wait") as b:
        b.add_service(Server())
        current: list[bool] = []

        def watcher(activity: Activity) -> None:
            if activity.kind == "return":
                current.append(trace.get_current_span().get_span_context().is_valid)

        for n in range(3):  # the first ones with no watcher: the thread keeps its span
            assert b.execute_command("work", n, "plain").result(timeout=10) == {"n": n}
        b.watch(watcher)
        for n in range(3, 6):
            assert b.execute_command("work", n, "plain").result(timeout=10) == {"n": n}
    assert current == [False, False, False]


@pytest.mark.parametrize("mode", ["c", "python"], indirect=True)
@pytest.mark.parametrize("where", ["class", "instance"])
def test_call_hooks_set_on_the_hub_or_its_class_are_the_ones_called(
    mode: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C service loop calls the hub's call hooks directly only while they are the C hooks."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    heard: list[str] = []
    with Bus(name="hooks", trace_overflow="wait") as b:
        b.add_service(Server())
        assert b.execute_command("work", 0, "plain").result(timeout=10) == {"n": 0}
        hub = b.observer
        assert type(hub) is Hub
        for name in ("call_started", "handler_returned", "call_ended"):
            original = getattr(Hub, name)

            def hook(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
                heard.append(_name)
                return _original(self, *args)

            if where == "class":
                monkeypatch.setattr(Hub, name, hook)
            else:
                monkeypatch.setattr(hub, name, hook.__get__(hub))
        assert b.execute_command("work", 1, "plain").result(timeout=10) == {"n": 1}
        assert b.flush_traces(10)
        servers = [s for s in b.spans.spans() if s.kind == SpanKind.SERVER and s.name == "work"]
        assert len(servers) == 2
    assert heard == ["call_started", "handler_returned", "call_ended"]


def test_a_failure_making_the_calls_scope_leaves_nothing_current() -> None:
    """Each allocation of call_started failed in turn: a MemoryError, the context as it was.

    CPython (3.11 to 3.13) sets a context variable before it looks whether
    the set's token was made: a set that fails there has set the variable,
    with no token to undo it, and the handler's span would stay current on
    the thread (the first allocation of the token, here).
    """
    testcapi = pytest.importorskip("_testcapi")
    if not _accel.available():
        pytest.skip("the C accelerator was not built here")
    before = _accel.mode() == "c"
    _accel.use(True)
    try:
        hub = Hub.__new__(Hub)  # the hook reads only the record and the worker
        assert type(Hub.__dict__["call_started"]).__name__ == "CallStarted"
        worker = Worker.__new__(Worker)
        worker.thread_name = "bus-test"
        record = CallRecord.__new__(CallRecord)
        record.trace_id, record.server_id, record.extras = 7, 9, None
        failures = 0
        for at in range(40):
            assert _ctx.VAR.get(None) is None
            testcapi.set_nomemory(at, at + 1)
            try:
                scope = hub.call_started(record, worker)
            except MemoryError:
                scope = None
            finally:
                testcapi.remove_mem_hooks()
            if scope is None:
                failures += 1
                assert _ctx.VAR.get(None) is None, f"allocation {at}: the span left current"
            else:
                assert trace.get_current_span() is scope[0]
                hub.handler_returned(scope)
        assert failures > 0
    finally:
        _accel.use(before)
