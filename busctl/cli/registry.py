"""The verbs that read a bus's registry: services, commands, listeners, ``introspect``...

    $ busctl services --nats nats://127.0.0.1:4222 --bus home   # a bus across processes
    $ busctl commands --json | jq -r '.[].name'
    $ busctl introspect lights.turn_on
    $ busctl who-handles lights.changed

``busctl.cli`` imports this module only when one of its verbs runs. Every verb
prints a one-line reason on stderr and exits non-zero (``ExitStatus``) when it
fails; ``-v`` adds the remote traceback.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._args import check_text
from .._exit import ExitStatus
from .._types import Contract
from ..render.columns import COMMANDS, LISTENERS, SERVICES, across
from ..render.intervene import stub_text
from ..render.text import visible
from ..render.units import duration, latency
from . import _output
from .options import (
    Failure,
    attached,
    attached_command,
)

__all__ = [
    "commands",
    "introspect",
    "listeners",
    "services",
    "who_handles",
]


# -- the registries ---------------------------------------------------------------


def _say_silent(snapshot: dict[str, Any]) -> None:
    """On stderr: the processes of a bus across processes that did not answer."""
    silent = [
        str(p.get("label"))
        for p in snapshot.get("processes") or ()
        if isinstance(p, dict) and p.get("state") == "unreachable"
    ]
    if silent:
        one = len(silent) == 1
        noun, verb, whose = ("process", "does", "it") if one else ("processes", "do", "they")
        _output.console(stderr=True).print(
            visible(
                f"note: {noun} {', '.join(silent)} of bus {snapshot['bus'].get('name')} {verb} "
                f"not answer (stopped, killed, or too busy): what {whose} serve"
                f"{'s' if one else ''} is not listed"
            ),
            markup=False,
            highlight=False,
        )


@click.command("services")
@attached_command
def services(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """List the services of a bus."""
    with attached(target, nats) as client:
        snapshot = client.inspect()
    if as_json:
        _output.print_json(snapshot["services"])
        return
    _output.registry(across(SERVICES, snapshot), snapshot)
    _say_silent(snapshot)


@click.command("commands")
@attached_command
def commands(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """List the commands of a bus."""
    with attached(target, nats) as client:
        snapshot = client.inspect()
    if as_json:
        _output.print_json(snapshot["commands"])
        return
    _output.registry(across(COMMANDS, snapshot), snapshot)
    _say_silent(snapshot)


@click.command("listeners")
@attached_command
def listeners(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """List the listeners of a bus, in delivery order."""
    with attached(target, nats) as client:
        snapshot = client.inspect()
    if as_json:
        _output.print_json(snapshot["listeners"])
        return
    _output.registry(across(LISTENERS, snapshot), snapshot)
    _say_silent(snapshot)


# -- introspect, who-handles --------------------------------------------------------


@click.command("introspect")
@click.argument("name")
@attached_command
def introspect(
    name: str, target: str | None, nats: str | None, as_json: bool, verbose: bool
) -> None:
    """Show a command's signature, types, doc and stats, or an event's payload.

    The types, the choices of an enum or Literal and the defaults are the
    bus's schema of the name (see `busctl schema`).
    """
    from ._contract import read_contracts

    name = check_text(name)
    with attached(target, nats) as client:
        routing = client.who_handles(name)
        snapshot = client.inspect() if routing.get("command") else None
        contracts = read_contracts(client, name)
    entry = routing.get("command")
    event = contracts.event(name)
    if entry is None and (event is not None or routing.get("listeners")):
        _introspect_event(name, event, routing, as_json)
        return
    if entry is None:
        raise _nothing_handles(name, routing, as_command=True)
    threads = _threads_of(entry, snapshot)
    contract = contracts.command(name, entry.get("params"))
    if as_json:
        from ._contract import contract_json

        typed = {"contract": contract_json(contract)} if contract is not None else {}
        _output.print_json({**entry, "threads": threads, **typed})
        return
    _output.fields(
        [
            ("command", entry["name"]),
            ("signature", f"{entry['name']}{entry['signature']}"),
            ("owner", entry["owner"]),
            *_instances(entry),
            ("handler", entry.get("handler")),
            ("threads", ", ".join(threads) or "-"),
            ("readonly", "yes" if entry.get("readonly") else "no"),
            *([("async", _cancellable(entry["async"]))] if "async" in entry else []),
            ("calls", entry.get("calls")),
            ("errors", entry.get("errors")),
            ("in flight", entry.get("in_flight")),
            (
                "latency",
                f"p50 {latency(entry.get('p50_ms'))}, p99 {latency(entry.get('p99_ms'))}",
            ),
            *([("last error", entry["last_error"])] if entry.get("last_error") else []),
            *([("result", contract.result)] if contract is not None else []),
            *([("STUBBED", _stub_line(entry["stub"]))] if entry.get("stub") else []),
        ]
    )
    params = entry.get("params") or []
    if contract is not None:
        from ._contract import print_fields, print_result

        if contract.fields:
            _output.console().print()
            print_fields(contract.fields)
        print_result(contract)
    elif params:  # a bus older than the typed contract: the signature's own words
        _output.console().print()
        _output.table(
            ["PARAMETER", "KIND", "TYPE", "DEFAULT"],
            [
                [
                    p["name"],
                    p.get("kind", ""),
                    p.get("annotation") or "",
                    "(required)" if p.get("required") else _default_text(p.get("default")),
                ]
                for p in params
            ],
        )
    doc = entry.get("doc")
    if doc:
        _output.console().print("\n" + visible(doc, multiline=True), markup=False, highlight=False)


def _introspect_event(
    name: str, event: Contract | None, routing: dict[str, Any], as_json: bool
) -> None:
    """``introspect`` of an event: where its payload contract comes from, and its fields."""
    from ._contract import contract_json, payload_origin, print_fields

    listeners = routing.get("listeners") or []
    if as_json:
        typed = contract_json(event) if event is not None else None
        _output.print_json({"event": name, "contract": typed, "listeners": listeners})
        return
    count = len(listeners)
    _output.fields(
        [
            ("event", name),
            ("payload", payload_origin(event, listeners)),
            ("listeners", f"{count}, in delivery order (see `busctl who-handles {name}`)"),
            *([("other fields", "taken" if event.extra else "refused")] if event else []),
        ]
    )
    if event is None:
        return
    if event.fields:
        _output.console().print()
        print_fields(event.fields, first="FIELD", kinds=False)
    if event.description:
        text = visible(event.description, multiline=True)
        _output.console().print("\n" + text, markup=False, highlight=False)


def _stub_line(stub: dict[str, Any]) -> str:
    calls = stub.get("calls", 0)
    times = f" of {stub['times']}" if stub.get("times") is not None else ""
    return (
        f"{stub_text(stub)} ({calls}{times} calls so far, ends in "
        f"{duration(stub.get('expires_in'))}; `busctl unstub {stub.get('name')}`)"
    )


def _instances(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """An ``instances`` line: the processes serving a command of a bus across processes."""
    instances = entry.get("instances")
    if not isinstance(instances, list):
        return []
    return [("instances", ", ".join(str(i) for i in instances) or "-")]


def _default_text(default: Any) -> str:
    return default if isinstance(default, str) else json.dumps(default)


def _threads_of(entry: dict[str, Any], snapshot: dict[str, Any] | None) -> list[str]:
    if isinstance(entry.get("threads"), list):
        return [str(t.get("name", t)) if isinstance(t, dict) else str(t) for t in entry["threads"]]
    if isinstance(entry.get("thread"), str):
        return [entry["thread"]]
    for service in (snapshot or {}).get("services", []):
        if service["name"] == entry.get("owner"):
            return [t["name"] for t in service.get("threads", [])]
    return []


def _nothing_handles(name: str, routing: dict[str, Any], *, as_command: bool) -> Failure:
    suggestions = routing.get("suggestions") or []
    hint = (
        "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?" if suggestions else ""
    )
    what = "no command or event named" if as_command else "nothing handles"
    kind = "CommandNotFoundError" if as_command else "NotHandled"
    return Failure(f"{what} {name!r}{hint}", ExitStatus.NOT_FOUND, type=kind)


@click.command("who-handles")
@click.argument("name")
@attached_command
def who_handles(
    name: str, target: str | None, nats: str | None, as_json: bool, verbose: bool
) -> None:
    """Show exactly which handlers a command or event name reaches.

    For a command: its owner, thread and signature. For an event: every
    listener whose pattern matches, in delivery order.
    """
    name = check_text(name)
    with attached(target, nats) as client:
        routing = client.who_handles(name)
        entry = routing.get("command")
        snapshot = client.inspect() if entry else None
    found = routing.get("listeners") or []
    if entry is None and not found:
        # With --json, stdout gets the error object (its message has the suggestions).
        raise _nothing_handles(name, routing, as_command=False)
    if as_json:
        if entry:
            routing = {**routing, "command": {**entry, "threads": _threads_of(entry, snapshot)}}
        _output.print_json(routing)
        return
    out = _output.console()
    if entry:
        threads = ", ".join(_threads_of(entry, snapshot)) or "-"
        out.print(f"command {name}", markup=False, highlight=False)
        _output.fields(
            [
                ("  owner", entry["owner"]),
                *[(f"  {k}", v) for k, v in _instances(entry)],
                ("  thread", threads),
                ("  handler", entry.get("handler")),
                ("  signature", f"{name}{entry['signature']}"),
            ]
        )
    else:
        out.print(f"command {name}: none", markup=False, highlight=False)
    if found:
        title = f"event {name}: {len(found)} listener{'s' if len(found) != 1 else ''}"
        out.print(title + ", in delivery order", markup=False, highlight=False)
        across = any("process" in f for f in found)  # a bus across processes: say where
        _output.table(
            ["#", "PATTERN", "OWNER", *(["PROCESS"] if across else []), "HANDLER", "SIGNATURE"],
            [
                [
                    i,
                    f["pattern"],
                    f["owner"],
                    *([f.get("process", "")] if across else []),
                    f.get("handler", ""),
                    f.get("signature", ""),
                ]
                for i, f in enumerate(found, start=1)
            ],
            right=["#"],
        )
    else:
        out.print(f"event {name}: no listeners", markup=False, highlight=False)


def _cancellable(is_async: object) -> str:
    """Whether a running call can be cancelled (``call``'s second Ctrl-C), said plainly."""
    if is_async:
        return "yes (a running call can be cancelled)"
    return "no (a sync handler: once running, a call cannot be interrupted)"
