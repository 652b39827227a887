"""``busctl monitor`` and ``busctl capture``: the verbs that watch until stopped.

    $ busctl monitor 'lights.*'              # one line per command or event step
    $ busctl monitor --json -n 100 > activity.jsonl
    $ busctl capture -o traces/evening.jsonl --duration 30

Both subscribe on the control connection; the bus never waits for them (it
drops what a slow reader cannot take, and says how many).
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from .._args import check_text
from .._client import Client
from .._exit import ExitStatus
from .._remote import ConnectionLost, RemoteError
from ..render import units
from ..render.activity import activity_line, activity_matches, activity_view
from ..render.printed import activity_markup
from ..render.text import visible
from . import _output
from .options import (
    Failure,
    attached,
    attached_command,
    bus_option,
    reports_failures,
    verbose_option,
)

__all__ = ["capture", "json_activity", "monitor"]

# Activity fields the bus sends as bounded JSON text; ``monitor --json`` decodes them.
_JSON_TEXT_FIELDS = ("args", "kwargs", "result")


def json_activity(activity: dict[str, Any]) -> dict[str, Any]:
    """An activity record with its arguments and result as JSON values, not text.

    The bus sends them as bounded JSON text, so a script would have to parse
    JSON inside JSON. Text cut at the bound is no longer JSON: it becomes
    ``{"$truncated": TEXT}``, in the way the bus marks a value it could not
    encode (``{"$repr": ...}``).
    """
    record = dict(activity)
    for field in _JSON_TEXT_FIELDS:
        text = record.get(field)
        if not isinstance(text, str):
            continue
        try:
            record[field] = json.loads(text)
        except (ValueError, RecursionError):
            record[field] = {"$truncated": text}
    return record


@contextlib.contextmanager
def _until_stopped() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, for the verbs that run until stopped."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drain(
    client: Client,
    notes: queue.Queue[tuple[str, dict[str, Any]]],
    stop: threading.Event,
    deadline: float | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Notifications until stopped, the deadline, or the bus going away."""
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            return
        try:
            yield notes.get(timeout=0.1)
        except queue.Empty:
            if client.closed:
                raise Failure(
                    f"bus {client.name} went away ({client.error or 'connection closed'})",
                    ExitStatus.NO_BUS,
                ) from None


@click.command("monitor")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option("-n", "--count", type=click.IntRange(min=1), help="Stop after this many lines.")
@click.option("--errors", is_flag=True, help="Only the steps that failed.")
@click.option("--service", metavar="NAME", help="Only what this service handles or sends.")
@click.option(
    "--kind",
    type=click.Choice(["call", "event"]),
    help="Only commands (calls and returns), or only events (and their deliveries).",
)
@click.option("--trace", "trace_id", metavar="ID", help="Only this trace (its short id will do).")
@attached_command
def monitor(
    patterns: tuple[str, ...],
    count: int | None,
    errors: bool,
    service: str | None,
    kind: str | None,
    trace_id: str | None,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Show live traffic, one line per command or event, until Ctrl-C.

    PATTERNs are names or globs (`lights.*`); default all. Each line shows
    the first six digits of its trace id, which --trace takes. --json writes
    one activity record per line, its args, kwargs and result as JSON values.
    With --nats, each line starts with the process it happened in (--json:
    its "process").
    """
    patterns = tuple(check_text(pattern) for pattern in patterns)
    notes: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    out = _output.console()
    colour = out.is_terminal and not out.no_color
    shown = 0
    # Attached first: Ctrl-C while connecting is an interruption (exit 130);
    # once watching, it is how the watch ends (exit 0).
    with attached(target, nats) as client, _until_stopped() as stop:
        subscription = client.subscribe(
            "activity", lambda m, p: notes.put((m, p)), patterns or ("*",)
        )
        if not as_json:
            watched = " ".join(patterns) or "everything"
            _output.console(stderr=True).print(
                visible(f"monitoring {watched} on bus {client.name}; Ctrl-C to stop"),
                markup=False,
                highlight=False,
            )
        for method, params in _drain(client, notes, stop, None):
            if method == "dropped":
                _output.console(stderr=True).print(
                    f"... {params.get('count')} notifications dropped (reading too slowly)",
                    markup=False,
                )
                continue
            activity = params.get("activity")
            if not isinstance(activity, dict):
                continue
            if not activity_matches(
                activity, errors=errors, service=service, kind=kind, trace=trace_id
            ):
                continue
            # Over NATS each notification says which process it came from.
            process = params.get("process")
            if as_json:
                record = json_activity(activity)
                if isinstance(process, str):
                    record["process"] = process
                sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
                sys.stdout.flush()
            else:
                view = activity_view(
                    {**activity, "process": process} if isinstance(process, str) else activity
                )
                line = (
                    activity_markup(view, process=process, trace=True)
                    if colour
                    else activity_line(view, process=process, trace=True)
                )
                out.print(line, markup=colour, highlight=False, soft_wrap=True)
            shown += 1
            if count is not None and shown >= count:
                break
        subscription.close()
        if stop.is_set():  # Ctrl-C: say so on a line of its own, after the ^C
            err = _output.console(stderr=True)
            lead = "\n" if err.is_terminal else ""
            err.print(f"{lead}monitor stopped ({shown} shown)", markup=False, highlight=False)


@click.command("capture")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="The trace file to write (OTLP JSON lines); - for stdout.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: at Ctrl-C).",
)
@click.option(
    "--lossless",
    is_flag=True,
    help="Keep every span: the bus waits for room instead of dropping, "
    "so a busy bus slows to the capture's pace while it runs.",
)
@bus_option
@verbose_option
@reports_failures
def capture(
    patterns: tuple[str, ...],
    output: Path,
    duration: float | None,
    lossless: bool,
    target: str | None,
    nats: str | None,
    verbose: bool,
) -> None:
    """Record traffic to a trace file, until Ctrl-C or --duration.

    Writes one OTLP TracesData JSON object per line (the OpenTelemetry file
    exporter's format), readable by `busctl trace` and by OTel tools.
    PATTERNs keep only spans of matching command or event names. Spans the
    bus had to drop while capturing are counted in the closing line; with
    --lossless it waits instead, and none are.
    """
    patterns = tuple(check_text(pattern) for pattern in patterns)
    notes: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    spans = 0
    traces: set[str] = set()
    dropped = 0
    to_stdout = str(output) == "-"
    report = _output.console(stderr=True)
    with contextlib.ExitStack() as stack:
        # Attached before the file is made: no bus, no empty file; and Ctrl-C
        # while connecting is an interruption, not the end of a capture.
        client = stack.enter_context(attached(target, nats))
        if to_stdout:
            sink = sys.stdout
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(output.open("w", encoding="utf-8"))
        stop = stack.enter_context(_until_stopped())
        bus_dropped = _bus_dropped(client)
        subscription = client.subscribe(
            "spans", lambda m, p: notes.put((m, p)), patterns or ("*",), lossless=lossless
        )
        until = f"for {units.duration(duration)}" if duration else "until Ctrl-C"
        how = ", lossless" if lossless else ""
        report.print(
            visible(f"capturing spans of bus {client.name} to {output} {until}{how}"),
            markup=False,
            highlight=False,
        )
        deadline = None if duration is None else time.monotonic() + duration

        def write(params: dict[str, Any]) -> None:
            nonlocal spans
            data = params.get("data")
            if not isinstance(data, dict):
                return
            sink.write(json.dumps(data, separators=(",", ":")) + "\n")
            sink.flush()
            for span in _spans_of(data):
                spans += 1
                traces.add(str(span.get("traceId", "")))

        try:
            for method, params in _drain(client, notes, stop, deadline):
                if method == "dropped":
                    dropped = int(params.get("total", dropped + int(params.get("count", 0))))
                elif method == "spans":
                    write(params)
        finally:
            dropped = max(dropped, subscription.close())
            while not notes.empty():  # what arrived before the unsubscribe reply
                method, params = notes.get_nowait()
                if method == "spans":
                    write(params)
            lost = f", {dropped} dropped (the bus could not send them in time)" if dropped else ""
            report.print(
                f"captured {spans} span{'s' if spans != 1 else ''} in {len(traces)} "
                f"trace{'s' if len(traces) != 1 else ''} to {output}{lost}",
                markup=False,
                highlight=False,
            )
            unrecorded = _bus_dropped(client) - bus_dropped if bus_dropped >= 0 else 0
            if unrecorded > 0:
                # Dropped before they reached the capture, on every pattern:
                # the count is the bus's, not this capture's.
                hint = "" if lossless else "; --lossless makes it wait instead"
                report.print(
                    f"warning: the bus dropped {unrecorded} span"
                    f"{'s' if unrecorded != 1 else ''} meanwhile, its trace buffer full{hint}",
                    style="bold yellow",
                    markup=False,
                    highlight=False,
                )


def _bus_dropped(client: Client) -> int:
    """How many spans the bus has dropped in all (its trace buffer full); -1 if unknown."""
    try:
        tracing = client.request("inspect", timeout=10.0).get("tracing", {})
        return int(tracing.get("dropped", 0))
    except (RemoteError, ConnectionLost, TimeoutError, AttributeError, TypeError, ValueError):
        return -1


def _spans_of(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            yield from scope.get("spans", [])
