"""``busctl trace check|show|export FILE``: a trace file read offline.

    busctl trace show traces/sample.jsonl --errors
    busctl trace check traces/sample.jsonl       # every bad line and span
    busctl trace show --sample                   # the recording that ships with busctl
    busctl trace export traces/sample.jsonl --format chrome -o sample.chrome.json
    busctl trace export traces/sample.jsonl --format otlp --endpoint http://localhost:4318

Loaded lazily by ``busctl.cli`` (``LAZY_VERBS``); the trace tools themselves
live in ``busctl.traces``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from .. import INSTALL_HINT
from .._exit import ExitStatus
from ..render.text import visible
from .options import Failure, json_option, reports_failures

if TYPE_CHECKING:
    from ..traces import TraceFile

__all__ = ["file_or_sample", "load_trace", "trace"]

SHOWN_PROBLEMS = 20
"""Bad lines and spans listed before the output; ``busctl trace check`` lists every one."""

P = ParamSpec("P")
R = TypeVar("R")

_STYLES: dict[str, dict[str, Any]] = {
    "header": {"bold": True},
    "name": {"fg": "cyan"},
    "dim": {"dim": True},
    "error": {"fg": "red", "bold": True},
}


def load_trace(path: str, *, strict: bool = False, quiet: bool = False) -> TraceFile:
    from ..traces import TraceFileError, read_trace_file

    try:
        trace_file = read_trace_file(path)
    except TraceFileError as exc:
        raise Failure(visible(str(exc)), ExitStatus.ERROR) from None
    if trace_file.errors and not quiet:
        click.echo(trace_file.error_summary(SHOWN_PROBLEMS), err=True)
        if len(trace_file.errors) > SHOWN_PROBLEMS:
            click.echo(f"(busctl trace check {visible(path)} lists every problem)", err=True)
    if trace_file.errors and strict:
        raise Failure(
            f"{visible(path)}: {len(trace_file.errors)} bad line(s) or span(s) (see above); "
            "drop --strict to use the valid ones",
            ExitStatus.ERROR,
        )
    if not trace_file.spans:
        reason = "no valid lines" if trace_file.errors else "no spans"
        raise Failure(f"{visible(path)}: {reason}: nothing to read", ExitStatus.ERROR)
    return trace_file


def _in_bulk(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a verb that reads and shows a whole file without collector pauses.

    (``busctl.traces._file.no_collection_pauses``: a third of the time for
    200,000 spans.) The collector is back on when the verb returns.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from ..traces._file import no_collection_pauses

        with no_collection_pauses():
            return fn(*args, **kwargs)

    return wrapper


def file_or_sample(fn: Callable[..., R]) -> Callable[..., R]:
    """The FILE argument, or ``--sample``: the recording that ships with the package."""

    @functools.wraps(fn)
    def wrapper(*args: Any, file: str | None, sample: bool, **kwargs: Any) -> R:
        if sample and file is not None:
            raise click.UsageError("give FILE or --sample, not both")
        if sample:
            import sample_services

            file = str(sample_services.sample_trace())
        if file is None:
            raise click.UsageError(
                "missing FILE (or --sample: the recording of the sample services)"
            )
        return fn(*args, file=file, **kwargs)

    wrapper = click.option(
        "--sample", is_flag=True, help="Use the recording that ships with busctl instead of FILE."
    )(wrapper)
    return click.argument("file", required=False, type=click.Path(dir_okay=False))(wrapper)


def _filter_options(fn: Callable[P, R]) -> Callable[P, R]:
    options = [
        click.option("--name", "names", multiple=True, metavar="PATTERN",
                     help="Only traces with a command, event or span matching (glob; repeatable)."),
        click.option("--service", "services", multiple=True, metavar="NAME",
                     help="Only traces touching this service (glob; repeatable)."),
        click.option("--trace-id", "trace_ids", multiple=True, metavar="ID",
                     help="Only this trace (an id or a prefix of one; repeatable)."),
        click.option("--errors", "errors_only", is_flag=True,
                     help="Only traces with a failed span."),
        click.option("--strict", is_flag=True, help="Fail on any bad line instead of skipping it."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group("trace")
def trace() -> None:
    """Read a trace file (OTLP JSON lines) offline; export it to other tools."""


@trace.command("check")
@file_or_sample
@json_option
@reports_failures
@_in_bulk
def check(file: str, as_json: bool) -> None:
    """List every bad line and span of FILE; exit 1 if there is one.

    What `trace show` and `replay` skip or mend, each in one line: lines that
    are not OTLP JSON, spans that cannot be decoded or have times out of
    range, duplicate span ids, parent cycles.
    """
    from ..traces import TraceFileError, read_trace_file

    try:
        trace_file = read_trace_file(file)
    except TraceFileError as exc:
        raise Failure(visible(str(exc)), ExitStatus.ERROR) from None
    problems = trace_file.errors
    if as_json:
        click.echo(json.dumps({
            "lines": trace_file.lines,
            "spans": sum(len(t.spans) for t in trace_file.traces()),
            "traces": len(trace_file.traces()),
            "problems": [{"line": e.line, "message": e.message} for e in problems],
        }, indent=2))  # fmt: skip
    else:
        if problems:
            click.echo(trace_file.error_summary())
        spans = sum(len(t.spans) for t in trace_file.traces())
        click.echo(
            f"{visible(file)}: {trace_file.lines} line{'s' if trace_file.lines != 1 else ''}, "
            f"{spans} span{'s' if spans != 1 else ''} in {len(trace_file.traces())} "
            f"trace{'s' if len(trace_file.traces()) != 1 else ''}, "
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}",
            err=True,
        )
    if problems:
        raise SystemExit(ExitStatus.ERROR)


@trace.command("show")
@file_or_sample
@_filter_options
@click.option("--args", "show_args", is_flag=True, help="Show arguments and results.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many traces.")
@json_option
@reports_failures
@_in_bulk
def show(
    file: str,
    names: tuple[str, ...],
    services: tuple[str, ...],
    trace_ids: tuple[str, ...],
    errors_only: bool,
    strict: bool,
    show_args: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """Show the traces in FILE as trees: services, durations, errors."""
    from ..traces import TraceFilter, render_traces, summary_json

    trace_file = load_trace(file, strict=strict)
    chosen = TraceFilter(names, services, trace_ids, errors_only).apply(trace_file.traces())
    if limit is not None:
        chosen = chosen[:limit]
    if as_json:
        click.echo(json.dumps([summary_json(t) for t in chosen], indent=2))
        return
    if not chosen:
        click.echo("no trace matches", err=True)
        return
    colour = sys.stdout.isatty()

    def style(text: str, kind: str) -> str:
        return click.style(text, **_STYLES[kind]) if colour else text

    click.echo(render_traces(chosen, style=style, args=show_args))
    total = len(trace_file.traces())
    click.echo(
        f"\n{len(chosen)} of {total} trace{'s' if total != 1 else ''}, "
        f"{sum(len(t.spans) for t in chosen)} spans",
        err=True,
    )


def _otlp_endpoint(url: str | None) -> str | None:
    if url is None:
        return None
    from urllib.parse import urlsplit

    if urlsplit(url).path in ("", "/"):
        return url.rstrip("/") + "/v1/traces"
    return url


@trace.command("export")
@file_or_sample
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["chrome", "otlp"]),
    required=True,
    help="chrome: trace-event JSON for Perfetto; otlp: send to an OTLP/HTTP endpoint.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write here (chrome JSON; with otlp: OTLP JSON lines, not sent).")  # fmt: skip
@click.option("--endpoint", metavar="URL",
              help="The OTLP/HTTP endpoint (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
                   "else http://localhost:4318/v1/traces).")  # fmt: skip
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the OTLP endpoint.")  # fmt: skip
@_filter_options
@reports_failures
@_in_bulk
def export(
    file: str,
    fmt: str,
    output: str | None,
    endpoint: str | None,
    timeout: float,
    names: tuple[str, ...],
    services: tuple[str, ...],
    trace_ids: tuple[str, ...],
    errors_only: bool,
    strict: bool,
) -> None:
    """Export FILE to Chrome trace-event JSON (Perfetto) or to an OTLP endpoint."""
    from ..traces import TraceFilter, to_chrome

    trace_file = load_trace(file, strict=strict)
    chosen = TraceFilter(names, services, trace_ids, errors_only).apply(trace_file.traces())
    spans = [span for t in chosen for span in t.spans]
    if not spans:
        raise Failure("no trace matches the filters: nothing to export", ExitStatus.ERROR)
    if fmt == "chrome":
        text = json.dumps(to_chrome(spans), separators=(",", ":"))
        if output in (None, "-"):
            click.echo(text)
        else:
            Path(str(output)).write_text(text + "\n")
            click.echo(
                f"wrote {len(spans)} spans to {output} (open it in ui.perfetto.dev)", err=True
            )
        return
    readable = [s.source for s in spans if s.source is not None]
    if output is not None:
        from ..traces import write_trace_file

        count = write_trace_file(str(output) if output != "-" else "/dev/stdout", readable)
        click.echo(f"wrote {count} spans to {output}", err=True)
        return
    _send_otlp(readable, _otlp_endpoint(endpoint), timeout)


def _send_otlp(spans: list[Any], endpoint: str | None, timeout: float) -> None:
    import logging

    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise Failure(
            "OTLP export needs opentelemetry-exporter-otlp-proto-http, which comes with "
            f"the console's dependencies: {INSTALL_HINT}",
            ExitStatus.ERROR,
        ) from None
    from opentelemetry.sdk.trace.export import SpanExportResult

    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=timeout)
    where = getattr(exporter, "_endpoint", endpoint or "the default endpoint")
    # The exporter logs its failures (and retries) at length; one line is enough here.
    logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
    try:
        sent, failed = 0, 0
        for start in range(0, len(spans), 512):
            batch = spans[start : start + 512]
            try:
                result = exporter.export(batch)
            except (ValueError, TypeError, UnicodeError) as exc:  # a value protobuf refuses
                raise Failure(f"cannot encode spans for OTLP: {exc}", ExitStatus.ERROR) from None
            if result is SpanExportResult.SUCCESS:
                sent += len(batch)
            else:
                failed += len(batch)
    finally:
        exporter.shutdown()  # type: ignore[no-untyped-call]
    if failed:
        raise Failure(
            f"the OTLP endpoint {where} did not accept {failed} of {len(spans)} spans "
            "(is a collector listening there? set it with --endpoint)",
            ExitStatus.ERROR,
        )
    click.echo(f"sent {sent} spans to {where}", err=True)
