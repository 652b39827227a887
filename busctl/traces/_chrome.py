"""Chrome trace-event export: opens in Perfetto (ui.perfetto.dev) and chrome://tracing.

    from busctl.traces import read_trace_file, to_chrome

    json.dump(to_chrome(read_trace_file(path).spans), open("out.json", "w"))

One process per bus (the resource's ``service.name``), one thread track per
thread a span ran on (``Span.thread``: a handler's thread; a call or event
sent from inside a handler runs on the handler's thread, so it is drawn
there, nested under the handler), named with ``M`` metadata events. Every
span is a complete (``X``) slice. Slices on one thread must nest, so a span
that overlaps another on its thread without nesting in it (a command sent
without waiting, still running when the handler that sent it returned) goes
on an *overlap lane*: a track of its own just below its thread's, named
after it (``bus:home/lights (overlap 1)``).

Arrows are flow events v2 (``bind_id`` with ``flow_out`` on the slice they
leave, ``flow_in`` on the slice they reach): the viewers bind them to those
very slices, with no timestamp matching (flow v1 ``s`` events placed at a
slice's edge were dropped by chrome://tracing, its µs to ms rounding putting
them outside). They go from each sender to its handlers, from a span to a
child drawn elsewhere (another lane, thread or process), and along span
links (a replayed span from the one it replays). A slice carries one
``bind_id``: it leaves by it when arrows leave it; each arrow that reaches it
beyond that lands on a zero-length marker slice at its start (``← name``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._model import Span, json_value

__all__ = ["to_chrome"]

_ARG_KEYS = ("bus.args", "bus.kwargs", "bus.result", "error.type", "bus.queued_ms")
_HOPS = frozenset({"server", "consumer"})  # reached from their parent across threads


def _us(ns: int, origin: int) -> float:
    # Microseconds with three decimals: whole nanoseconds, which Perfetto
    # reads back exactly (it rounds ts * 1000), so slices that nest in
    # nanoseconds nest in the viewer.
    return round((ns - origin) / 1000, 3)


def _args(span: Span) -> dict[str, Any]:
    args: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "kind": span.kind,
        "service": span.service,
    }
    if span.parent_id:
        args["parent_id"] = span.parent_id
    if span.is_bus:
        for key in _ARG_KEYS:
            if key in span.attributes:
                args[key] = json_value(span.attributes[key])
    attributes = span.own_attributes()
    if attributes:
        args["attributes"] = json_value(attributes)
    events = span.own_events()
    if events:
        args["events"] = [
            {"name": name, "time_unix_nano": str(time), "attributes": json_value(attributes)}
            for name, attributes, time in events
        ]
    links = span.own_links()
    if links:
        args["links"] = [
            {"trace_id": trace_id, "span_id": span_id, "attributes": json_value(attributes)}
            for trace_id, span_id, attributes in links
        ]
    if span.error:
        args["error"] = span.error_text
    if span.replayed:
        args["replayed"] = True
    return args


@dataclass(slots=True)
class _Placed:
    """One span's slice, and the arrows that leave and reach it."""

    span: Span
    event: dict[str, Any]
    track: tuple[int, int]  # (pid, tid)
    outgoing: bool = False
    incoming: list[tuple[_Placed, str]] = field(default_factory=list)  # (from, category)

    def key(self) -> tuple[float, float, int]:
        """Its place in the file: by start, longest first, an arrow's source first."""
        return (self.event["ts"], -self.event["dur"], 0 if self.outgoing else 1)


class _Tracks:
    """Thread tracks and their overlap lanes, with the ``M`` events naming them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self._events = events
        self._pids: dict[str, int] = {}
        self._threads: dict[tuple[int, str], int] = {}  # (pid, thread) -> its order
        self._tids: dict[tuple[int, str, int], int] = {}  # (pid, thread, lane) -> tid
        # Per (pid, thread), one stack of open slice ends per lane.
        self._lanes: dict[tuple[int, str], list[list[int]]] = {}

    def process(self, name: str) -> int:
        pid = self._pids.get(name)
        if pid is None:
            pid = self._pids[name] = len(self._pids) + 1
            self._events.append(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
            )
        return pid

    def place(self, pid: int, thread: str, start: int, end: int) -> int:
        """The tid of the first lane of ``thread`` where ``[start, end]`` nests.

        Spans come in start order (longest first on a tie): on each lane a
        slice ends before the next begins, or holds it whole.
        """
        lanes = self._lanes.setdefault((pid, thread), [])
        for lane, stack in enumerate(lanes):
            while stack and stack[-1] <= start:
                stack.pop()
            if not stack or end <= stack[-1]:
                stack.append(end)
                return self._tid(pid, thread, lane)
        lanes.append([end])
        return self._tid(pid, thread, len(lanes) - 1)

    def _tid(self, pid: int, thread: str, lane: int) -> int:
        key = (pid, thread, lane)
        tid = self._tids.get(key)
        if tid is None:
            tid = self._tids[key] = len(self._tids) + 1
            order = self._threads.setdefault((pid, thread), len(self._threads))
            name = thread if lane == 0 else f"{thread} (overlap {lane})"
            self._events.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
            )
            # Each lane just below its thread, threads in order of first use.
            self._events.append(
                {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                 "args": {"sort_index": order * 1000 + lane}}
            )  # fmt: skip
        return tid


def to_chrome(spans: Iterable[Span]) -> dict[str, Any]:
    """The Chrome trace-event JSON object (``{"traceEvents": [...]}``) of the spans.

    Linear in the spans but for the sorts. A span whose parent or linked
    span is not among them has no arrow for it; nor has one that would point
    back in time (two processes whose clocks disagree), which neither viewer
    can draw.
    """
    spans = sorted(spans, key=lambda s: (s.start_ns, -s.end_ns))
    if not spans:
        return {"traceEvents": [], "displayTimeUnit": "ms"}
    origin = spans[0].start_ns
    meta: list[dict[str, Any]] = []
    tracks = _Tracks(meta)
    slices: list[_Placed] = []
    by_id: dict[tuple[str, str], _Placed] = {}  # the first of a span id seen twice
    for span in spans:
        pid = tracks.process(str(span.resource.get("service.name") or "bus"))
        end = max(span.end_ns, span.start_ns)
        tid = tracks.place(pid, span.thread, span.start_ns, end)
        event = {
            "ph": "X", "name": span.name, "cat": f"bus.{span.kind}", "pid": pid, "tid": tid,
            "ts": _us(span.start_ns, origin), "dur": round((end - span.start_ns) / 1000, 3),
            "args": _args(span),
        }  # fmt: skip
        item = _Placed(span, event, (pid, tid))
        slices.append(item)
        by_id.setdefault((span.trace_id, span.span_id), item)
    _plan_arrows(slices, by_id)
    return {
        "traceEvents": meta + _bind(slices),
        "displayTimeUnit": "ms",
        "otherData": {"origin_unix_ns": str(origin), "spans": len(spans)},
    }


def _plan_arrows(slices: list[_Placed], by_id: dict[tuple[str, str], _Placed]) -> None:
    """Note each arrow on the slice it leaves and the one it reaches."""

    def arrow(source: _Placed | None, target: _Placed, category: str) -> None:
        if source is None or source is target or source.span.start_ns > target.span.end_ns:
            return
        source.outgoing = True
        target.incoming.append((source, category))

    for item in slices:
        span = item.span
        if span.parent_id:
            parent = by_id.get((span.trace_id, span.parent_id))
            # A child on its parent's own track is drawn nested in it: no arrow needed.
            if parent is not None and (span.kind in _HOPS or parent.track != item.track):
                arrow(parent, item, "bus.flow")
        for trace_id, span_id, _ in span.links:
            arrow(by_id.get((trace_id, span_id)), item, "bus.link")


def _bind(slices: list[_Placed]) -> list[dict[str, Any]]:
    """The slice events with their flow v2 fields, and a marker for each arrow in beyond one.

    Both viewers pair a flow's ends in file order, by start: each arrow's
    source comes before its end. A slice that arrows leave gets a
    ``bind_id`` of its own and ``flow_out``; one that only arrows reach
    takes the first one's ``bind_id`` with ``flow_in``, unless that would
    come before the source (they start together, it lasts longer); every
    other arrow in lands on a zero-length marker slice at its start, or at
    the source's start when that is later.
    """
    ids: dict[int, int] = {}  # id(_Placed) -> its bind_id
    for item in slices:
        if item.outgoing:
            item.event["bind_id"] = ids[id(item)] = len(ids) + 1
            item.event["flow_out"] = True
    ordered: list[tuple[tuple[float, float, int], dict[str, Any]]] = []
    for item in slices:
        event = item.event
        incoming = item.incoming
        if not item.outgoing and incoming and incoming[0][0].key() <= item.key():
            event["bind_id"] = ids[id(incoming[0][0])]
            event["flow_in"] = True
            incoming = incoming[1:]
        ordered.append((item.key(), event))
        for source, category in incoming:
            at = max(event["ts"], source.event["ts"])
            marker = {
                "ph": "X", "name": f"← {source.span.name}", "cat": category,
                "pid": event["pid"], "tid": event["tid"], "ts": at, "dur": 0,
                "bind_id": ids[id(source)], "flow_in": True,
                "args": {"from_trace_id": source.span.trace_id,
                         "from_span_id": source.span.span_id, "span_id": item.span.span_id},
            }  # fmt: skip
            ordered.append(((at, 0.0, 2), marker))
    ordered.sort(key=lambda entry: entry[0])
    return [event for _, event in ordered]
