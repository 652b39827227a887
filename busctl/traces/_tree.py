"""Spans grouped into traces: the forest of each trace id, and what was wrong with it.

traces = build_traces(spans, problems)   # problems collects parent cycles, cut
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..render.text import clipped, visible
from ._model import Span

__all__ = ["LineError", "Trace", "build_traces"]


@dataclass(frozen=True, slots=True)
class LineError:
    """A line of a trace file, or a span on it, that could not be used as it is, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(eq=False, slots=True)
class Trace:
    """The spans of one trace id, as a forest (roots whose parent is not recorded).

    ``spans`` are in start order. Its times, error count and services are
    worked out once, when it is made: they are read once per span when it
    is shown.
    """

    trace_id: str
    roots: list[Span]
    spans: list[Span]
    start_ns: int = field(init=False)
    """When the first span started."""
    end_ns: int = field(init=False)
    """When the last span ended."""
    errors: int = field(init=False)
    """How many of its spans failed."""
    services: list[str] = field(init=False)
    """The services the trace touched, in order of first appearance."""

    def __post_init__(self) -> None:
        self.start_ns = min((s.start_ns for s in self.spans), default=0)
        self.end_ns = max((s.end_ns for s in self.spans), default=0)
        self.errors = sum(1 for s in self.spans if s.error)
        ordered = sorted(self.spans, key=_start)
        self.services = list(dict.fromkeys(s.service for s in ordered))

    @property
    def duration_ms(self) -> float:
        """From the first start to the last end, in milliseconds."""
        return max(0, self.end_ns - self.start_ns) / 1e6

    @property
    def name(self) -> str:
        """The name of its first root span."""
        return self.roots[0].name if self.roots else "?"

    def walk(self) -> Iterator[tuple[Span, int]]:
        """``(span, depth)`` for every span, depth first, children in start order.

        Iterative: a causal chain may be thousands of spans deep.
        """
        stack = [(root, 0) for root in reversed(self.roots)]
        while stack:
            span, depth = stack.pop()
            yield span, depth
            stack.extend((child, depth + 1) for child in reversed(span.children))


def _start(span: Span) -> tuple[int, int]:
    # The bus records a command's CLIENT span a hair before its SERVER span;
    # the kind order breaks exact ties so trees read sender first.
    return span.start_ns, _KIND_ORDER.get(span.kind, 9)


_KIND_ORDER = {
    "client": 0,
    "producer": 1,
    "server": 2,
    "consumer": 3,
    "internal": 4,
    "unspecified": 5,
}
_SHOWN_IDS = 4  # span ids named in a report of a parent cycle


def build_traces(spans: Iterable[Span], problems: list[LineError] | None = None) -> list[Trace]:
    """Link spans into trees and group them by trace, oldest trace first.

    Linear in the number of spans but for the sorts (``n log n``); nothing
    recurses. Every span given is shown once, and what had to be mended is
    reported in ``problems`` (one ``LineError`` each, at the span's line):

    - a span whose id appears again in the same trace (a file captured twice
      over, or two writers that chose the same id): the first is kept;
    - spans whose parents form a cycle (``a`` the parent of ``b``, ``b`` of
      ``a``; a span its own parent): the cycle is cut above its earliest
      span, which is shown as a root. Without the cut none of them would be
      reachable from a root, and the whole cycle would vanish.

    A span whose parent is not in the file is a root: a capture or the
    bus's ring often holds only part of a trace, so that is not reported.
    """
    found = problems if problems is not None else []
    by_trace: dict[str, dict[str, Span]] = {}
    for span in spans:
        members = by_trace.setdefault(span.trace_id, {})
        first = members.setdefault(span.span_id, span)
        if first is not span:
            found.append(
                LineError(
                    span.line,
                    f"span {span.span_id} ({_named(span)}) of trace {span.trace_id} "
                    f"appears again (first on line {first.line}): this copy is left out",
                )
            )
    traces = []
    for trace_id, members in by_trace.items():
        ordered = sorted(members.values(), key=_start)
        roots = []
        for span in ordered:
            span.children.clear()
            span.parent = None
            span._thread = None
        for span in ordered:
            parent = members.get(span.parent_id) if span.parent_id else None
            if parent is None:
                roots.append(span)
            elif parent is span:
                roots.append(span)
                message = f"span {span.span_id} ({_named(span)}) is its own parent: shown as a root"
                found.append(LineError(span.line, message))
            else:
                span.parent = parent
                parent.children.append(span)
        roots.extend(_cut_cycles(ordered, roots, found))
        roots.sort(key=_start)
        traces.append(Trace(trace_id, roots, ordered))
    traces.sort(key=lambda t: t.start_ns)
    return traces


def _cut_cycles(ordered: list[Span], roots: list[Span], found: list[LineError]) -> list[Span]:
    """Cut every parent cycle among ``ordered``; return the spans that became roots.

    A span not reachable from a root is in a cycle or under one. Walking up
    from it (each span at most once before it becomes reachable) finds the
    cycle; its earliest span is detached from its parent, and everything
    under it is then reachable.
    """
    reached: set[int] = set()

    def reach(top: Span) -> None:
        stack = [top]
        while stack:
            span = stack.pop()
            reached.add(id(span))
            stack.extend(span.children)

    for root in roots:
        reach(root)
    if len(reached) == len(ordered):
        return []
    new_roots = []
    for span in ordered:
        if id(span) in reached:
            continue
        path: dict[int, int] = {}
        chain: list[Span] = []
        current: Span | None = span
        while current is not None and id(current) not in path:
            path[id(current)] = len(chain)
            chain.append(current)
            current = current.parent
        if current is None:  # pragma: no cover - a chain that ends reaches a root
            continue
        cycle = chain[path[id(current)] :]
        top = min(cycle, key=_start)
        parent = top.parent
        assert parent is not None
        parent.children.remove(top)
        top.parent = None
        new_roots.append(top)
        ids = " -> ".join(s.span_id for s in cycle[:_SHOWN_IDS])
        more = f" and {len(cycle) - _SHOWN_IDS} more" if len(cycle) > _SHOWN_IDS else ""
        found.append(
            LineError(
                top.line,
                f"span {top.span_id} ({_named(top)}) is in a cycle of {len(cycle)} spans, "
                f"each the parent of the next ({ids}{more}): shown as a root",
            )
        )
        reach(top)
    return new_roots


def _named(span: Span) -> str:
    # For problem reports: the name is the file's text, made visible and short.
    return f"'{clipped(visible(span.name), 60)}'"  # not repr: it would double each backslash
