"""The OpenTelemetry context, read and set the cheap way on the hot path.

Every traced command and event asks "which span is current?" (its parent)
and every handler runs with its bus span current. Through the public API
that is ``get_current()``, ``get_current_span()``, ``get_span_context()`` and
``attach(set_span_in_context(...))``: about a microsecond per delivery. The
API keeps the context in one ``ContextVar`` holding a ``Context`` (a dict);
reading and setting that variable directly costs a fraction of it.

Both names used (``_RUNTIME_CONTEXT._current_context`` and ``_SPAN_KEY``) are
the API's own since 1.0, though private: they are used only if, on import,
they behave exactly as the public route does; otherwise every function here
falls back to the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ._records import BusSpan

__all__ = ["DIRECT", "SPAN_KEY", "VAR", "current", "enter", "leave", "parent_ids"]

_Context = otel_context.Context


def _public_parent(ctx: Any) -> tuple[int, int] | None:
    span = trace.get_current_span(ctx)
    if type(span) is BusSpan:
        return span.trace_id, span.span_id
    sc = span.get_span_context()
    return (sc.trace_id, sc.span_id) if sc.is_valid else None


def _public_enter(span: BusSpan) -> Any:
    return otel_context.attach(trace.set_span_in_context(span, _Context()))


current: Callable[[], Any] = otel_context.get_current
"""The current ``Context``."""

enter: Callable[[BusSpan], Any] = _public_enter
"""Make ``span`` current in a context of its own; returns the token for ``leave``."""

leave: Callable[[Any], None] = otel_context.detach
"""Undo ``enter``."""

parent_ids: Callable[[Any], tuple[int, int] | None] = _public_parent
"""``(trace_id, span_id)`` of the span current in context ``ctx``, or ``None``."""


VAR: Any = None
"""The API's context variable, while the direct route is in use (the C hooks set it too)."""

SPAN_KEY: str | None = None
"""The context key of the current span, while the direct route is in use."""


def _direct() -> bool:
    """Switch to the context variable itself, if it behaves as the public API."""
    global current, enter, leave, parent_ids, VAR, SPAN_KEY
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:
        return False
    var = getattr(_RUNTIME_CONTEXT, "_current_context", None)
    if var is None or not all(hasattr(var, name) for name in ("get", "set", "reset")):
        return False

    def direct_enter(span: BusSpan) -> Any:
        return var.set(_Context({_SPAN_KEY: span}))

    def direct_parent(ctx: Any) -> tuple[int, int] | None:
        span = ctx.get(_SPAN_KEY)
        if span is None:
            return None
        if type(span) is BusSpan:
            return span.trace_id, span.span_id
        sc = span.get_span_context()
        return (sc.trace_id, sc.span_id) if sc.is_valid else None

    probe = BusSpan(1, 2)
    token = direct_enter(probe)
    try:
        works = (
            trace.get_current_span() is probe
            and otel_context.get_current() == {_SPAN_KEY: probe}
            and var.get() is otel_context.get_current()
            and direct_parent(var.get()) == (1, 2)
        )
    finally:
        var.reset(token)
    if works and direct_parent(var.get()) == _public_parent(otel_context.get_current()):
        current, enter, leave, parent_ids = var.get, direct_enter, var.reset, direct_parent
        VAR, SPAN_KEY = var, _SPAN_KEY
    return works


DIRECT = _direct()
"""Whether the direct route is in use (the public API's is the fallback)."""
