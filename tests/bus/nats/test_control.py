"""The control protocol over NATS: one process, and the whole bus merged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import nats
import pytest

from bus import Bus, Service, command, listener
from bus.control import protocol
from tests.bus.nats.conftest import NatsServer

pytestmark = pytest.mark.timeout(60)


class Lamp(Service):
    name = "lamp"

    @command("lamp.on")
    def on(self, room: str) -> str:
        return f"{room} on"

    @listener("lamp.*")
    def heard(self, *args: Any) -> None:
        pass


def rpc(url: str, subject: str, method: str, params: dict[str, Any] | None = None) -> Any:
    async def ask() -> Any:
        nc = await nats.connect(url)
        request = json.dumps(protocol.request(7, method, params)).encode()
        msg = await nc.request(subject, request, timeout=10)
        await nc.close()
        return json.loads(msg.data)

    return asyncio.run(ask())


@pytest.fixture
def two(nats_bus: Callable[..., Bus]) -> tuple[Bus, Bus]:
    one, two = nats_bus(), nats_bus()
    one.add_service(Lamp())
    two.add_service(Lamp())
    for b in (one, two):
        assert b._nats is not None
        b._nats.settle()
    assert one.wait_for_command("lamp.on", 5)
    return one, two


def test_inspect_of_the_whole_bus_merges_every_process(
    nats_server: NatsServer, two: tuple[Bus, Bus]
) -> None:
    one, other = two
    assert one._nats is not None
    subject = one._nats.subjects.control
    for b in (one, other):
        b.execute_command("lamp.on", "hall").result(timeout=5)
    reply = rpc(nats_server.url, subject, "inspect")
    assert reply["id"] == 7
    assert reply["jsonrpc"] == "2.0"
    result = reply["result"]
    assert result["bus"]["transport"] == "nats"
    assert result["bus"]["processes"] == 2
    labels = sorted(p["label"] for p in result["processes"])
    assert len(labels) == 2
    assert all(p["state"] == "running" for p in result["processes"])
    [lamp] = [s for s in result["services"] if s["name"] == "lamp"]
    assert len(lamp["instances"]) == 2
    [on] = [c for c in result["commands"] if c["name"] == "lamp.on"]
    assert on["calls"] == 2
    assert len(on["instances"]) == 2
    assert len([entry for entry in result["listeners"] if entry["pattern"] == "lamp.*"]) == 2


def test_execute_fire_and_who_handles_through_the_bus(
    nats_server: NatsServer, two: tuple[Bus, Bus]
) -> None:
    one, _ = two
    assert one._nats is not None
    subject = one._nats.subjects.control
    reply = rpc(nats_server.url, subject, "execute", {"name": "lamp.on", "args": ["den"]})
    assert reply["result"] == {"value": "den on"}
    reply = rpc(nats_server.url, subject, "execute", {"name": "lamp.of"})
    assert reply["error"]["code"] == protocol.ErrorCode.NO_SUCH_COMMAND
    assert reply["error"]["data"]["suggestions"] == ["lamp.on"]
    reply = rpc(nats_server.url, subject, "fire", {"name": "lamp.dim"})
    assert reply["result"] == {"listeners": 1}  # one replicated listener, heard once
    reply = rpc(nats_server.url, subject, "who_handles", {"name": "lamp.on"})
    assert reply["result"]["command"]["name"] == "lamp.on"
    reply = rpc(nats_server.url, subject, "describe")
    assert reply["result"]["transport"] == "nats"
    assert len(reply["result"]["processes"]) == 2


def test_one_process_answers_for_itself(nats_server: NatsServer, two: tuple[Bus, Bus]) -> None:
    one, _ = two
    assert one._nats is not None
    subject = one._nats.subjects.of_process(one._nats.process_id, "control")
    reply = rpc(nats_server.url, subject, "inspect")
    assert reply["result"]["bus"]["pid"] == one.pid
    assert "processes" not in reply["result"]
    reply = rpc(nats_server.url, subject, "nope")
    assert reply["error"]["code"] == protocol.ErrorCode.METHOD_NOT_FOUND


def test_a_subscription_is_a_feed_every_process_publishes_to(
    nats_server: NatsServer, two: tuple[Bus, Bus]
) -> None:
    one, other = two
    assert one._nats is not None

    async def follow() -> list[Any]:
        nc = await nats.connect(nats_server.url)
        request = protocol.request(1, "subscribe", {"topic": "activity", "patterns": ["lamp.*"]})
        msg = await nc.request(one._nats.subjects.control, json.dumps(request).encode(), timeout=5)
        result = json.loads(msg.data)["result"]
        sub = await nc.subscribe(one._nats.subjects.feed_prefix + result["subscription"])
        await nc.flush()
        await asyncio.sleep(0.2)  # the order reaches the other process (it is async)
        await asyncio.to_thread(one.execute_command("lamp.on", "a").result, 5)
        await asyncio.to_thread(other.execute_command("lamp.on", "b").result, 5)
        notes = []
        while len({n["params"]["process"] for n in notes}) < 2:
            notes.append(json.loads((await sub.next_msg(timeout=5)).data))
        stop = protocol.request(2, "unsubscribe", {"subscription": result["subscription"]})
        await nc.request(one._nats.subjects.control, json.dumps(stop).encode(), timeout=5)
        await nc.close()
        return notes

    notes = asyncio.run(follow())
    assert {n["method"] for n in notes} == {"activity"}
    assert {n["params"]["activity"]["name"] for n in notes} == {"lamp.on"}


def test_cancel_over_nats_is_refused_plainly(
    nats_server: NatsServer, nats_bus: Callable[..., Bus], two: tuple[Bus, Bus]
) -> None:
    one, _ = two
    assert one._nats is not None
    for subject in (
        one._nats.subjects.control,
        one._nats.subjects.of_process(one._nats.process_id, "control"),
    ):
        reply = rpc(nats_server.url, subject, "cancel", {"id": 3})
        assert reply["error"]["code"] == protocol.ErrorCode.INVALID_PARAMS
        assert reply["error"]["data"] == {"param": "id"}
        assert "over NATS each request stands alone" in reply["error"]["message"]
    # Nor can a caller cancel a call it sent to another process: it is running.
    caller = nats_bus()  # hosts no lamp: its calls go to another process
    assert caller.wait_for_command("lamp.on", 5)
    future = caller.execute_command("lamp.on", "hall")
    assert future.cancel() is False
    assert future.result(timeout=5) == "hall on"
