"""Typed values across processes: JSON on the wire, the handler's own types on arrival."""

from __future__ import annotations

import datetime
import decimal
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, InvalidArgumentError, Service, command, listener
from bus._core._contract import Contract
from bus._nats import _wire as wire
from bus.control import protocol
from tests.bus.nats.conftest import Host, NatsServer
from tests.bus.nats.test_control import rpc

pytestmark = pytest.mark.timeout(60)


@dataclass
class Point:
    x: int
    y: int


class Mode(Enum):
    HEAT = "heat"
    OFF = "off"


@dataclass
class Reading:
    at: datetime.datetime
    id: uuid.UUID
    value: decimal.Decimal
    where: Path


@dataclass
class Fragile:
    x: int

    def __post_init__(self) -> None:
        raise RuntimeError("Fragile cannot be built")


class Geo(Service):
    name = "geo"

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    @command("geo.kind")
    def kind(self, p: Point) -> str:
        self.ran.append("geo.kind")
        return f"{type(p).__name__}({p.x}, {p.y})"

    @command("geo.mode")
    def mode(self, m: Mode, *, also: Mode = Mode.OFF) -> str:
        self.ran.append("geo.mode")
        return f"{m!r} {also!r}"

    @command("geo.echo")
    def echo(self, p: Point) -> Point:
        return p

    @command("geo.reading")
    def reading(self, r: Reading) -> Reading:
        assert isinstance(r.at, datetime.datetime)
        assert isinstance(r.id, uuid.UUID)
        assert isinstance(r.value, decimal.Decimal)
        assert isinstance(r.where, Path)
        return r

    @command("geo.many")
    def many(self, points: list[Point], scale: dict[str, Mode] | None = None) -> list[Point]:
        assert all(isinstance(p, Point) for p in points)
        assert scale is None or all(isinstance(m, Mode) for m in scale.values())
        return points

    @command("geo.fragile")
    def fragile(self, f: Fragile) -> None:
        self.ran.append("geo.fragile")

    @command("geo.lock")
    def lock(self) -> Any:
        return threading.Lock()


@pytest.fixture
def geo(nats_bus: Callable[..., Bus]) -> tuple[Bus, list[str]]:
    """A process serving ``geo``; the list records every call that ran."""
    server = nats_bus()
    service = Geo()
    server.add_service(service)
    return server, service.ran


def _caller(nats_bus: Callable[..., Bus], **options: Any) -> Bus:
    caller = nats_bus(**options)
    assert caller.wait_for_command("geo.many", 5)
    return caller


def test_a_remote_handler_gets_its_annotated_types_from_json(
    nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]]
) -> None:
    caller = _caller(nats_bus)
    assert caller.execute_command("geo.kind", {"x": 1, "y": 2}).result(5) == "Point(1, 2)"
    assert caller.execute_command("geo.kind", Point(3, 4)).result(5) == "Point(3, 4)"
    assert caller.execute_command("geo.kind", p={"x": "5", "y": 6}).result(5) == "Point(5, 6)"
    assert caller.execute_command("geo.mode", "heat", also=Mode.HEAT).result(5) == (
        "<Mode.HEAT: 'heat'> <Mode.HEAT: 'heat'>"
    )
    points = caller.execute_command("geo.many", [Point(1, 2), {"x": 3, "y": 4}], {"a": Mode.OFF})
    assert points.result(5) == [{"x": 1, "y": 2}, {"x": 3, "y": 4}]


def test_a_typed_result_comes_back_as_its_class_when_this_process_has_it(
    nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]]
) -> None:
    caller = _caller(nats_bus)
    reading = Reading(
        datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.UTC),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("21.50"),
        Path("/var/lib/thermo"),
    )
    back = caller.execute_command("geo.reading", reading).result(5)
    assert type(back) is Reading
    assert back == reading
    echo = caller.execute_command("geo.echo", {"x": 1, "y": 2}).result(5)
    assert type(echo) is Point
    assert echo == Point(1, 2)
    # Only a result annotated with one class is converted: a generic stays JSON.
    many = caller.execute_command("geo.many", [Point(1, 2)]).result(5)
    assert many == [{"x": 1, "y": 2}]


def test_a_typed_result_whose_class_is_not_here_comes_back_as_json(
    nats_bus: Callable[..., Bus], host: Callable[..., Host]
) -> None:
    host("greeter")  # its Card is in its __main__, which this process does not have
    caller = nats_bus()
    assert caller.wait_for_command("greeter.card", 5)
    card = caller.execute_command("greeter.card", "Ann").result(5)
    assert card == {"name": "Ann", "issued": "2026-12-01", "mode": "heat"}


@pytest.mark.parametrize("validate", [False, True])
def test_a_wrong_value_fails_the_callers_future_and_nothing_runs(
    nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]], validate: bool
) -> None:
    server, ran = geo
    caller = _caller(nats_bus, validate=validate)
    with pytest.raises(InvalidArgumentError) as caught:
        caller.execute_command("geo.kind", {"x": "no", "y": 2}).result(5)
    error = caught.value
    assert error.target == "geo.kind"
    assert [(p.param, p.path, p.expected, p.value) for p in error.problems] == [
        ("p", "x", "Point", "no")
    ]
    assert "argument 'p' must be Point: p.x is 'no'" in str(error)
    with pytest.raises(InvalidArgumentError, match="argument 'm' must be Mode, not 'hot'"):
        caller.execute_command("geo.mode", "hot").result(5)
    assert server.wait_idle(5)
    assert ran == []
    assert caller.execute_command("geo.kind", {"x": 1, "y": 2}).result(5) == "Point(1, 2)"


def test_a_type_whose_building_breaks_answers_the_caller_at_once(
    nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]]
) -> None:
    _, ran = geo
    caller = _caller(nats_bus)
    with pytest.raises(RuntimeError, match="Fragile cannot be built"):
        caller.execute_command("geo.fragile", {"x": 1}).result(5)  # not at the deadline
    assert ran == []


def test_a_result_with_no_json_form_is_a_clear_error(
    nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]]
) -> None:
    caller = _caller(nats_bus)
    with pytest.raises(TypeError, match=r"^geo.lock: its result \(lock\) has no JSON form"):
        caller.execute_command("geo.lock").result(5)


def test_a_typed_event_reaches_other_processes_converted_for_each_listener(
    nats_bus: Callable[..., Bus],
) -> None:
    heard: dict[str, list[Any]] = {"typed": [], "plain": [], "wrong": []}
    done = threading.Event()

    class Ears(Service):
        name = "ears"

        @listener("pt.new")
        def typed(self, p: Point, mode: Mode = Mode.OFF) -> None:
            heard["typed"].append((p, mode))

        @listener("pt.*")
        def plain(self, p: Any, mode: Any = None) -> None:
            heard["plain"].append((p, mode))
            if len(heard["plain"]) == 2:
                done.set()

        @listener("pt.new")
        def wrong(self, p: int, mode: Any = None) -> None:
            heard["wrong"].append(p)

    receiver = nats_bus()
    receiver.add_service(Ears())
    firer = nats_bus()
    for b in (receiver, firer):
        assert b._nats is not None
        b._nats.settle()
    firer.fire_event("pt.new", Point(3, 4), mode=Mode.HEAT)
    firer.fire_event("pt.new", {"x": 5, "y": 6})
    assert done.wait(10)
    assert receiver._nats is not None
    assert receiver._nats.settle()  # each listener has its own subscription: all read
    assert receiver.wait_idle(5)
    assert heard["typed"] == [(Point(3, 4), Mode.HEAT), (Point(5, 6), Mode.OFF)]
    assert heard["plain"] == [({"x": 3, "y": 4}, "heat"), ({"x": 5, "y": 6}, None)]
    assert heard["wrong"] == []  # its arguments do not convert: it fails, the others hear
    listeners = receiver.inspect()["listeners"]
    stats = {entry["handler"].rsplit(".", 1)[-1]: entry for entry in listeners}
    assert stats["wrong"]["errors"] == 2
    assert "argument 'p' must be int" in stats["wrong"]["last_error"]
    assert stats["typed"]["errors"] == 0
    assert firer.inspect()["nats"]["unsent_events"] == 0


def test_an_event_with_no_json_form_stays_here_and_says_which_argument(
    nats_bus: Callable[..., Bus], caplog: pytest.LogCaptureFixture
) -> None:
    firer = nats_bus()
    firer.fire_event("pt.odd", Point(1, 2), lock=threading.Lock())
    assert firer.inspect()["nats"]["unsent_events"] == 1
    assert "argument 'lock' (a lock) has no JSON form" in caplog.text


def test_console_execute_converts_in_whichever_process_answers(
    nats_server: NatsServer, nats_bus: Callable[..., Bus], geo: tuple[Bus, list[str]]
) -> None:
    server, _ = geo
    other = _caller(nats_bus)
    for b in (server, other):
        assert b._nats is not None
        b._nats.settle()
    for b in (server, other):
        assert b._nats is not None
        subject = b._nats.subjects.of_process(b._nats.process_id, "control")
        point = {"x": 1, "y": 2}
        good = rpc(nats_server.url, subject, "execute", {"name": "geo.kind", "args": [point]})
        assert good["result"] == {"value": "Point(1, 2)"}
        echo = rpc(nats_server.url, subject, "execute", {"name": "geo.echo", "args": [point]})
        assert echo["result"] == {"value": {"x": 1, "y": 2}}  # typed, not lossy
        wrong = {"x": "no", "y": 2}
        bad = rpc(nats_server.url, subject, "execute", {"name": "geo.kind", "args": [wrong]})
        assert bad["error"]["code"] == protocol.ErrorCode.INVALID_ARGUMENT
        data = bad["error"]["data"]
        assert (data["param"], data["expected"], data["value"]) == ("p", "Point", "no")
    assert server._nats is not None
    subject = server._nats.subjects.of_process(server._nats.process_id, "control")
    lock = rpc(nats_server.url, subject, "execute", {"name": "geo.lock"})
    assert lock["result"]["lossy"] is True  # only what JSON cannot hold is lossy


EVALUATED: list[str] = []


def test_a_remote_signature_is_text_that_is_never_evaluated(
    nats_bus: Callable[..., Bus], nats_server: NatsServer
) -> None:
    payload = (
        "__import__('tests.bus.nats.test_typed').bus.nats.test_typed.EVALUATED.append(1) or int"
    )
    signature = wire.rebuild_signature(
        [{"name": "p", "kind": "positional_or_keyword", "annotation": payload}], payload
    )
    assert signature is not None
    stub = wire.RemoteStub("forged", signature, None)
    contract = Contract("forged", stub, signature)
    assert contract.convert(("anything",), {}) == (("anything",), {})
    assert contract.result() is not None
    assert str(signature) == f"(p: {payload}) -> {payload}"
    # And through a bus that checks what it sends, and the console's execute.
    forger = nats_bus()
    caller = nats_bus(validate=True)
    assert forger._nats is not None
    assert caller._nats is not None
    record = {
        "v": 1, "id": "forged1", "label": "forger:1", "seq": 1, "started_at": 0,
        "services": [{"name": "evil", "concurrency": 1, "state": "running"}],
        "commands": [
            {"name": "evil.run", "service": "evil", "token": "evil",
             "params": [{"name": "p", "kind": "positional_or_keyword", "annotation": payload}],
             "returns": payload, "signature": "", "doc": None, "readonly": False,
             "qualname": "evil.run"},
        ],
        "listeners": [],
    }  # fmt: skip
    link = forger._nats
    link.loop.run(link.loop.nc.publish(link.subjects.reg_state, wire.encode(record)), 5)
    assert caller.wait_for_command("evil.run", 5)
    caller.execute_command("evil.run", "x")  # no one serves it: it waits, until close
    assert EVALUATED == []
