"""``busctl replay FILE``: a recording replayed onto a bus, optionally as a regression check.

    busctl replay traces/sample.jsonl --dry-run
    busctl replay traces/sample.jsonl --commands --fast
    busctl replay traces/sample.jsonl --commands --to-pytest tests/test_recorded.py

Loaded lazily by ``busctl.cli`` (``LAZY_VERBS``); the planning and replaying
live in ``busctl.traces``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .._exit import ExitStatus
from ..render.text import clipped, visible
from .options import Failure, bus_option, json_option, reports_failures, verbose_option
from .trace import file_or_sample, load_trace

if TYPE_CHECKING:
    from ..traces import Outcome, ReasonCode, Step, TraceFile

__all__ = ["replay"]


def _cli_hints() -> dict[ReasonCode, str]:
    """How the command line remedies each reason a step is not replayed."""
    from ..traces import ReasonCode

    return {
        ReasonCode.COMMANDS_OFF: "replay them with --commands",
        ReasonCode.FILTERED: "--only/--exclude",
        ReasonCode.NOT_READONLY: "use --all-commands to re-execute it",
        ReasonCode.SKIPPED: "s at the --step prompt",
    }


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
@file_or_sample
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
    nats: str | None,
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
    from ..traces import DEFAULT_MAX_GAP, plan_replay

    if all_commands and not with_commands:
        with_commands = True
    gap = DEFAULT_MAX_GAP if max_gap is None else max_gap
    trace_file = load_trace(file)
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
    if dry_run and target is None and not nats:
        from ..traces._file import no_collection_pauses

        with no_collection_pauses():  # no bus here: nothing else runs meanwhile
            plan = plan_replay(trace_file, only=only, exclude=exclude, commands=with_commands,
                               all_commands=all_commands, max_gap=gap)  # fmt: skip
            _warn_gaps(plan, as_json)
            _print_dry_run(plan, as_json, checked=False)
        return
    from .._embedded import connect_or_embed

    client, bus = connect_or_embed(target, nats=nats or None)
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
    from ..traces import Reason, ReasonCode

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
    from ..traces import ClientTarget, Replayer, plan_replay

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
            reported=as_json,
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

    from ..traces import plan_replay
    from ..traces._pytest import write_pytest

    # Start the services once, untraced, to learn which commands are read-only.
    with Bus(name="to-pytest", tracing=False, nats="") as bus:  # a look, not a joining
        _load_services(services, options)(bus)
        known = {c["name"]: bool(c.get("readonly")) for c in bus.inspect()["commands"]}
    plan = plan_replay(trace_file, only=only, exclude=exclude, commands=with_commands,
                       all_commands=all_commands, readonly=known.get)  # fmt: skip
    from ..traces import Reason, ReasonCode

    for step in plan.steps:
        if step.kind == "command" and step.name not in known:
            step.problem = Reason(ReasonCode.NO_SUCH_COMMAND)
    per_module = {t: options for t in services if ":" not in t}
    path = write_pytest(plan, out, services=services, source=source, options=per_module)
    sent = sum(1 for s in plan.steps if s.problem is None)
    click.echo(f"wrote {path}: {sent} step(s); run it with pytest {path}", err=True)
