"""``cancel``: a console stops a command it started with ``execute``.

A running async handler is cancelled, and its ``execute`` answered with
``-32013``; a running sync handler cannot be, which the reply says. Real
sockets, a real bus, a raw line client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from bus import Bus, Service, command
from tests.bus.control.control_client import LineClient

pytestmark = pytest.mark.timeout(30)


class Sleepy(Service):
    """An async command that sleeps until cancelled, and a sync one that blocks."""

    name = "sleepy"

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.saw: list[str] = []
        self.release = threading.Event()
        self.blocking = threading.Event()

    @command("sleepy.nap")
    async def nap(self) -> str:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            self.saw.append(str(exc))
            raise
        return "rested"

    @command("sleepy.block")
    def block(self) -> str:
        self.blocking.set()
        self.release.wait(20)
        return "released"


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Iterator[tuple[Bus, Sleepy]]:
    sleepy = Sleepy()
    try:
        yield serve("ctl", sleepy), sleepy
    finally:
        sleepy.release.set()  # before the bus closes: a blocked handler would hold it up


def test_cancel_stops_a_running_async_command(
    served: tuple[Bus, Sleepy], client: LineClient
) -> None:
    bus, sleepy = served
    commands = {c["name"]: c for c in client.result("inspect")["commands"]}
    assert (commands["sleepy.nap"]["async"], commands["sleepy.block"]["async"]) == (True, False)
    napping = client.request("execute", {"name": "sleepy.nap", "timeout": None}, rid="nap-1")
    assert sleepy.started.wait(5)
    assert client.result("cancel", {"id": "nap-1"}) == {"cancelled": True, "async": True}
    reply = client.reply(napping)
    assert reply["error"]["code"] == -32013
    assert reply["error"]["data"] == {"type": "CancelledError"}
    bus.wait_idle(5)
    assert sleepy.saw == ["cancelled by its caller"]
    # It has finished: nothing by that id runs any more.
    error = client.error("cancel", {"id": "nap-1"})
    assert (error["code"], error["data"]) == (-32602, {"param": "id"})
    assert "no execute with id 'nap-1' is running on this connection" in error["message"]


def test_cancel_of_a_running_sync_command_says_it_cannot(
    served: tuple[Bus, Sleepy], client: LineClient
) -> None:
    _, sleepy = served
    blocked = client.request("execute", {"name": "sleepy.block"}, rid="block-7")
    assert sleepy.blocking.wait(5)
    assert client.result("cancel", {"id": "block-7"}) == {"cancelled": False, "async": False}
    sleepy.release.set()
    assert client.reply(blocked)["result"] == {"value": "released"}


def test_cancel_reaches_only_this_connections_commands(
    served: tuple[Bus, Sleepy], client: LineClient
) -> None:
    bus, sleepy = served
    napping = client.request("execute", {"name": "sleepy.nap", "timeout": None}, rid="mine")
    assert sleepy.started.wait(5)
    other = LineClient(bus.address)  # type: ignore[arg-type]
    try:
        error = other.error("cancel", {"id": "mine"})
        assert error["code"] == -32602
    finally:
        other.close()
    assert client.result("cancel", {"id": "mine"})["cancelled"] is True
    assert client.reply(napping)["error"]["code"] == -32013


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "'id' is required"),
        ({"id": True}, "'id' must be a request id"),
        ({"id": [1]}, "'id' must be a request id"),
        ({"id": 1, "extra": 2}, "unknown param 'extra'"),
    ],
)
def test_cancel_refuses_bad_params_with_a_clear_error(
    client: LineClient, params: dict[str, object], message: str
) -> None:
    error = client.error("cancel", params)
    assert error["code"] == -32602
    assert message in error["message"]
