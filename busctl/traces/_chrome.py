"""Chrome trace-event export: opens in Perfetto (ui.perfetto.dev) and chrome://tracing.

    from busctl.traces import read_trace_file, to_chrome

    json.dump(to_chrome(read_trace_file(path).spans), open("out.json", "w"))

One process per bus (the resource's ``service.name``), one thread track per
service thread, named with ``M`` metadata events. Spans become complete
(``X``) slices on the thread they ran on. Slices on one thread must nest, so a
span that overlaps another on the same thread without nesting inside it (a
command sent without waiting, still running when its caller's handler ends)
goes on an async track (``b``/``e`` events) instead. Flow arrows (``s``/``f``)
join a command's or event's sender to each handler.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ._model import Span

__all__ = ["to_chrome"]

_ARG_KEYS = ("bus.args", "bus.kwargs", "bus.result", "error.type", "bus.queued_ms")


def _us(ns: int, origin: int) -> float:
    return round((ns - origin) / 1000, 3)


def _finite(value: Any) -> Any:
    """``value`` with NaN and the infinities as text: JSON has no spelling for them.

    (``json.dumps`` would write a bare ``NaN``, which Perfetto refuses.)
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _args(span: Span) -> dict[str, Any]:
    args: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "kind": span.kind,
        "service": span.service,
    }
    if span.parent_id:
        args["parent_id"] = span.parent_id
    for key in _ARG_KEYS:
        if key in span.attributes:
            args[key] = _finite(span.attributes[key])
    if span.error:
        args["error"] = span.status_message or span.error_type or "error"
    if span.replayed:
        args["replayed"] = True
    return args


def to_chrome(spans: Iterable[Span]) -> dict[str, Any]:
    """The Chrome trace-event JSON object (``{"traceEvents": [...]}``) of the spans."""
    spans = sorted(spans, key=lambda s: (s.start_ns, -s.end_ns))
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms"}
    origin = spans[0].start_ns
    pids: dict[str, int] = {}
    tids: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = []
    for span in spans:
        process = str(span.resource.get("service.name") or "bus")
        if process not in pids:
            pids[process] = pid = len(pids) + 1
            events.append(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                 "args": {"name": process}}
            )  # fmt: skip
        pid = pids[process]
        key = (pid, span.thread)
        if key not in tids:
            tids[key] = tid = len(tids) + 1
            events.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                 "args": {"name": span.thread}}
            )  # fmt: skip
            events.append(
                {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                 "args": {"sort_index": tid}}
            )  # fmt: skip

    stacks: dict[tuple[int, str], list[int]] = {}
    placed: dict[str, tuple[int, int, bool]] = {}  # span id -> pid, tid, on a slice track
    for span in spans:
        pid = pids[str(span.resource.get("service.name") or "bus")]
        tid = tids[(pid, span.thread)]
        stack = stacks.setdefault((pid, span.thread), [])
        while stack and stack[-1] <= span.start_ns:
            stack.pop()
        end = max(span.end_ns, span.start_ns)
        common = {"name": span.name, "cat": f"bus.{span.kind}", "pid": pid, "tid": tid}
        if not stack or end <= stack[-1]:
            stack.append(end)
            events.append(
                {**common, "ph": "X", "ts": _us(span.start_ns, origin),
                 "dur": round((end - span.start_ns) / 1000, 3), "args": _args(span)}
            )  # fmt: skip
            placed[span.span_id] = (pid, tid, True)
        else:
            ident = f"0x{span.span_id}"
            events.append(
                {**common, "ph": "b", "id": ident, "ts": _us(span.start_ns, origin),
                 "args": _args(span)}
            )  # fmt: skip
            events.append({**common, "ph": "e", "id": ident, "ts": _us(end, origin)})
            placed[span.span_id] = (pid, tid, False)

    # Flow arrows from a sender to its handler, when both are slices.
    flow = 0
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        if span.kind not in ("server", "consumer") or not span.parent_id:
            continue
        sender = by_id.get(span.parent_id)
        if sender is None or sender.span_id not in placed or span.span_id not in placed:
            continue
        spid, stid, s_slice = placed[sender.span_id]
        hpid, htid, h_slice = placed[span.span_id]
        if not (s_slice and h_slice):
            continue
        flow += 1
        events.append(
            {"ph": "s", "id": flow, "name": span.operation, "cat": "bus.flow", "pid": spid,
             "tid": stid, "ts": _us(max(sender.start_ns, min(span.start_ns, sender.end_ns)),
                                    origin)}
        )  # fmt: skip
        events.append(
            {"ph": "f", "bp": "e", "id": flow, "name": span.operation, "cat": "bus.flow",
             "pid": hpid, "tid": htid, "ts": _us(span.start_ns, origin)}
        )  # fmt: skip
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"origin_unix_ns": str(origin), "spans": len(spans)},
    }
