"""The control protocol's ``schema`` over NATS describes the whole bus, merged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from bus import Bus, Service, command, event_type, listener
from bus.control import protocol
from tests.bus.control.test_schema_asyncapi import parse, parser
from tests.bus.nats.conftest import NatsServer

__all__ = ["parser"]  # a fixture, used by name

pytestmark = pytest.mark.timeout(300)


@dataclass
class Point:
    x: int
    y: int


class Other:
    @dataclass
    class Point:  # the same name, another type: the merge keeps both
        lat: float
        lon: float


@event_type("pt.declared")
@dataclass
class Declared:
    where: str


class West(Service):
    name = "west"

    @command("west.move")
    def move(self, p: Point) -> Point:
        """Move a point."""
        return p

    @listener("pt.moved")
    def moved(self, p: Point) -> None:
        pass


class East(Service):
    name = "east"
    events = (Declared,)

    @command("east.locate")
    def locate(self, p: Other.Point) -> str:
        return f"{p.lat},{p.lon}"

    @listener("pt.moved")
    def moved(self, p: dict[str, int], note: str = "") -> None:
        pass


def _rpc(url: str, subject: str, params: dict[str, Any]) -> Any:
    async def ask() -> Any:
        nc = await nats.connect(url)
        request = json.dumps(protocol.request(1, "schema", params)).encode()
        msg = await nc.request(subject, request, timeout=20)
        await nc.close()
        return json.loads(msg.data)

    return asyncio.run(ask())


@pytest.fixture
def whole(nats_bus: Callable[..., Bus]) -> str:
    """Two processes with different services; the bus's control subject."""
    west, east = nats_bus(), nats_bus()
    west.add_service(West())
    east.add_service(East())
    for b in (west, east):
        assert b._nats is not None
        b._nats.settle()
    assert west.wait_for_command("east.locate", 5)
    assert east.wait_for_command("west.move", 5)
    assert west._nats is not None
    return west._nats.subjects.control


def test_schema_of_the_whole_bus_merges_every_process(nats_server: NatsServer, whole: str) -> None:
    document = _rpc(nats_server.url, whole, {})["result"]
    assert document["title"].startswith("bus t")
    assert sorted(document["commands"]) == ["east.locate", "west.move"]
    defs = document["$defs"]
    # Whichever process answered first keeps the name; the other's is renamed.
    other = next(k for k, v in defs.items() if set(v.get("properties", {})) == {"lat", "lon"})
    mine = next(k for k, v in defs.items() if set(v.get("properties", {})) == {"x", "y"})
    assert {other, mine} == {"Point", "Point_2"}
    locate = document["commands"]["east.locate"]["params"]["properties"]["p"]
    move = document["commands"]["west.move"]["params"]["properties"]["p"]
    assert locate == {"$ref": f"#/$defs/{other}"}
    assert move == {"$ref": f"#/$defs/{mine}"}
    events = document["events"]
    assert events["pt.declared"]["declared"] is True
    assert events["pt.declared"]["type"] == "Declared"
    moved = events["pt.moved"]["payload"]["allOf"]  # what each process's listener takes
    assert sorted(sorted(part["properties"]) for part in moved) == [["note", "p"], ["p"]]
    one = _rpc(nats_server.url, whole, {"name": "east.locate"})["result"]
    assert list(one["commands"]) == ["east.locate"]
    missing = _rpc(nats_server.url, whole, {"name": "nowhere"})
    assert missing["error"]["code"] == protocol.ErrorCode.INVALID_PARAMS
    assert "no command or event named 'nowhere'" in missing["error"]["message"]


def test_asyncapi_of_the_whole_bus_parses(
    nats_server: NatsServer, whole: str, parser: Path, tmp_path: Path
) -> None:
    document = _rpc(nats_server.url, whole, {"format": "asyncapi"})["result"]
    assert {"execute.west.move", "execute.east.locate", "listen.pt.moved"} <= set(
        document["operations"]
    )
    tags = document["operations"]["listen.pt.moved"]["tags"]
    assert tags == [{"name": "service:east"}, {"name": "service:west"}]
    schemas = document["components"]["schemas"]
    assert {"Point", "Point_2", "west.move.params", "east.locate.params"} <= set(schemas)
    assert "allOf" in schemas["pt.moved.payload"]
    parse(parser, document, tmp_path)
