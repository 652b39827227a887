"""The control methods that step into a bus: hold, held, release, drop, unhold, stubs, history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bus import Bus, Service, command, listener
from bus.control.protocol import ErrorCode
from bus.testing import wait_idle
from tests.bus.control.control_client import LineClient

pytestmark = pytest.mark.timeout(30)


class Lights(Service):
    name = "lights"

    def __init__(self) -> None:
        super().__init__()
        self.heard: list[Any] = []

    @command("lights.turn_on")
    def turn_on(self, room: str, brightness: int = 100) -> dict[str, Any]:
        return {"room": room, "brightness": brightness}

    @command("lights.read")
    def read(self, room: str) -> float:
        return 1.0

    @listener("lights.changed")
    def changed(self, room: str) -> None:
        self.heard.append(room)


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Bus:
    return serve("ctl", Lights())


def test_hold_held_release_with_an_edit(served: Bus, client: LineClient) -> None:
    hold = client.result("hold", {"pattern": "lights.turn_on", "kind": "call", "for": 60})
    assert hold["id"] == 1
    assert (hold["pattern"], hold["kind"], hold["service"]) == ("lights.turn_on", "call", None)
    assert 59 < hold["expires_in"] <= 60
    rid = client.request("execute", {"name": "lights.turn_on", "args": ["hall"]})
    listing = _until_held(client, 1)
    [item] = listing["held"]
    assert (item["id"], item["hold"]) == (1, 1)
    assert (item["kind"], item["name"], item["service"]) == ("call", "lights.turn_on", "lights")
    assert (item["args"], item["kwargs"]) == (["hall"], {})
    assert listing["holds"][0]["held"] == 1
    error = client.error("release", {"id": 1, "set": {"brightness": "dim"}})
    assert error["code"] == ErrorCode.INVALID_ARGUMENT
    assert error["data"]["param"] == "brightness"
    error = client.error("release", {"id": 1, "set": {"colour": 1}})
    assert error["code"] == ErrorCode.BAD_ARGUMENTS
    assert client.result("release", {"id": 1, "set": {"brightness": "40"}}) == {"released": [1]}
    assert client.reply(rid)["result"] == {"value": {"room": "hall", "brightness": 40}}


def test_drop_fails_the_call_with_its_own_code(served: Bus, client: LineClient) -> None:
    client.result("hold", {"pattern": "lights.*"})
    rid = client.request("execute", {"name": "lights.turn_on", "args": ["hall"]})
    _until_held(client, 1)
    assert client.result("drop", {"id": 1}) == {"dropped": [1]}
    error = client.reply(rid)["error"]
    assert error["code"] == ErrorCode.DROPPED
    assert error["data"]["type"] == "DroppedByConsoleError"
    assert error["data"]["hold"] == 1
    assert "dropped by a console" in error["message"]


def test_unhold_releases_and_unknown_ids_are_told(served: Bus, client: LineClient) -> None:
    client.result("hold", {"pattern": "lights.changed", "kind": "event"})
    client.result("fire", {"name": "lights.changed", "args": ["hall"]})
    _until_held(client, 1)
    assert client.error("release", {"id": 7})["code"] == ErrorCode.NO_SUCH_HOLD
    assert client.error("drop", {"id": 7})["code"] == ErrorCode.NO_SUCH_HOLD
    assert client.error("unhold", {"id": 9})["code"] == ErrorCode.NO_SUCH_HOLD
    done = client.result("unhold", {"pattern": "lights.changed"})
    assert [h["id"] for h in done["holds"]] == [1]
    assert done["released"] == [1]
    wait_idle(served)
    assert served._runtimes["lights"].service.heard == ["hall"]  # type: ignore[union-attr]
    assert client.result("held") == {"holds": [], "held": []}


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("hold", {}, "pattern"),
        ("hold", {"pattern": "a b"}, "pattern"),
        ("hold", {"pattern": "x", "kind": "calls"}, "kind"),
        ("hold", {"pattern": "x", "for": 0}, "for"),
        ("hold", {"pattern": "x", "for": "10m"}, "for"),
        ("hold", {"pattern": "x", "service": "nobody"}, "service"),
        ("hold", {"pattern": "x", "colour": 1}, "colour"),
        ("release", {}, "id"),
        ("release", {"id": 1, "all": True}, "id"),
        ("release", {"all": True, "args": []}, "all"),
        ("release", {"id": "one"}, "id"),
        ("release", {"id": 1, "args": {}}, "args"),
        ("release", {"id": 1, "set": []}, "set"),
        ("drop", {"id": 0}, "id"),
        ("unhold", {}, "id"),
        ("stub", {"name": "lights.read", "returns": 1, "raises": "ValueError"}, "raises"),
        ("stub", {"name": "lights.read", "raises": ""}, "raises"),
        ("stub", {"name": "lights.read", "times": 0}, "times"),
        ("stub", {"name": "lights read"}, "name"),
        ("history", {"kinds": ["calls"]}, "kinds"),
        ("history", {"patterns": []}, "patterns"),
        ("history", {"limit": 0}, "limit"),
    ],
)
def test_bad_params_name_the_param(
    client: LineClient, method: str, params: dict[str, Any], param: str
) -> None:
    error = client.error(method, params)
    assert error["code"] == ErrorCode.INVALID_PARAMS, error
    assert error["data"]["param"] == param


def test_stub_stubs_unstub_and_the_command_entry(served: Bus, client: LineClient) -> None:
    made = client.result("stub", {"name": "lights.read", "raises": "TimeoutError: no answer"})
    assert (made["name"], made["raises"], made["service"]) == (
        "lights.read",
        "TimeoutError: no answer",
        "lights",
    )
    error = client.error("execute", {"name": "lights.read", "args": ["hall"]})
    assert error["code"] == ErrorCode.HANDLER_ERROR
    assert error["data"]["type"] == "TimeoutError"
    assert client.result("stub", {"name": "lights.read", "returns": None, "times": 2})["times"] == 2
    assert client.result("execute", {"name": "lights.read", "args": ["hall"]}) == {"value": None}
    [listed] = client.result("stubs")["stubs"]
    assert (listed["calls"], listed["returns"]) == (1, "null")
    [entry] = [c for c in client.result("inspect")["commands"] if c["name"] == "lights.read"]
    assert entry["stub"]["calls"] == 1
    assert client.result("inspect")["totals"]["stubs"] == 1
    assert client.result("unstub", {"name": "lights.read"})["name"] == "lights.read"
    assert client.result("execute", {"name": "lights.read", "args": ["hall"]}) == {"value": 1.0}
    assert client.error("unstub", {"name": "lights.read"})["code"] == ErrorCode.NO_SUCH_STUB
    error = client.error("stub", {"name": "lights.reed", "returns": 1})
    assert error["code"] == ErrorCode.NO_SUCH_COMMAND
    assert error["data"]["suggestions"][0] == "lights.read"


def test_history_lists_calls_and_events_newest_last(served: Bus, client: LineClient) -> None:
    client.result("execute", {"name": "lights.turn_on", "args": ["hall"], "kwargs": {}})
    client.result("fire", {"name": "lights.changed", "args": ["den"]})
    client.error("execute", {"name": "lights.turn_on", "args": []})  # never sent: no entry
    client.result("stub", {"name": "lights.read", "raises": "ValueError: broken"})
    client.error("execute", {"name": "lights.read", "args": ["x"]})
    wait_idle(served)
    entries = client.result("history")["entries"]
    assert [(e["kind"], e["name"]) for e in entries] == [
        ("call", "lights.turn_on"),
        ("event", "lights.changed"),
        ("call", "lights.read"),
    ]
    call, event, failed = entries
    assert call["args"] == '["hall"]'
    assert call["result"] == '{"room":"hall","brightness":100}'
    assert call["service"] == "lights"
    assert call["duration_ms"] >= 0
    assert len(call["trace_id"]) == 32
    assert (event["args"], event["listeners"]) == ('["den"]', 1)
    assert failed["error"] == {"type": "ValueError", "message": "broken"}
    assert failed["stubbed"] is True
    assert entries == sorted(entries, key=lambda e: e["time"])
    only = client.result("history", {"patterns": ["lights.changed"], "kinds": ["delivery"]})
    [delivery] = only["entries"]
    assert (delivery["kind"], delivery["pattern"]) == ("delivery", "lights.changed")
    assert client.result("history", {"limit": 1})["entries"] == [failed]


def _until_held(client: LineClient, count: int) -> dict[str, Any]:
    """``held``, asked until ``count`` items are held (an execute sent just now is on its way)."""
    for _ in range(2000):
        listing: dict[str, Any] = client.result("held")
        if len(listing["held"]) >= count:
            return listing
    raise AssertionError(f"fewer than {count} held: {listing}")


def test_answer_gives_in_process_what_the_socket_gives(served: Bus, client: LineClient) -> None:
    from bus.control import RequestError, answer

    hold = answer(served, "hold", {"pattern": "lights.turn_on"})
    assert hold == {
        **client.result("held")["holds"][0],
        "held": 0,
        "expires_in": hold["expires_in"],
    }
    future = served.execute_command("lights.turn_on", "hall")
    [item] = answer(served, "held")["held"]
    assert item["args"] == ["hall"]
    with pytest.raises(RequestError) as info:
        answer(served, "release", {"id": item["id"], "set": {"brightness": "dim"}})
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert answer(served, "release", {"id": item["id"]}) == {"released": [item["id"]]}
    assert future.result(5)["room"] == "hall"
    for method in ("execute", "subscribe", "cancel", "nope"):
        with pytest.raises(RequestError) as info:
            answer(served, method, {})
        assert info.value.code == ErrorCode.METHOD_NOT_FOUND
