"""What the REPL prints: results, one-line errors, help, and the quick views.

    out = Console(file=sys.stdout)
    show_result(out, {"room": "hall", "on": True}, colour=True)
    show_error(out, exc, verbose=False, colour=True)
    show_command_help(out, registry.commands["lights.turn_on"], colour=True)

Each function writes to the rich ``Console`` it is given, so tests read the
REPL's output from a ``StringIO``. What the bus sent (results, names, docs,
error messages, tracebacks) is shown with its control characters made
visible (``busctl.render.text.visible``) and never read as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape

from bus.control.protocol import ErrorCode

from .._client import RemoteError
from ..render.columns import TABLES, across, service_state
from ..render.intervene import stub_text
from ..render.printed import json_highlighted, registry_table
from ..render.text import visible, visible_json
from ..render.units import duration, latency
from .complete import Registry

__all__ = [
    "banner",
    "error_line",
    "show_command_help",
    "show_error",
    "show_event_help",
    "show_overview",
    "show_result",
    "show_table",
    "show_verbs",
    "toolbar",
]


def show_result(out: Console, value: Any, *, colour: bool, lossy: bool = False) -> None:
    """A command's result as indented JSON (highlighted on a terminal).

    ``lossy``: the bus marked the parts JSON cannot hold (``$repr``,
    ``$unencodable``), and a note says so.
    """
    # json.dumps escapes C0 controls, not DEL, C1 or bidi overrides.
    text = visible_json(json.dumps(value, indent=2, ensure_ascii=False, default=repr))
    if colour:
        out.print(json_highlighted(text))
    else:
        out.print(text, markup=False, highlight=False)
    if lossy:
        out.print(
            "(not all of it is JSON: $repr and $unencodable mark what the bus could not send)",
            style="dim",
            markup=False,
        )


def error_line(exc: BaseException) -> str:
    """One line saying what went wrong, with the remote type, and how to go on."""
    if not isinstance(exc, RemoteError):
        return f"{type(exc).__name__}: {exc}"
    data = exc.data
    text = str(exc)
    # The bus's own message may already hold the hint: never say it twice.
    if exc.code == ErrorCode.NO_SUCH_COMMAND:
        suggestions = data.get("suggestions") or []
        if suggestions and "did you mean" not in text:
            text += f"; did you mean {', '.join(map(str, suggestions[:5]))}?"
    elif exc.code == ErrorCode.BAD_ARGUMENTS and data.get("signature"):
        if str(data["signature"]) not in text:
            text += f"; the signature is {data['signature']}"
    elif exc.code == ErrorCode.INVALID_ARGUMENT:
        # It names the command, the parameter, the type and the value: all there is.
        text = exc.message
    elif exc.code == ErrorCode.TIMED_OUT:
        limit = data.get("timeout")
        text = f"Timeout: no result within {limit} s; the command may still finish on the bus"
    elif exc.type is None:
        text = f"{text} (error {exc.code})"
    return text


def show_error(
    out: Console, exc: BaseException, *, verbose: bool, colour: bool, hint: str | None = None
) -> None:
    """``error: TYPE: message``, then the remote traceback when ``verbose``.

    ``hint`` (how to fix it, say) ends the line.
    """
    line = visible(error_line(exc) + (f"; {hint}" if hint else ""))
    if colour:
        out.print(f"[bold red]error:[/] {escape(line)}", highlight=False)
    else:
        out.print(f"error: {line}", markup=False, highlight=False)
    trace = exc.remote_traceback if isinstance(exc, RemoteError) else None
    if verbose and trace:
        shown = visible(trace.rstrip(), multiline=True)
        out.print(shown, style="dim" if colour else None, markup=False, highlight=False)
    elif trace:
        out.print("(`verbose on` or `traceback` shows the remote traceback)", style="dim")


def show_verbs(out: Console, verbs: Mapping[str, str]) -> None:
    """``help`` alone: the two call forms and the REPL's own verbs."""
    out.print("Call a command:  NAME ARG... key=value   or   NAME(ARG, key=value)", markup=False)
    out.print(
        "  arguments are JSON or Python literals (bare words are strings); never evaluated",
        markup=False,
    )
    out.print("Verbs:", markup=False)
    width = max(len(v) for v in verbs)
    for verb, text in verbs.items():
        out.print(f"  {verb:<{width}}  {text}", markup=False, highlight=False)
    out.print(
        "Tab completes names and key=; Ctrl-C during a call asks whether to cancel it; "
        "Ctrl-D exits.",
        markup=False,
    )


def show_command_help(out: Console, entry: Mapping[str, Any], *, colour: bool) -> None:
    """``help NAME`` for a command: signature, docstring, readonly, owner and stats."""
    name = visible(entry.get("name"))
    signature = visible(entry.get("signature", "()"))
    if colour:
        out.print(f"[bold]{escape(name)}[/]{escape(signature)}", highlight=True)
    else:
        out.print(f"{name}{signature}", markup=False, highlight=False)
    doc = visible(entry.get("doc") or "(no docstring)", multiline=True)
    for line in doc.strip().splitlines():
        out.print(f"    {line}", markup=False, highlight=False)
    readonly = "yes" if entry.get("readonly") else "no"
    _fields(
        out,
        [
            ("service", f"{entry.get('owner')} ({entry.get('handler')})"),
            ("readonly", readonly),
            *(
                [("async", "yes (cancellable)" if entry["async"] else "no (cannot be interrupted)")]
                if "async" in entry
                else []
            ),
            (
                "calls",
                f"{entry.get('calls', 0)}, {entry.get('errors', 0)} failed, "
                f"{entry.get('in_flight', 0)} in flight",
            ),
            (
                "latency",
                f"p50 {latency(entry.get('p50_ms'))}, p99 {latency(entry.get('p99_ms'))}",
            ),
            ("last error", entry.get("last_error") or "-"),
            *([("STUBBED", _stub_note(entry["stub"]))] if entry.get("stub") else []),
        ],
    )


def _stub_note(stub: Mapping[str, Any]) -> str:
    return (
        f"{stub_text(stub)}, {stub.get('calls', 0)} calls so far, ends in "
        f"{duration(stub.get('expires_in'))} (unstub {stub.get('name')})"
    )


def show_event_help(out: Console, name: str, routing: Mapping[str, Any]) -> None:
    """``help NAME`` for an event: the listeners it reaches, in delivery order."""
    listeners = list(routing.get("listeners") or [])
    out.print(f"event {visible(name)} reaches {len(listeners)} listener(s):", markup=False)
    for listener in listeners:
        out.print(
            visible(
                f"  {listener.get('order', '?')}. {listener.get('owner')}: "
                f"{listener.get('handler')}{listener.get('signature', '')}  "
                f"[{listener.get('pattern')}]"
            ),
            markup=False,
            highlight=False,
        )
        doc = str(listener.get("doc") or "").strip()
        if doc:
            out.print(f"       {visible(doc.splitlines()[0])}", markup=False, highlight=False)


def show_overview(out: Console, snapshot: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """``inspect``: the bus at a glance."""
    bus = snapshot.get("bus", {})
    totals = snapshot.get("totals", {})
    tracing = snapshot.get("tracing", {})
    _fields(
        out,
        [
            ("bus", f"{bus.get('name')} (pid {bus.get('pid')}, {bus.get('state')})"),
            ("address", info.get("address", "-")),
            ("uptime", duration(bus.get("uptime"))),
            (
                "registry",
                f"{totals.get('services', 0)} services, {totals.get('commands', 0)} commands, "
                f"{totals.get('listeners', 0)} listeners",
            ),
            (
                "handled",
                f"{totals.get('handled', 0)} ({totals.get('failed', 0)} failed, "
                f"{totals.get('rejected', 0)} rejected, {totals.get('dropped', 0)} dropped)",
            ),
            ("late replies", totals.get("late_replies", 0)),
            ("hung", totals.get("hung", 0)),
            *[
                ("failed", f"{s.get('name')} {service_state(dict(s), clip=False)}")
                for s in snapshot.get("services", [])
                if s.get("state") == "failed"
            ],
            ("spans", ", ".join(f"{k} {v}" for k, v in tracing.items()) or "-"),
        ],
    )


def show_table(out: Console, what: str, snapshot: Mapping[str, Any], *, colour: bool) -> None:
    """``services``, ``commands`` or ``listeners``: the same table ``busctl`` prints."""
    out.print(registry_table(across(TABLES[what], snapshot), snapshot, colour=colour))


def _fields(out: Console, pairs: Iterable[tuple[str, Any]]) -> None:
    items = [(k, "" if v is None else visible(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        out.print(f"  {key + ':':<{width + 1}} {value}", markup=False, highlight=False)


def banner(
    name: str,
    snapshot: Mapping[str, Any],
    info: Mapping[str, Any],
    address: object,
    embedded: bool,
) -> str:
    """What the REPL says first: which bus, and whether it started it."""
    totals = snapshot.get("totals", {})
    counts = (
        f"{totals.get('services', 0)} services, {totals.get('commands', 0)} commands, "
        f"{totals.get('listeners', 0)} listeners"
    )
    # {name!r}: repr shows a non-printing character as its escape already.
    if embedded:
        first = (
            f"No bus is running, so this REPL started an embedded bus {name!r} with the sample "
            f"services ({counts}); it ends when you leave. "
            "Start one with `busctl run` to attach to it instead."
        )
    elif isinstance(info.get("processes"), list):  # a bus across processes, over NATS
        count = len(info["processes"])
        first = (
            f"Attached to bus {name!r} ({count} process{'es' if count != 1 else ''}, "
            f"{visible(address)}): {counts}."
        )
    else:
        first = (
            f"Attached to bus {name!r} (pid {visible(info.get('pid', '?'))}, "
            f"{visible(address)}): {counts}."
        )
    return first + "\nType help for the verbs, ?NAME for a command; Tab completes; Ctrl-D exits."


def toolbar(text: str, registry: Registry, name: str) -> str:
    """The bottom line: the signature and doc of the command being typed, else the keys."""
    words = text.replace("(", " ").split()
    word = words[0] if words else ""
    if word in {"call", "help", "?"}:
        word = words[1] if len(words) > 1 else ""
    entry = registry.commands.get(word.lstrip("?"))
    if entry is not None:
        doc = str(entry.get("doc") or "").strip().splitlines()
        first = f"  {doc[0]}" if doc else ""
        stubbed = f"  [STUBBED: {stub_text(entry['stub'])}]" if entry.get("stub") else ""
        return visible(f" {entry['name']}{entry.get('signature', '')}{stubbed}{first}")
    return f" bus {visible(name)}  ·  help  ·  Tab completes  ·  Ctrl-D exits"
