"""A traced listener's current span, the same whether the worker keeps it or makes it anew.

The C worker (``_speedups_scope.c``) keeps a thread's span, its ``Context``
and the context's variables from one traced delivery for the next, and
makes them current by swapping the thread context's variables. Whatever a
listener does with its span and context, what it and everyone else sees
must be what the Python reference (a new span, ``var.set``/``var.reset``)
gives: spans and contexts a listener kept keep their ids, copies of the
context keep their span, attributes and weak references do not leak into
the next delivery, variables a listener leaves set stay set, and nothing is
current on the worker's thread once a delivery is over.
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

from bus import Activity, Bus, Service, current_event, listener
from bus._core._worker import current_worker
from bus._observe._hub import Hub
from bus.testing import wait_idle

pytestmark = pytest.mark.timeout(60)

OTHER: contextvars.ContextVar[Any] = contextvars.ContextVar("other", default=None)


def _span_of(kept: Any) -> Any:
    """The span a listener kept, or the current one of the context it kept."""
    return trace.get_current_span(kept) if isinstance(kept, otel_context.Context) else kept


def _ids(span: Any) -> tuple[int, int]:
    context = span.get_span_context()
    return context.trace_id, context.span_id


class Keeper(Service):
    """A listener that does, on each delivery, one thing with its span or context."""

    name = "keeper"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []
        self.kept: list[tuple[Any, tuple[int, int]]] = []
        self.copies: list[tuple[contextvars.Context, tuple[int, int], Any]] = []
        self.weak: list[tuple[weakref.ref[Any], tuple[int, int]]] = []
        self.scopes: list[tuple[Any, tuple[tuple[int, int], int]]] = []

    @listener("tick")
    def tick(self, n: int, how: str) -> None:
        span = trace.get_current_span()
        ids = _ids(span)
        info = current_event()
        assert info is not None
        self.seen.append(
            {
                "n": n,
                "ids": ids,
                "event": (info.trace_id, info.span_id),
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
        elif how == "copy-set":  # a mapping derived from the span's, held by the copy only
            copy = contextvars.copy_context()
            copy.run(OTHER.set, "in the copy")
            self.copies.append((copy, ids, "in the copy"))
        elif how == "keep-scope":  # the worker's own record of the delivery (the hub's scope)
            scope = current_worker().scope  # type: ignore[union-attr]
            self.scopes.append((scope, (_ids(scope[0]), scope[2])))  # what it held, not held
        elif how == "weak":
            self.weak.append((weakref.ref(span), ids))
        elif how == "note":
            span.note = n  # type: ignore[attr-defined]
        elif how == "attach":
            otel_context.attach(otel_context.Context())  # never detached
        elif how == "nest":
            self.bus.fire_event("tock", n)
        elif how == "set-other":
            OTHER.set(n)  # never reset: the thread's context keeps it, as in Python

    @listener("tock")
    def tock(self, n: int) -> None:
        pass


# What each delivery does: plain runs between the others let the worker keep
# (or not) what the one before left; the variable set last changes the
# thread's context for good, so the last plain runs go through the API.
PLAN = (
    ["plain"] * 3
    + ["keep", "plain", "keep-context", "plain", "copy", "plain", "copy-set", "plain"]
    + ["weak", "plain", "note", "plain", "plain", "attach", "plain", "nest", "plain"]
    + ["keep-scope", "plain", "plain"]
    + ["set-other", "plain", "plain"]
)


def _scenario() -> dict[str, Any]:
    with Bus(name="scopes", trace_overflow="wait") as b:
        keeper = Keeper()
        b.add_service(keeper)
        random.seed(7)
        for n, how in enumerate(PLAN):
            b.fire_event("tick", n, how)
            wait_idle(b)
        assert b.flush_traces(10)
        spans = b.spans.spans()
        consumers = {
            (s.context.trace_id, s.context.span_id): s for s in spans if s.name == "process tick"
        }
        tock = [s for s in spans if s.name == "send tock"]
        seen = keeper.seen
        # Every listener saw its own CONSUMER span as current, live, alone in
        # its context, with current_event() telling the same ids.
        assert [row["n"] for row in seen] == list(range(len(PLAN)))
        assert {row["ids"] for row in seen} == set(consumers)
        for row in seen:
            trace_id, span_id = row["ids"]
            assert row["event"] == (f"{trace_id:032x}", f"{span_id:016x}")
            assert row["live"] is True
            assert row["keys"] == 1
            assert row["note"] is None  # an attribute set on an earlier span is not here
        # The event fired inside a delivery: under that delivery's span.
        (nested,) = tock
        nest = PLAN.index("nest")
        assert nested.parent is not None
        assert (nested.parent.trace_id, nested.parent.span_id) == seen[nest]["ids"]
        return {
            # kept spans and contexts: their ids as the listener saw them, ended
            "kept": [_ids(_span_of(kept)) == ids for kept, ids in keeper.kept],
            "ended": [not _span_of(kept).is_recording() for kept, _ in keeper.kept],
            # copies of the context: still their delivery's span (and their own variable)
            "copies": [
                copy.run(lambda: (_ids(trace.get_current_span()), OTHER.get())) == (ids, other)
                for copy, ids, other in keeper.copies
            ],
            # a span only weakly referred to is gone, not serving a later delivery
            "weak": [ref() is None or _ids(ref()) == ids for ref, ids in keeper.weak],
            # a scope kept: as it was (its span, token and start time)
            "scopes": [(_ids(scope[0]), scope[2]) == then for scope, then in keeper.scopes],
            "other": [row["other"] for row in seen],
            "variables": [row["variables"] for row in seen],
        }


def test_what_a_listener_does_with_its_span_and_context_is_seen_the_same_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
    on_both_paths: Callable[[Callable[[], Any]], tuple[Any, Any]],
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")  # the ring only
    accelerated, reference = on_both_paths(_scenario)
    assert accelerated == reference
    assert reference["kept"] == [True, True]
    assert reference["ended"] == [True, True]
    assert reference["copies"] == [True, True]
    assert reference["weak"] == [True]
    assert reference["scopes"] == [True]
    # OTHER: set by one listener, never reset, seen by every later one
    at = PLAN.index("set-other")
    assert reference["other"] == [None] * (at + 1) + [at] * (len(PLAN) - at - 1)
    # the context's variables: the API's one only, and OTHER once it was set
    assert reference["variables"] == [1] * (at + 1) + [2] * (len(PLAN) - at - 1)


@pytest.mark.parametrize("mode", ["c", "python"], indirect=True)
def test_nothing_is_current_on_the_worker_once_a_delivery_is_over(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watcher hears a delivery end on the worker's thread, after its span was left."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with Bus(name="after", trace_overflow="wait") as b:
        b.add_service(Keeper())
        current: list[bool] = []

        def watcher(activity: Activity) -> None:
            if activity.kind == "delivery":
                current.append(trace.get_current_span().get_span_context().is_valid)

        for n in range(3):  # the first two with no watcher: the worker keeps its span
            b.fire_event("tick", n, "plain")
            wait_idle(b)
        b.watch(watcher)
        for n in range(3, 6):
            b.fire_event("tick", n, "plain")
            wait_idle(b)
    assert current == [False, False, False]


@pytest.mark.parametrize("mode", ["c", "python"], indirect=True)
@pytest.mark.parametrize("where", ["class", "instance"])
def test_delivery_hooks_set_on_the_hub_or_its_class_are_the_ones_called(
    mode: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The C worker calls the hub's hooks directly only while they are the C hooks."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    heard: list[str] = []
    with Bus(name="hooks", trace_overflow="wait") as b:
        b.add_service(Keeper())
        b.fire_event("tick", 0, "plain")  # the worker has met the hub's C hooks
        wait_idle(b)
        hub = b.observer
        assert type(hub) is Hub
        for name in ("delivery_started", "handler_returned", "delivery_ended"):
            original = getattr(Hub, name)

            def hook(self: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
                heard.append(_name)
                return _original(self, *args)

            if where == "class":
                monkeypatch.setattr(Hub, name, hook)
            else:
                monkeypatch.setattr(hub, name, hook.__get__(hub))
        b.fire_event("tick", 1, "plain")
        wait_idle(b)
        assert b.flush_traces(10)
        assert len([s for s in b.spans.spans() if s.name == "process tick"]) == 2
    assert heard == ["delivery_started", "handler_returned", "delivery_ended"]


class _Recording:
    """An observer that hands everything to a hub, noting the delivery hooks it is asked for."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.heard: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.hub, name)
        if name not in ("delivery_started", "handler_returned", "delivery_ended"):
            return found

        def hook(*args: Any) -> Any:
            self.heard.append(name)
            return found(*args)

        return hook


@pytest.mark.parametrize("mode", ["c", "python"], indirect=True)
def test_the_worker_asks_the_observer_the_bus_has_now(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the worker last read of ``runtime.bus.observer`` is not used once it changed."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    with Bus(name="observers", trace_overflow="wait") as b:
        b.add_service(Keeper())
        b.fire_event("tick", 0, "plain")  # read, and kept, with the hub
        wait_idle(b)
        hub = b.observer
        assert type(hub) is Hub
        recording = _Recording(hub)
        monkeypatch.setattr(b, "observer", recording)
        b.fire_event("tick", 1, "plain")
        wait_idle(b)
        assert b.flush_traces(10)
        assert len([s for s in b.spans.spans() if s.name == "process tick"]) == 2
    assert recording.heard == ["delivery_started", "handler_returned", "delivery_ended"]
