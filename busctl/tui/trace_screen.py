"""The trace view: one trace's span tree as a waterfall, and the chosen span's details.

    app.push_screen(TraceScreen(source, trace_id))

Rows are spans depth first (a command's CLIENT span, its SERVER span below,
the events it fired below that...). The bar of each span sits on a shared
time axis, its queue wait dotted in front of it; failed spans are red. The
detail pane shows the span's arguments, result and exception.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.widgets.data_table import ColumnKey

from busctl.render.units import latency

from ._format import clip, shown
from ._spans import SpanView, parse_traces, pretty, service_colour, waterfall_bar
from .tables import MeasuredTable, clear_rows, fit_columns

if TYPE_CHECKING:
    from ._source import Source

__all__ = ["TraceScreen", "span_detail"]

# The spans of a trace are built off the bus's hot path, a moment after the
# work ends: an entry chosen at once may find its trace not there yet.
RETRIES = 10
RETRY_DELAY = 0.3
GROWTH_CHECKS = (0.5, 1.0, 2.0)
# Tree levels indented; a deeper span is drawn at this indent with its depth
# (as `busctl trace show` does), so a long chain keeps its columns.
MAX_INDENT = 16


def _indent(depth: int) -> str:
    if depth <= MAX_INDENT:
        return "  " * depth
    return "  " * MAX_INDENT + f"↳{depth} "


def span_detail(span: SpanView) -> Group:
    """The detail pane for one span: identity, timing, arguments, result, exception."""
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold")
    head.add_column()
    # Every string here came from the bus: rich Text (a str cell would be read
    # as markup), control characters made visible.
    head.add_row("span", shown(span.name, "bold red" if span.error else "bold"))
    head.add_row("kind", shown(span.kind))
    if span.service:
        head.add_row("service", shown(span.service, service_colour(span.service)))
    if span.thread:
        head.add_row("thread", shown(span.thread))
    head.add_row("duration", latency(span.duration_ms))
    if span.queued_ms is not None:
        head.add_row("queued", latency(span.queued_ms))
    head.add_row("span id", shown(span.span_id))
    if span.error:
        head.add_row("status", shown(f"ERROR {span.status_message}", "bold red"))
    parts: list[Any] = [head]
    done = {"bus.args", "bus.kwargs", "bus.result", "bus.service", "thread.name", "bus.queued_ms"}
    for key, title in (("bus.args", "arguments"), ("bus.kwargs", "keyword arguments")):
        if key in span.attributes:
            parts += [
                Text(title, style="bold underline"),
                shown(pretty(span.attributes[key]), multiline=True),
            ]
    if "bus.result" in span.attributes:
        parts += [
            Text("result", style="bold underline"),
            shown(pretty(span.attributes["bus.result"]), multiline=True),
        ]
    exception = span.exception()
    if exception is not None:
        parts.append(Text("exception", style="bold red underline"))
        parts.append(
            shown(
                f"{exception.get('exception.type', '')}: {exception.get('exception.message', '')}",
                "bold red",
            )
        )
        stack = exception.get("exception.stacktrace")
        if stack:
            parts.append(shown(str(stack).rstrip(), "red", multiline=True))
    rest = Table.grid(padding=(0, 1))
    rest.add_column(style="dim")
    rest.add_column()
    for key, value in sorted(span.attributes.items()):
        if key not in done:
            rest.add_row(shown(key), shown(value))
    parts += [Text("attributes", style="bold underline"), rest]
    return Group(*parts)


class TraceScreen(Screen[None]):
    """The waterfall of one trace, with a detail pane for the highlighted span.

    Args:
        source: where to fetch the trace.
        trace_id: the trace, 32 hex digits.
    """

    DEFAULT_CSS = """
    TraceScreen #waterfall { height: auto; max-height: 60%; min-height: 4; }
    TraceScreen #span-detail {
        height: 1fr; min-height: 5; border-top: solid $primary; padding: 0 1;
    }
    TraceScreen #trace-status { height: 1; padding: 0 1; background: $panel; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("n", "next_error", "Next error"),
    ]

    def __init__(self, source: Source, trace_id: str) -> None:
        super().__init__()
        self.source = source
        self.trace_id = trace_id
        self.spans: list[SpanView] = []
        self.problems: list[str] = []
        """What could not be shown as the bus sent it (spans left out or mended)."""
        self._t0 = 0
        self._t1 = 1

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(f"trace {self.trace_id}: loading…", id="trace-status")
        yield MeasuredTable(id="waterfall", cursor_type="row")
        with VerticalScroll(id="span-detail"):
            yield Static("", id="span-detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"trace {self.trace_id}"
        table = self.query_one("#waterfall", DataTable)
        for key, label in (
            ("span", "span"),
            ("service", "service"),
            ("thread", "thread"),
            ("took", "took"),
            ("queued", "queued"),
            ("bar", "timeline"),
        ):
            table.add_column(label, key=key)
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="trace", exit_on_error=False)
    async def load(self) -> None:
        """Fetch the trace (retrying while its spans are still being built).

        A trace chosen while its work goes on (a slow listener, a command
        still queued) gains spans for a while: it is read again a few times
        and redrawn when it grew.
        """
        status = self.query_one("#trace-status", Static)
        for _ in range(RETRIES):
            spans = await self._fetch(status)
            if spans is None:
                return
            if spans:
                self.show(spans)
                break
            status.update(f"trace {self.trace_id}: waiting for its spans…")
            await asyncio.sleep(RETRY_DELAY)
        else:
            status.update(
                Text(f"trace {self.trace_id}: not in the bus's trace ring (too old?)", "yellow")
            )
            return
        for delay in GROWTH_CHECKS:
            await asyncio.sleep(delay)
            spans = await self._fetch(status)
            if not spans:
                return
            if len(spans) != len(self.spans):
                self.show(spans)

    async def _fetch(self, status: Static) -> list[SpanView] | None:
        """The trace's spans; ``None`` (and the reason shown) when it cannot be read."""
        try:
            data = await asyncio.wrap_future(self.source.traces(self.trace_id))
        except Exception as exc:
            status.update(shown(f"trace {self.trace_id}: cannot load: {exc}", "red"))
            return None
        self.problems = []
        try:
            return parse_traces(data if isinstance(data, dict) else {}, self.problems)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            status.update(shown(f"trace {self.trace_id}: cannot read it: {exc!r}", "red"))
            return None

    def show(self, spans: list[SpanView]) -> None:
        """Draw ``spans`` (from ``parse_traces``)."""
        self.spans = spans
        self._t0 = min(s.start_ns - int((s.queued_ms or 0) * 1e6) for s in spans)
        self._t1 = max(max(s.end_ns for s in spans), self._t0 + 1)
        errors = sum(1 for s in spans if s.error)
        services = sorted({s.service for s in spans if s.service})
        total = latency((self._t1 - self._t0) / 1e6)
        summary = Text.assemble(
            (f"{len(spans)} spans", "bold"),
            f" · {total} · services: {clip(', '.join(services) or '-', 80)}",
            (f" · {errors} failed" if errors else "", "bold red"),
        )
        if self.problems:
            count = len(self.problems)
            first = clip(self.problems[0], 100)
            summary.append(f" · {count} not as sent: {first}", style="yellow")
        self.query_one("#trace-status", Static).update(summary)
        self._draw()

    def _widths(self) -> tuple[int, int]:
        """(span column, waterfall) widths: the bars get at least 12 cells.

        A narrow screen cuts the span names (with an ellipsis) before the
        bars: a waterfall too thin to read shows nothing.
        """
        took = max((len(latency(s.duration_ms)) for s in self.spans), default=4)
        queued = max((len(latency(s.queued_ms)) for s in self.spans), default=6)
        # Each column also takes 2 cells of padding; then the scrollbar's
        # gutter and a cell to spare.
        used = 2 * 6 + max(took, 4) + max(queued, 6) + 3
        # A column is never narrower than its heading ("service", "thread").
        # Service and thread are clipped to 60 cells (``_draw``).
        used += max([len("service"), *(min(len(s.service), 60) for s in self.spans)])
        threads = (min(len(s.thread.rsplit("/", 1)[-1]), 60) for s in self.spans)
        used += max([len("thread"), *threads])
        names = max([len("span"), *(len(self._label(s)) for s in self.spans)])
        room = (self.size.width or 120) - used
        if room - names < 12:
            names = max(room - 12, 16)
        return names, max(12, min(100, room - names))

    @staticmethod
    def _label(span: SpanView) -> str:
        return _indent(span.depth) + ("✗ " if span.error else "") + span.name

    def _draw(self) -> None:
        table = self.query_one("#waterfall", DataTable)
        row = table.cursor_row
        clear_rows(table)  # a narrower screen: narrower columns
        names, width = self._widths()
        total = latency((self._t1 - self._t0) / 1e6)
        axis = f"0{'─' * max(width - len(total) - 2, 1)}{total}"
        table.columns[ColumnKey("bar")].label = Text(axis, style="dim")
        for index, span in enumerate(self.spans):
            style = "bold red" if span.error else ""
            lead = _indent(span.depth) + ("✗ " if span.error else "")
            label = Text(lead + clip(span.name, max(names - len(lead), 4)), style=style)
            table.add_row(
                label,
                Text(clip(span.service, 60), style=service_colour(span.service)),
                Text(clip(span.thread.rsplit("/", 1)[-1], 60)),
                latency(span.duration_ms),
                latency(span.queued_ms) if span.queued_ms is not None else "",
                waterfall_bar(span, self._t0, self._t1, width),
                key=str(index),
            )
        fit_columns(table)
        if self.spans:
            table.move_cursor(row=min(max(row, 0), len(self.spans) - 1), animate=False)
            self._detail(min(max(row, 0), len(self.spans) - 1))

    def on_resize(self) -> None:
        if self.spans:
            self._draw()

    @on(DataTable.RowHighlighted, "#waterfall")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, index: int) -> None:
        if 0 <= index < len(self.spans):
            self.query_one("#span-detail-body", Static).update(span_detail(self.spans[index]))

    def action_next_error(self) -> None:
        """Move to the next failed span."""
        table = self.query_one("#waterfall", DataTable)
        count = len(self.spans)
        for step in range(1, count + 1):
            index = (table.cursor_row + step) % count
            if self.spans[index].error:
                table.move_cursor(row=index)
                return
        self.notify("no failed span in this trace")
