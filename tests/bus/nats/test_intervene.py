"""Holds, stubs and history over NATS: the bus as a whole sends them where the work runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, command
from bus.control.protocol import ErrorCode
from tests.bus.nats.conftest import NatsServer
from tests.bus.nats.test_control import rpc

pytestmark = pytest.mark.timeout(60)


class Lamp(Service):
    name = "lamp"

    @command("lamp.on")
    def on(self, room: str, level: int = 100) -> str:
        return f"{room} on at {level}"


@pytest.fixture
def pair(nats_bus: Callable[..., Bus]) -> tuple[Bus, Bus]:
    """``owner`` serves ``lamp.on``; ``caller`` only calls it."""
    owner, caller = nats_bus(), nats_bus()
    owner.add_service(Lamp())
    for b in (owner, caller):
        assert b._nats is not None
        b._nats.settle()
    assert caller.wait_for_command("lamp.on", 5)
    return owner, caller


def _whole(bus: Bus) -> str:
    assert bus._nats is not None
    return bus._nats.subjects.control


def test_stub_reaches_the_process_that_serves_the_command(
    nats_server: NatsServer, pair: tuple[Bus, Bus]
) -> None:
    owner, caller = pair
    assert owner._nats is not None
    subject = _whole(caller)  # asked of the bus, answered by whichever process
    reply = rpc(nats_server.url, subject, "stub", {"name": "lamp.on", "returns": "stubbed"})
    result = reply["result"]
    assert result["name"] == "lamp.on"
    assert [s["process"] for s in result["stubs"]] == [owner._nats.label]
    assert caller.execute_command("lamp.on", "hall").result(10) == "stubbed"
    listed = rpc(nats_server.url, subject, "stubs")["result"]["stubs"]
    assert [(s["name"], s["process"], s["calls"]) for s in listed] == [
        ("lamp.on", owner._nats.label, 1)
    ]
    merged = rpc(nats_server.url, subject, "inspect")["result"]
    assert merged["totals"]["stubs"] == 1
    [entry] = [c for c in merged["commands"] if c["name"] == "lamp.on"]
    assert entry["stub"]["returns"] == '"stubbed"'
    assert rpc(nats_server.url, subject, "unstub", {"name": "lamp.on"})["result"]["calls"] == 1
    assert caller.execute_command("lamp.on", "hall").result(10) == "hall on at 100"
    reply = rpc(nats_server.url, subject, "stub", {"name": "lamp.of", "returns": 1})
    assert reply["error"]["code"] == ErrorCode.NO_SUCH_COMMAND
    reply = rpc(nats_server.url, subject, "unstub", {"name": "lamp.on"})
    assert reply["error"]["code"] == ErrorCode.NO_SUCH_STUB


def test_a_hold_holds_a_call_from_another_process_where_it_is_served(
    nats_server: NatsServer, pair: tuple[Bus, Bus]
) -> None:
    owner, caller = pair
    assert owner._nats is not None
    subject = _whole(caller)
    reply = rpc(nats_server.url, subject, "hold", {"pattern": "lamp.*", "kind": "call"})
    assert len(reply["result"]["holds"]) == 2  # set in every process
    label = owner._nats.label
    future = caller.execute_command("lamp.on", "hall")
    held = _until_held(nats_server.url, subject, 1)
    [item] = held["held"]
    assert item["id"] == f"1@{label}"
    assert item["hold"] == f"1@{label}"
    assert (item["process"], item["name"], item["args"]) == (label, "lamp.on", ["hall"])
    assert not future.done()
    reply = rpc(nats_server.url, subject, "release", {"id": 1, "set": {"level": "five"}})
    assert reply["error"]["code"] == ErrorCode.INVALID_ARGUMENT
    reply = rpc(nats_server.url, subject, "release", {"id": item["id"], "set": {"level": "5"}})
    assert reply["result"] == {"released": [f"1@{label}"]}
    assert future.result(10) == "hall on at 5"
    second = caller.execute_command("lamp.on", "den")
    _until_held(nats_server.url, subject, 1)
    reply = rpc(nats_server.url, subject, "drop", {"id": 2})  # a bare id: found where it is
    assert reply["result"] == {"dropped": [f"2@{label}"]}
    with pytest.raises(Exception, match="dropped by a console"):
        second.result(10)
    reply = rpc(nats_server.url, subject, "release", {"id": "9@nowhere:1"})
    assert reply["error"]["code"] == ErrorCode.NO_SUCH_HOLD
    reply = rpc(nats_server.url, subject, "unhold", {"pattern": "lamp.*"})
    assert len(reply["result"]["holds"]) == 2
    assert caller.execute_command("lamp.on", "attic").result(10) == "attic on at 100"


def test_history_of_the_whole_bus_merges_every_process(
    nats_server: NatsServer, pair: tuple[Bus, Bus]
) -> None:
    owner, caller = pair
    assert owner._nats is not None
    assert caller._nats is not None
    caller.execute_command("lamp.on", "hall").result(10)
    owner.execute_command("lamp.on", "den").result(10)
    for b in pair:
        b.flush_traces()
    reply = rpc(nats_server.url, _whole(caller), "history", {"patterns": ["lamp.*"]})
    entries = reply["result"]["entries"]
    seen = {(e["process"], e["args"]) for e in entries}
    # The caller's process has its CLIENT span of the remote call; the owner both.
    assert (caller._nats.label, '["hall"]') in seen
    assert (owner._nats.label, '["hall"]') in seen
    assert (owner._nats.label, '["den"]') in seen
    assert entries == sorted(entries, key=lambda e: e["time"])


def _until_held(url: str, subject: str, count: int) -> Any:
    for _ in range(500):
        result = rpc(url, subject, "held")["result"]
        if len(result["held"]) >= count:
            return result
    raise AssertionError("nothing was held")
