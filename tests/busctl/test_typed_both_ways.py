"""A bus in this process behaves as one attached over its socket: the same calls, the same outcomes.

The console reaches a bus two ways: through the control endpoint (``Client``:
``ClientSource`` for the TUI, ``ClientTarget`` for replay) or directly when it
is in this process (``LocalSource``, ``BusTarget``). Both convert arguments
to the handlers' types and write typed results as JSON with the same rules
(``bus.schema``), so each call below gives the same result, or the same
error and message, both ways: a typed result (a dataclass with an enum and a
datetime, a ``TypedDict``), a bad value of every kind, a declared event's
bad payload, and the TUI's ``check`` of a form.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from bus import Bus
from bus.control.protocol import ErrorCode
from busctl._client import Client, RemoteError
from busctl.traces import BusTarget, ClientTarget, Outcome
from busctl.tui._format import describe_error
from busctl.tui._local_source import LocalSource
from busctl.tui._source import ClientSource
from busctl.tui._spans import pretty
from tests.busctl.counted_services import Counted
from tests.busctl.served_buses import counted_bus

pytestmark = pytest.mark.timeout(60)

WAYS = ["attached", "in-process"]

# (kind, name, args, kwargs): each is sent both ways.
CALLS: list[tuple[str, str, list[Any], dict[str, Any]]] = [
    ("command", "counted.set_mode", ["hall", "away"], {"level": "3"}),  # "3" converts
    ("command", "counted.set_mode", ["hall", "warm"], {}),
    ("command", "counted.set_mode", ["hall"], {"mode": "off", "level": 1.5}),
    ("command", "counted.size", ["xl"], {}),
    ("command", "counted.size", ["m"], {"note": None}),
    ("command", "lights.turn_on", ["hall"], {"brightness": "40"}),
    ("command", "lights.turn_on", ["hall"], {"brightness": "bright"}),
    ("command", "say_hello", [42], {}),
    ("command", "thermostat.get", ["office"], {}),
    ("command", "counted.set_mode", ["hall"], {}),  # does not bind: mode is missing
    ("command", "counted.sizes", ["m"], {}),  # no such command
    ("event", "counted.changed", [], {"zone": "hall", "level": "loud"}),
    ("event", "counted.changed", [], {"zone": "hall", "level": 2, "mode": "away"}),
    ("event", "lights.changed", [], {"room": "hall", "on": "maybe", "brightness": 1}),
]


@pytest.fixture(scope="module")
def served() -> Iterator[Bus]:
    with counted_bus("both", samples=True, releaser=False) as (bus, _):
        yield bus


@pytest.fixture(scope="module")
def client(served: Bus) -> Iterator[Client]:
    with Client.connect(str(served.address)) as attached:
        yield attached


def _text(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(renderable)
    return out.getvalue()


def through_source(way: str, served: Bus, client: Client, call: tuple[Any, ...]) -> Any:
    """What the TUI's form shows for ``call``, and the error code as its outcome."""
    kind, name, args, kwargs = call
    source: Any = ClientSource(client) if way == "attached" else LocalSource(served)
    checked: Any
    try:
        checked = source.check(kind, name, list(args), dict(kwargs)).result(10)
    except RemoteError as exc:
        checked = ("refused", exc.code, exc.message, exc.data.get("problems"))
    try:
        if kind == "command":
            value = source.execute(name, list(args), dict(kwargs)).result(10)
        else:
            value = source.fire(name, list(args), dict(kwargs)).result(10)
    except Exception as exc:
        code = exc.code if isinstance(exc, RemoteError) else None
        outcome: Any = ("error", code, _text(describe_error(exc)))
    else:
        outcome = ("ok", pretty(value))
    if isinstance(source, LocalSource):
        source.close()
    return checked, outcome


def through_target(way: str, served: Bus, client: Client, call: tuple[Any, ...]) -> Any:
    """What a replay of ``call`` gives: the outcome of a command, or a fire's refusal."""
    from busctl.traces._model import Span
    from busctl.traces._plan import Step

    kind, name, args, kwargs = call
    target: Any = ClientTarget(client) if way == "attached" else BusTarget(served)
    span = Span("1" * 32, "2" * 16, None, name, "client", 0, 1, {})
    step = Step(1, kind, name, list(args), dict(kwargs), 0, span)
    if kind == "event":
        try:
            return ("fired", target.fire(step))
        except Exception as exc:  # Refused, with the bus's TYPE: message
            return ("refused", type(exc).__name__, str(exc))
    outcome: Outcome = target.execute(step, 10.0)
    if outcome.ok:
        return ("ok", pretty(outcome.value))
    return ("error", outcome.error_type, outcome.error_message)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c[1]}{c[2]}{c[3]}")
def test_the_same_call_gives_the_same_outcome_both_ways(
    served: Bus, client: Client, call: tuple[Any, ...]
) -> None:
    sources = [through_source(way, served, client, call) for way in WAYS]
    assert sources[0] == sources[1]
    targets = [through_target(way, served, client, call) for way in WAYS]
    assert targets[0] == targets[1]


def test_typed_values_and_refusals_are_what_the_endpoint_gives(served: Bus, client: Client) -> None:
    for way in WAYS:
        _, good = through_source(way, served, client, CALLS[0])
        assert good[0] == "ok"
        assert '"mode": "away"' in good[1]
        assert '"at": "2026-03-01T12:30:00Z"' in good[1]
        checked, bad = through_source(way, served, client, CALLS[1])
        assert checked[:2] == ("refused", ErrorCode.INVALID_ARGUMENT)
        assert checked[3][0]["param"] == "mode"
        assert checked[3][0]["value"] == "warm"
        assert bad[:2] == ("error", ErrorCode.INVALID_ARGUMENT)
        assert "argument 'mode' must be Mode, not 'warm'" in bad[2]
        assert "(error -32012)" in bad[2]
        replayed = through_target(way, served, client, CALLS[0])
        assert replayed[0] == "ok"
        assert '"at": "2026-03-01T12:30:00Z"' in replayed[1]
        refused = through_target(way, served, client, CALLS[11])
        assert refused[:2] == ("refused", "Refused")
        assert refused[2].startswith("InvalidArgumentError: counted.changed")


def test_nothing_refused_reached_a_handler(served: Bus, client: Client) -> None:
    counted = served._runtimes["counted"].service
    assert isinstance(counted, Counted)
    before = (counted.calls, counted.heard)
    for way in WAYS:
        for call in (CALLS[1], CALLS[2], CALLS[3], CALLS[9], CALLS[11]):
            through_source(way, served, client, call)
            through_target(way, served, client, call)
    assert served.wait_idle(5)
    assert (counted.calls, counted.heard) == before


def test_the_tui_reads_a_local_bus_on_its_own_loop(served: Bus) -> None:
    # The futures work from an event loop as the TUI awaits them.
    source = LocalSource(served)

    async def main() -> Any:
        return await asyncio.wrap_future(source.execute("counted.size", ["l"], {}))

    try:
        assert asyncio.run(main()) == "l"
    finally:
        source.close()
