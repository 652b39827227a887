"""The verbs that show a bus's state: ``list`` and ``status``.

    $ busctl list                      # the running buses
    $ busctl list --nats nats://127.0.0.1:4222      # the buses on that server
    $ busctl status                    # the one running bus
    $ busctl status --nats nats://127.0.0.1:4222 --bus home   # the whole bus, then each process

``busctl.cli`` imports this module only when one of its verbs runs. Every verb
prints a one-line reason on stderr and exits non-zero (``ExitStatus``) when it
fails; ``-v`` adds the remote traceback.
"""

from __future__ import annotations

import time
from typing import Any

import click

from ..render.columns import service_state
from ..render.units import duration
from . import _output
from .options import (
    HINT_RUN,
    attached,
    attached_command,
    json_option,
    nats_option,
    reports_failures,
    verbose_option,
)

__all__ = ["list_buses", "status"]


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
            *_console_line(totals),
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
            *_console_line(totals),
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


def _services_of(snapshot: dict[str, Any], label: str) -> list[str]:
    """The services process ``label`` hosts (its pool left out)."""
    return [
        str(s["name"])
        for s in snapshot.get("services", [])
        if s.get("kind") != "pool"
        and any(i.get("process") == label for i in s.get("instances") or ())
    ]


def _console_line(totals: dict[str, Any]) -> list[tuple[str, str]]:
    """What consoles changed in the bus: live stubs, holds and what they hold (if any)."""
    stubs, holds, held = (totals.get(k) or 0 for k in ("stubs", "holds", "held"))
    if not (stubs or holds or held):
        return []
    plural = "s" if stubs != 1 else ""
    return [
        (
            "intervening",
            f"{stubs} stub{plural}, {holds} hold{'s' if holds != 1 else ''} ({held} held)"
            " (busctl stubs, busctl held)",
        )
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
