"""The verbs that step into a live bus: hold, held, release, drop, unhold.

    $ busctl hold lights.turn_on --calls --for 5m   # hold 1: lights.turn_on (calls), ends in 5 min
    $ busctl held                                   # what is held: id, kind, name, arguments...
    $ busctl release 1 brightness=40                # let it go, one parameter changed
    $ busctl release 1 --args '["hall", 40]'        # ... or all its arguments replaced
    $ busctl drop 2                                 # the call fails with DroppedByConsoleError
    $ busctl unhold lights.turn_on                  # no more holding; what was held goes on

A hold catches matching command calls and event deliveries where they are
posted to the owner's mailbox; the caller of a held call waits, the firer of
an event never does (``docs/console.md``). Each verb is one request of the
control protocol (``docs/protocol.md``); with ``--json`` it prints the
bus's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from .._args import check_text
from .._exit import ExitStatus
from .._intervene import edit_params, held_id, holds_of, parse_seconds, unhold_params
from ..render.intervene import HELD, HOLDS, hold_text
from ..render.text import visible
from . import _output
from .options import Failure, attached, attached_command

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["drop", "held", "hold", "release", "unhold"]


def seconds_option(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``--for SECONDS``: ``90``, ``90s``, ``10m``, ``1h`` (at most 24h); default 10 minutes."""

    def read(ctx: click.Context, param: click.Parameter, value: str) -> float:
        try:
            return parse_seconds(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(
        "--for",
        "seconds",
        metavar="SECONDS",
        default="10m",
        show_default=True,
        callback=read,
        help=f"How long the {what} lasts (90, 90s, 10m, 1h; at most 24h).",
    )


def _say(text: str) -> None:
    _output.console().print(visible(text), markup=False, highlight=False)


@click.command("hold")
@click.argument("pattern")
@click.option("--calls", "kind", flag_value="call", help="Hold command calls only.")
@click.option("--events", "kind", flag_value="event", help="Hold event deliveries only.")
@click.option("--service", metavar="NAME", help="Only work for this service.")
@seconds_option("hold")
@attached_command
def hold(
    pattern: str,
    kind: str | None,
    service: str | None,
    seconds: float,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Hold command calls and event deliveries whose name matches PATTERN.

    A held call's caller waits for it (as for a slow handler); the firer of
    an event never waits. See them with `busctl held`, then `release`, edit
    or `drop` them. The hold ends after --for, letting go of what it holds.
    """
    params: dict[str, Any] = {"pattern": check_text(pattern), "for": seconds}
    if kind is not None:
        params["kind"] = kind
    if service is not None:
        params["service"] = check_text(service)
    with attached(target, nats) as client:
        result = client.request("hold", params)
    if as_json:
        _output.print_json(result)
        return
    for one in holds_of(result):
        _say(hold_text(one))


@click.command("held")
@attached_command
def held(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """List what is held: id, kind, name, target service, arguments, how long it has waited."""
    with attached(target, nats) as client:
        result = client.request("held")
    if as_json:
        _output.print_json(result)
        return
    if not result.get("holds"):
        _say("no holds are set (busctl hold PATTERN sets one)")
        return
    _output.registry(HOLDS, result)
    _output.console().print()
    if not result.get("held"):
        _say("nothing is held yet")
        return
    _output.registry(HELD, result)


@click.command("release", context_settings={"ignore_unknown_options": True})
@click.argument("item", required=False, metavar="ID")
@click.argument("changes", nargs=-1, type=click.UNPROCESSED, metavar="[NAME=VALUE]...")
@click.option("--all", "everything", is_flag=True, help="Let everything held go, as it was.")
@click.option(
    "--args",
    "args_json",
    metavar="JSON",
    help='New arguments: a JSON array, an object of keywords, or {"args": [...], "kwargs": {...}}.',
)
@attached_command
def release(
    item: str | None,
    changes: tuple[str, ...],
    everything: bool,
    args_json: str | None,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Let held item ID go, as it was or edited (or --all of them).

    NAME=VALUE changes one parameter (a value as for `busctl call`); --args
    replaces all the arguments. Edits are checked by the bus as a call's
    are: what does not fit the signature is refused, and the item stays held.
    """
    params = _which(item, everything, "release")
    if changes or args_json is not None:
        if everything:
            raise Failure("edit one item at a time: give its ID, not --all", ExitStatus.USAGE)
        params.update(edit_params(list(changes), args_json))
    with attached(target, nats) as client:
        result = client.request("release", params)
    if as_json:
        _output.print_json(result)
        return
    released = result.get("released") or []
    edited = " (edited)" if len(params) > 1 else ""
    _say(
        f"released {', '.join(map(str, released))}{edited}"
        if released
        else "nothing was held: nothing released"
    )


@click.command("drop")
@click.argument("item", required=False, metavar="ID")
@click.option("--all", "everything", is_flag=True, help="Drop everything held.")
@attached_command
def drop(
    item: str | None,
    everything: bool,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Drop held item ID: a call fails with DroppedByConsoleError, a delivery is counted dropped."""
    params = _which(item, everything, "drop")
    with attached(target, nats) as client:
        result = client.request("drop", params)
    if as_json:
        _output.print_json(result)
        return
    dropped = result.get("dropped") or []
    _say(f"dropped {', '.join(map(str, dropped))}" if dropped else "nothing was held: none dropped")


@click.command("unhold")
@click.argument("which", metavar="PATTERN|ID")
@attached_command
def unhold(which: str, target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """End a hold (by ID, or every hold on PATTERN); what it held goes on as it was."""
    params = unhold_params(check_text(which))
    with attached(target, nats) as client:
        result = client.request("unhold", params)
    if as_json:
        _output.print_json(result)
        return
    for ended in result.get("holds") or []:
        _say(f"hold {ended.get('id')} on {ended.get('pattern')} ended")
    released = result.get("released") or []
    if released:
        _say(f"released {', '.join(map(str, released))}")


def _which(item: str | None, everything: bool, verb: str) -> dict[str, Any]:
    if everything and item is not None:
        raise Failure(f"give an ID or --all, not both (busctl {verb} --all)", ExitStatus.USAGE)
    if everything:
        return {"all": True}
    if item is None:
        raise Failure(
            f"which item? give its ID (busctl held lists them) or --all: busctl {verb} ID",
            ExitStatus.USAGE,
        )
    return {"id": held_id(item)}
