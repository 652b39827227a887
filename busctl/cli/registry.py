"""The verbs that read a bus: ``list``, ``status``, the registries, ``introspect``...

    $ busctl list                      # the running buses
    $ busctl list --nats nats://127.0.0.1:4222      # the buses on that server
    $ busctl services --nats nats://127.0.0.1:4222 --bus home   # a bus across processes
    $ busctl status                    # the one running bus
    $ busctl commands --json | jq -r '.[].name'
    $ busctl introspect lights.turn_on
    $ busctl who-handles lights.changed

``busctl.cli`` imports this module only when one of its verbs runs. Every verb
prints a one-line reason on stderr and exits non-zero (``ExitStatus``) when it
fails; ``-v`` adds the remote traceback.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from .._args import check_text
from .._exit import ExitStatus
from ..render.columns import COMMANDS, LISTENERS, SERVICES, across, service_state
from ..render.text import visible
from ..render.units import duration, latency
from . import _output
from .options import (
    HINT_RUN,
    Failure,
    attached,
    attached_command,
    json_option,
    nats_option,
    reports_failures,
    verbose_option,
)

__all__ = [
    "commands",
    "introspect",
    "list_buses",
    "listeners",
    "services",
    "status",
    "who_handles",
]


# -- list, status, the registries -------------------------------------------------


@click.command("list")
@nats_option
@json_option
@verbose_option
@reports_failures
def list_buses(nats: str | None, as_json: bool, verbose: bool) -> None:
    """List the running buses that can be attached.

    With --nats, the buses on that NATS server (it listens a second for them).
    """
    if nats:
        _list_on_nats(nats, as_json)
        return
    from bus.control import discover, socket_dir

    buses = sorted(discover(), key=lambda b: str(b.get("name", "")))
    if as_json:
        _output.print_json(buses)
        return
    if not buses:
        _output.console(stderr=True).print(
            f"no bus running in {socket_dir()}; {HINT_RUN}", markup=False
        )
        return
    now = time.time()
    rows = [
        [
            b.get("name"),
            b.get("pid", "-"),
            duration(now - float(b["started_at"])) if b.get("started_at") else "-",
            b.get("version", "-"),
            b.get("address", ""),
        ]
        for b in buses
    ]
    _output.table(["NAME", "PID", "UPTIME", "VERSION", "ADDRESS"], rows, right=["PID"])
    for b in buses:  # up, but full: listed, and said why it cannot be attached now
        if b.get("refusing"):
            _output.console(stderr=True).print(str(b["refusing"]), markup=False)


def _list_on_nats(url: str, as_json: bool) -> None:
    from .._nats import buses_on

    buses = buses_on(url)
    if as_json:
        _output.print_json(buses)
        return
    if not buses:
        _output.console(stderr=True).print(
            f"no bus on {url}; start one with `busctl run --nats {url} --name NAME`",
            markup=False,
        )
        return
    rows = [
        [
            b["name"],
            len(b["processes"]),
            b.get("version") or "-",
            ", ".join(
                sorted(str(p.get("label", "?")) for p in b["processes"] if isinstance(p, dict))
            ),
        ]
        for b in buses
    ]
    _output.table(["NAME", "PROCESSES", "VERSION", "LABELS"], rows, right=["PROCESSES"])


@click.command("status")
@attached_command
def status(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """Show one bus: name, pid, uptime, counts, totals."""
    with attached(target, nats) as client:
        snapshot = client.inspect()
    if isinstance(snapshot.get("processes"), list):
        _status_across(snapshot, client.address, as_json)
        return
    bus, totals, tracing = snapshot["bus"], snapshot["totals"], snapshot.get("tracing", {})
    if as_json:
        failed = [
            {"name": s["name"], "error": s.get("error")}
            for s in snapshot.get("services", [])
            if s.get("state") == "failed"
        ]
        _output.print_json(
            {
                "bus": bus,
                "address": str(client.address),
                "totals": totals,
                "failed_services": failed,
                "tracing": tracing,
            }
        )
        return
    _output.fields(
        [
            ("bus", bus["name"]),
            ("address", client.address),
            ("pid", bus["pid"]),
            ("state", bus.get("state")),
            ("uptime", duration(bus.get("uptime"))),
            (
                "registry",
                f"{totals['services']} services, {totals['commands']} commands, "
                f"{totals['listeners']} listeners",
            ),
            (
                "work",
                f"{totals['handled']} handled, {totals['failed']} failed, "
                f"{totals['rejected']} rejected, {totals['dropped']} dropped, "
                f"{totals['late_replies']} late replies",
            ),
            ("hung threads", totals["hung"]),
            *_failed_services(snapshot.get("services", [])),
            *_spans_lost(tracing),
            ("tracing", _tracing_text(tracing)),
        ]
    )


def _status_across(snapshot: dict[str, Any], address: object, as_json: bool) -> None:
    """``status`` of a bus across processes: the whole, then each process."""
    bus, totals = snapshot["bus"], snapshot["totals"]
    processes = sorted(snapshot["processes"], key=lambda p: str(p.get("label")))
    if as_json:
        failed = [
            {"name": s["name"], "error": s.get("error")}
            for s in snapshot.get("services", [])
            if s.get("state") == "failed"
        ]
        _output.print_json(
            {
                "bus": bus,
                "address": str(address),
                "processes": processes,
                "totals": totals,
                "failed_services": failed,
            }
        )
        return
    labels = ", ".join(str(p.get("label")) for p in processes)
    _output.fields(
        [
            ("bus", bus["name"]),
            ("address", address),
            ("processes", f"{len(processes)} ({labels})"),
            (
                "registry",
                f"{totals.get('services', 0)} services, {totals.get('commands', 0)} commands, "
                f"{totals.get('listeners', 0)} listeners",
            ),
            (
                "work",
                f"{totals.get('handled', 0)} handled, {totals.get('failed', 0)} failed, "
                f"{totals.get('rejected', 0)} rejected, {totals.get('dropped', 0)} dropped, "
                f"{totals.get('late_replies', 0)} late replies",
            ),
            ("hung threads", totals.get("hung", 0)),
            *_failed_services(snapshot.get("services", [])),
        ]
    )
    _output.console().print()
    _output.table(
        ["PROCESS", "PID", "STATE", "UPTIME", "SERVICES", "HANDLED", "FAILED"],
        [
            [
                p.get("label"),
                p.get("pid") or "-",
                p.get("state") or "-",
                duration(p.get("uptime")) if p.get("uptime") is not None else "-",
                ", ".join(_services_of(snapshot, str(p.get("label")))) or "-",
                (p.get("totals") or {}).get("handled", "-"),
                (p.get("totals") or {}).get("failed", "-"),
            ]
            for p in processes
        ],
        right=["PID", "HANDLED", "FAILED"],
    )


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


def _services_of(snapshot: dict[str, Any], label: str) -> list[str]:
    """The services process ``label`` hosts (its pool left out)."""
    return [
        str(s["name"])
        for s in snapshot.get("services", [])
        if s.get("kind") != "pool"
        and any(i.get("process") == label for i in s.get("instances") or ())
    ]


def _spans_lost(tracing: dict[str, Any]) -> list[tuple[str, str]]:
    """A ``spans lost`` line when the bus has dropped spans, saying how not to."""
    dropped = tracing.get("dropped")
    if not isinstance(dropped, int) or isinstance(dropped, bool) or dropped <= 0:
        return []
    if tracing.get("overflow") == "wait":
        why = "each waited its limit for room in the full trace buffer"
    else:
        why = (
            "the trace buffer was full; `busctl capture --lossless`, `busctl run "
            "--trace-lossless` or Bus(trace_overflow='wait') keep every span"
        )
    return [("spans lost", f"{dropped} dropped ({why})")]


def _failed_services(services: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A ``failed`` line naming each failed service and its error, if any failed."""
    failed = [s for s in services if s.get("state") == "failed"]
    if not failed:
        return []
    text = ", ".join(f"{s['name']} {service_state(s, clip=False)}" for s in failed)
    return [("failed", text)]


def _tracing_text(tracing: dict[str, Any]) -> str:
    if not tracing.get("enabled"):
        return "off"
    counts = [
        f"{tracing[key]} {label}"
        for key, label in (
            ("exported", "spans exported"),
            ("dropped", "dropped"),
            ("failed", "failed"),
            ("buffered", "buffered"),
        )
        if isinstance(tracing.get(key), int)
    ]
    if isinstance(tracing.get("ring"), int):
        counts.append(f"ring of {tracing['ring']}")
    holds = tracing.get("lossless_holds")
    if tracing.get("overflow") == "wait":
        counts.append("lossless")
    elif isinstance(holds, int) and holds > 0:
        counts.append(f"lossless while {holds} capture{'s' if holds != 1 else ''} run")
    return "on" + (f" ({', '.join(counts)})" if counts else "")


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
    """Show a command's signature, doc and stats."""
    name = check_text(name)
    with attached(target, nats) as client:
        routing = client.who_handles(name)
        snapshot = client.inspect() if routing.get("command") else None
    entry = routing.get("command")
    if entry is None:
        raise _nothing_handles(name, routing, as_command=True)
    threads = _threads_of(entry, snapshot)
    if as_json:
        _output.print_json({**entry, "threads": threads})
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
            ("calls", entry.get("calls")),
            ("errors", entry.get("errors")),
            ("in flight", entry.get("in_flight")),
            (
                "latency",
                f"p50 {latency(entry.get('p50_ms'))}, p99 {latency(entry.get('p99_ms'))}",
            ),
            *([("last error", entry["last_error"])] if entry.get("last_error") else []),
        ]
    )
    params = entry.get("params") or []
    if params:
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
    count = len(routing.get("listeners") or [])
    if as_command and count:
        return Failure(
            f"{name!r} is not a command; {count} listener{'s' if count != 1 else ''} "
            f"match it as an event (see `busctl who-handles {name}`)",
            ExitStatus.NOT_FOUND,
        )
    what = "no command named" if as_command else "nothing handles"
    return Failure(f"{what} {name!r}{hint}", ExitStatus.NOT_FOUND)


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
    if as_json:
        if entry:
            routing = {**routing, "command": {**entry, "threads": _threads_of(entry, snapshot)}}
        _output.print_json(routing)
    if entry is None and not found:
        raise _nothing_handles(name, routing, as_command=False)
    if as_json:
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
