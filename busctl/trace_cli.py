"""``busctl trace show|export FILE`` and ``busctl replay FILE``.

    busctl trace show traces/sample.jsonl --errors
    busctl trace check traces/sample.jsonl       # every bad line and span
    busctl trace show --sample                   # the recording that ships with busctl
    busctl trace export traces/sample.jsonl --format chrome -o sample.chrome.json
    busctl trace export traces/sample.jsonl --format otlp --endpoint http://localhost:4318
    busctl replay traces/sample.jsonl --commands --fast
    busctl replay traces/sample.jsonl --commands --to-pytest tests/test_recorded.py

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

from ._exit import ExitStatus
from ._text import clipped, visible
from ._verbs import Failure, bus_option, json_option, reports_failures, verbose_option

if TYPE_CHECKING:
    from .traces import Outcome, ReasonCode, Step, TraceFile

__all__ = ["replay", "trace"]

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


def _cli_hints() -> dict[ReasonCode, str]:
    """How the command line remedies each reason a step is not replayed."""
    from .traces import ReasonCode

    return {
        ReasonCode.COMMANDS_OFF: "replay them with --commands",
        ReasonCode.FILTERED: "--only/--exclude",
        ReasonCode.NOT_READONLY: "use --all-commands to re-execute it",
        ReasonCode.SKIPPED: "s at the --step prompt",
    }


def _load(path: str, *, strict: bool = False, quiet: bool = False) -> TraceFile:
    from .traces import TraceFileError, read_trace_file

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
        from .traces._file import no_collection_pauses

        with no_collection_pauses():
            return fn(*args, **kwargs)

    return wrapper


def _file_or_sample(fn: Callable[..., R]) -> Callable[..., R]:
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
@_file_or_sample
@json_option
@reports_failures
@_in_bulk
def check(file: str, as_json: bool) -> None:
    """List every bad line and span of FILE; exit 1 if there is one.

    What `trace show` and `replay` skip or mend, each in one line: lines that
    are not OTLP JSON, spans that cannot be decoded or have times out of
    range, duplicate span ids, parent cycles.
    """
    from .traces import TraceFileError, read_trace_file

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
@_file_or_sample
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
    from .traces import TraceFilter, render_traces, summary_json

    trace_file = _load(file, strict=strict)
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
@_file_or_sample
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
    from .traces import TraceFilter, to_chrome

    trace_file = _load(file, strict=strict)
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
        from .traces import write_trace_file

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
            "OTLP export needs opentelemetry-exporter-otlp-proto-http: "
            "pip install opentelemetry-exporter-otlp-proto-http",
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


# -- replay ------------------------------------------------------------------------


def _step_line(step: Step) -> str:
    return f"#{step.index:<3} +{step.offset_ns / 1e9:8.3f}s  {step.kind:<7} {step.shown()}"


def _shown(text: str) -> str:
    return clipped(visible(text), 400)


def _load_services(
    targets: list[str], options: dict[str, Any] | None = None
) -> Callable[[Any], None]:
    import importlib

    def start(bus: Any) -> None:
        for target in targets:
            module_name, _, attribute = target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise Failure(f"cannot import {module_name!r}: {exc}", ExitStatus.USAGE) from None
            if attribute:
                bus.add_service(getattr(module, attribute)())
            elif hasattr(module, "start"):
                module.start(bus, **(options or {}))
            else:
                raise Failure(
                    f"{module_name!r} has no start(bus): name a class with {module_name}:Class",
                    ExitStatus.USAGE,
                )

    return start


@click.command("replay")
@_file_or_sample
@bus_option
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Recorded gaps are divided by this.")  # fmt: skip
@click.option("--fast", is_flag=True, help="Send each step as soon as the previous is done.")
@click.option("--max-gap", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Replay a longer recorded gap between two steps as this long, with a "
                   "warning [default: 10].")  # fmt: skip
@click.option("--only", multiple=True, metavar="PATTERN",
              help="Replay only events and commands matching (glob; repeatable).")  # fmt: skip
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Never replay events and commands matching (glob; repeatable).")  # fmt: skip
@click.option("--no-settle", is_flag=True,
              help="With --fast: do not wait for an idle bus before each command.")  # fmt: skip
@click.option("--step", "stepping", is_flag=True,
              help="One step at a time: Enter sends, s skips, q stops.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option("--commands", "with_commands", is_flag=True,
              help="Also re-execute read-only commands; report results that differ.")  # fmt: skip
@click.option("--all-commands", is_flag=True,
              help="Re-execute every command, side effects too (implies --commands).")  # fmt: skip
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds a replayed command may take.")  # fmt: skip
@click.option("--to-pytest", "to_pytest", type=click.Path(dir_okay=False), metavar="OUT.py",
              help="Write a pytest regression test of the replay; replay nothing.")  # fmt: skip
@click.option("--services", "service_targets", multiple=True, metavar="TARGET",
              help="With --to-pytest: what the test starts (module or module:Class; "
                   "default sample_services).")  # fmt: skip
@click.option("--start-options", metavar="JSON",
              help="With --to-pytest: keyword arguments for each module's start().")  # fmt: skip
@json_option
@verbose_option
@reports_failures
def replay(
    file: str,
    target: str | None,
    speed: float,
    fast: bool,
    max_gap: float | None,
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    no_settle: bool,
    stepping: bool,
    dry_run: bool,
    with_commands: bool,
    all_commands: bool,
    timeout: float,
    to_pytest: str | None,
    service_targets: tuple[str, ...],
    start_options: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Replay the events (and, with --commands, commands) recorded in FILE onto a bus.

    Steps go in recorded order at the recorded pace (times --speed, or --fast);
    a recorded gap longer than --max-gap (10 s) is replayed as that long.
    Without --bus and with no bus running, an embedded bus with the sample
    services is started. Anything that cannot be replayed is listed at the end.
    Exits 7 when a replayed command's result differs from the recording.
    """
    from .traces import DEFAULT_MAX_GAP, plan_replay

    if all_commands and not with_commands:
        with_commands = True
    gap = DEFAULT_MAX_GAP if max_gap is None else max_gap
    trace_file = _load(file)
    if to_pytest is not None:
        try:
            options = json.loads(start_options) if start_options else {}
        except ValueError as exc:
            raise Failure(f"--start-options is not JSON: {exc}", ExitStatus.USAGE) from None
        if not isinstance(options, dict):
            raise Failure("--start-options must be a JSON object", ExitStatus.USAGE)
        _write_pytest(trace_file, file, to_pytest, list(service_targets) or ["sample_services"],
                      options, only, exclude, with_commands, all_commands)  # fmt: skip
        return
    if dry_run and target is None:
        from .traces._file import no_collection_pauses

        with no_collection_pauses():  # no bus here: nothing else runs meanwhile
            plan = plan_replay(trace_file, only=only, exclude=exclude, commands=with_commands,
                               all_commands=all_commands, max_gap=gap)  # fmt: skip
            _warn_gaps(plan, as_json)
            _print_dry_run(plan, as_json, checked=False)
        return
    from ._embedded import connect_or_embed

    client, bus = connect_or_embed(target)
    try:
        if bus is not None and not as_json:
            click.echo(
                "no bus running: replaying onto an embedded bus with the sample services", err=True
            )
        _replay_onto(client, trace_file, speed, fast and not no_settle, fast, only, exclude,
                     stepping, dry_run, with_commands, all_commands, timeout, as_json,
                     gap)  # fmt: skip
    finally:
        client.close()
        if bus is not None:
            bus.close()


def _warn_gaps(plan: Any, as_json: bool) -> None:
    """Say on stderr which recorded gaps were shortened (``--max-gap``)."""
    warning = plan.gap_warning("--max-gap sets the longest")
    if warning is not None and not as_json:
        click.echo(f"warning: {warning}", err=True)


def _print_dry_run(plan: Any, as_json: bool, *, checked: bool) -> None:
    from .traces import Reason, ReasonCode

    hints = _cli_hints()
    if as_json:
        click.echo(json.dumps({
            "steps": [s.to_json(hints) for s in plan.steps],
            "left_out": [{"name": s.operation, "line": s.line, **r.to_json(hints)}
                         for s, r in plan.left_out],
            "filtered": plan.filtered,
            "max_gap": plan.max_gap,
            "capped_gaps": len(plan.capped),
        }, indent=2))  # fmt: skip
        return
    for step in plan.steps:
        line = _step_line(step)
        if step.problem:
            line += f"   [cannot replay: {step.problem.text(hints)}]"
        click.echo(line)
    for span, reason in plan.left_out:
        click.echo(f"left out: {visible(span.operation)} (line {span.line}): {reason.text(hints)}")
    if plan.filtered:
        click.echo(f"{plan.filtered} {Reason(ReasonCode.FILTERED).text(hints)}")
    if plan.commands and not plan.all_commands and not checked:
        click.echo("(whether each command is read-only is checked against the bus when replaying)")
    click.echo(f"dry run: {len(plan.steps)} step(s), nothing sent", err=True)


def _replay_onto(
    client: Any,
    trace_file: TraceFile,
    speed: float,
    settle: bool,
    fast: bool,
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    stepping: bool,
    dry_run: bool,
    with_commands: bool,
    all_commands: bool,
    timeout: float,
    as_json: bool,
    max_gap: float,
) -> None:
    from .traces import ClientTarget, Replayer, plan_replay

    target = ClientTarget(client)
    known = target.commands() if with_commands else {}
    plan = plan_replay(trace_file, only=only, exclude=exclude, commands=with_commands,
                       all_commands=all_commands, readonly=known.get,
                       max_gap=max_gap)  # fmt: skip
    _warn_gaps(plan, as_json)
    if dry_run:
        _print_dry_run(plan, as_json, checked=True)
        return
    replayer: Replayer

    def before(step: Step) -> bool:
        click.echo(_step_line(step) + "   [Enter: send, s: skip, q: stop] ", nl=False, err=True)
        answer = sys.stdin.readline()
        if not answer or answer.strip().lower() == "q":
            replayer.stop()
            return False
        return answer.strip().lower() != "s"

    def after(step: Step, outcome: Outcome | None) -> None:
        if as_json:
            return
        line = _step_line(step)
        if outcome is not None:
            recorded = step.recorded
            same = recorded is not None and recorded.comparable and recorded.same_as(outcome)
            line += "   = as recorded" if same else f"   -> {_shown(outcome.describe())}"
        click.echo(line)

    replayer = Replayer(plan, target, speed=speed, fast=fast, timeout=timeout, settle=settle,
                        before_step=before if stepping else None, on_step=after)  # fmt: skip
    report = replayer.run()
    if as_json:
        click.echo(json.dumps(report.to_json(_cli_hints()), indent=2))
    else:
        click.echo("")
        click.echo(report.render(_cli_hints()))
    if report.differences:
        raise Failure(
            f"{len(report.differences)} command result(s) differ from the recording",
            ExitStatus.DIFFERS,
        )


def _write_pytest(
    trace_file: TraceFile,
    source: str,
    out: str,
    services: list[str],
    options: dict[str, Any],
    only: tuple[str, ...],
    exclude: tuple[str, ...],
    with_commands: bool,
    all_commands: bool,
) -> None:
    from bus import Bus

    from .traces import plan_replay
    from .traces._pytest import write_pytest

    # Start the services once, untraced, to learn which commands are read-only.
    with Bus(name="to-pytest", tracing=False) as bus:
        _load_services(services, options)(bus)
        known = {c["name"]: bool(c.get("readonly")) for c in bus.inspect()["commands"]}
    plan = plan_replay(trace_file, only=only, exclude=exclude, commands=with_commands,
                       all_commands=all_commands, readonly=known.get)  # fmt: skip
    from .traces import Reason, ReasonCode

    for step in plan.steps:
        if step.kind == "command" and step.name not in known:
            step.problem = Reason(ReasonCode.NO_SUCH_COMMAND)
    per_module = {t: options for t in services if ":" not in t}
    path = write_pytest(plan, out, services=services, source=source, options=per_module)
    sent = sum(1 for s in plan.steps if s.problem is None)
    click.echo(f"wrote {path}: {sent} step(s); run it with pytest {path}", err=True)
