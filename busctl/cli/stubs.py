"""The verbs that stand in for a command in a live bus: stub, unstub, stubs.

    $ busctl stub thermostat.read_sensor --raises 'TimeoutError: no answer' --times 3
    $ busctl stub lights.get --returns '{"room": "hall", "on": true, "brightness": 10}'
    $ busctl stubs                       # what stands in, for what, how many calls
    $ busctl unstub thermostat.read_sensor

A stub runs on the command's own thread, keeps its signature, and ends
after --for (10 minutes by default), after --times calls, or at `unstub`.
Every face marks a stubbed command, and its spans carry
``bus.stubbed=true``.
"""

from __future__ import annotations

from typing import Any

import click

from .._args import check_text, parse_value
from .._exit import ExitStatus
from ..render.intervene import STUBS, stub_text
from ..render.text import visible
from ..render.units import duration
from . import _output
from .intervene import seconds_option
from .options import Failure, attached, attached_command

__all__ = ["stub", "stubs", "unstub"]


def _say(text: str) -> None:
    _output.console().print(visible(text), markup=False, highlight=False)


@click.command("stub")
@click.argument("name")
@click.option("--returns", "returns", metavar="JSON", help="What each call returns.")
@click.option("--raises", "raises", metavar="'TYPE: MESSAGE'", help="What each call raises.")
@seconds_option("stub")
@click.option("--times", type=click.IntRange(min=1), help="Answer this many calls, then stop.")
@attached_command
def stub(
    name: str,
    returns: str | None,
    raises: str | None,
    seconds: float,
    times: int | None,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Replace command NAME's handler in the running bus, for a while.

    --returns is JSON (or a Python literal); --raises is 'Type: message',
    a builtin exception type (ValueError, TimeoutError...), else a
    RuntimeError that names the type. The stub runs on the command's own
    thread and keeps its signature; `busctl unstub NAME` ends it.
    """
    if (returns is None) == (raises is None):
        raise Failure(
            "give --returns JSON or --raises 'Type: message' (one of them)", ExitStatus.USAGE
        )
    params: dict[str, Any] = {"name": check_text(name), "for": seconds}
    if raises is not None:
        params["raises"] = check_text(raises)
    else:
        assert returns is not None
        params["returns"] = parse_value(returns)
    if times is not None:
        params["times"] = times
    with attached(target, nats) as client:
        result = client.request("stub", params)
    if as_json:
        _output.print_json(result)
        return
    for made in result.get("stubs") or [result]:
        where = f" in {made['process']}" if made.get("process") else ""
        limit = f", for {made['times']} calls" if made.get("times") else ""
        _say(
            f"stubbed {made.get('name')} on {made.get('service')}{where}: {stub_text(made)}"
            f"{limit}, ends in {duration(made.get('expires_in'))}"
        )


@click.command("unstub")
@click.argument("name")
@attached_command
def unstub(name: str, target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """Put command NAME's real handler back."""
    with attached(target, nats) as client:
        result = client.request("unstub", {"name": check_text(name)})
    if as_json:
        _output.print_json(result)
        return
    for ended in result.get("stubs") or [result]:
        calls = ended.get("calls", 0)
        _say(
            f"unstubbed {ended.get('name')}: the real handler is back "
            f"(the stub answered {calls} call{'s' if calls != 1 else ''})"
        )


@click.command("stubs")
@attached_command
def stubs(target: str | None, nats: str | None, as_json: bool, verbose: bool) -> None:
    """List the live stubs: command, what it does instead, calls, when it ends."""
    with attached(target, nats) as client:
        result = client.request("stubs")
    if as_json:
        _output.print_json(result.get("stubs", []))
        return
    if not result.get("stubs"):
        _say("no command is stubbed")
        return
    _output.registry(STUBS, result)
