"""NATS micro discovery: the official JavaScript service client lists our services."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from bus import Bus, Service, command
from tests.bus.nats.conftest import NatsServer

pytestmark = pytest.mark.timeout(60)

JS = Path(__file__).with_name("js")
NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


class Thermostat(Service):
    """Keeps the house warm."""

    name = "thermo.stat"  # a dot: NATS micro names cannot have one
    version = "1.2.3"

    @command("thermostat.set")
    def set(self, degrees: float) -> float:
        """Set the target temperature."""
        if degrees > 30:
            raise ValueError("too hot")
        return degrees

    @command("thermostat.get", readonly=True)
    def get(self) -> float:
        return 20.0


@pytest.fixture
def thermostat(nats_bus: Callable[..., Bus]) -> tuple[Bus, Bus]:
    served = nats_bus()
    served.add_service(Thermostat())
    caller = nats_bus()
    assert caller.wait_for_command("thermostat.set", 5)
    assert caller.execute_command("thermostat.set", 21.5).result(timeout=5) == 21.5
    assert caller.execute_command("thermostat.get").result(timeout=5) == 20.0
    with pytest.raises(ValueError, match="too hot"):
        caller.execute_command("thermostat.set", 40).result(timeout=5)
    assert served._nats is not None
    served._nats.settle()
    return served, caller


def check_common(reply: dict[str, Any], kind: str) -> None:
    assert reply["type"] == f"io.nats.micro.v1.{kind}_response"
    assert NAME.match(reply["name"])
    assert reply["name"] == "thermo_stat"
    assert isinstance(reply["id"], str)
    assert reply["id"]
    assert SEMVER.match(reply["version"])
    assert reply["version"] == "1.2.3"
    assert isinstance(reply["metadata"], dict)
    assert all(isinstance(v, str) for v in reply["metadata"].values())


def request_many(url: str, subject: str) -> list[dict[str, Any]]:
    async def ask() -> list[dict[str, Any]]:
        nc = await nats.connect(url)
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish(subject, b"", reply=inbox)
        replies = []
        try:
            while True:
                msg = await sub.next_msg(timeout=0.5)
                replies.append(json.loads(msg.data))
        except nats.errors.TimeoutError:
            pass
        await nc.close()
        return replies

    return asyncio.run(ask())


def test_srv_replies_follow_the_micro_schemas_with_our_real_counts(
    nats_server: NatsServer, thermostat: tuple[Bus, Bus]
) -> None:
    served, _ = thermostat
    assert served._nats is not None
    sid = served._nats.micro.id_of(served._runtimes["thermo.stat"])
    [ping] = request_many(nats_server.url, "$SRV.PING.thermo_stat")
    check_common(ping, "ping")
    [info] = request_many(nats_server.url, f"$SRV.INFO.thermo_stat.{sid}")
    check_common(info, "info")
    assert info["description"] == "Keeps the house warm."
    endpoints = {e["metadata"]["command"]: e for e in info["endpoints"]}
    assert set(endpoints) == {"thermostat.set", "thermostat.get"}
    for name, endpoint in endpoints.items():
        assert NAME.match(endpoint["name"])
        assert endpoint["subject"].endswith(f".svc.thermo~stat.{name}")
        assert endpoint["queue_group"] == "q"
        assert isinstance(endpoint["metadata"], dict)
    [stats] = request_many(nats_server.url, "$SRV.STATS.thermo_stat")
    check_common(stats, "stats")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", stats["started"])
    by_command = {e["data"]["command"]: e for e in stats["endpoints"]}
    assert by_command["thermostat.set"]["num_requests"] == 2
    assert by_command["thermostat.set"]["num_errors"] == 1
    assert by_command["thermostat.set"]["last_error"] == "ValueError: too hot"
    assert by_command["thermostat.get"]["num_requests"] == 1
    for endpoint in stats["endpoints"]:
        assert isinstance(endpoint["data"], dict)
        assert isinstance(endpoint["processing_time"], int)
        assert isinstance(endpoint["average_processing_time"], int)
        assert endpoint["processing_time"] >= endpoint["average_processing_time"] > 0


def test_a_failed_call_carries_the_micro_error_headers(
    nats_server: NatsServer, thermostat: tuple[Bus, Bus]
) -> None:
    async def call() -> Any:
        nc = await nats.connect(nats_server.url)
        subject = thermostat[0]._nats.subjects.command("thermo~stat", "thermostat.set")  # type: ignore[union-attr]
        msg = await nc.request(subject, json.dumps({"args": [99]}).encode(), timeout=5)
        await nc.close()
        return msg

    msg = asyncio.run(call())
    assert msg.headers["Nats-Service-Error-Code"] == "500"
    assert msg.headers["Nats-Service-Error"] == "ValueError: too hot"
    assert json.loads(msg.data)["error"]["type"] == "ValueError"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_official_javascript_service_client_lists_our_services(
    nats_server: NatsServer, thermostat: tuple[Bus, Bus]
) -> None:
    assert (JS / "node_modules" / "@nats-io" / "services").exists(), (
        "the JavaScript client is not installed: make .venv/.installed installs it "
        "(npm ci --prefix tests/bus/nats/js)"
    )
    result = subprocess.run(
        ["node", "micro.mjs", nats_server.url, "thermo_stat"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = json.loads(result.stdout)
    assert [p["name"] for p in seen["ping"] if p["name"] == "thermo_stat"] == ["thermo_stat"]
    [info] = seen["info"]
    assert sorted(e["metadata"]["command"] for e in info["endpoints"]) == [
        "thermostat.get",
        "thermostat.set",
    ]
    [stats] = seen["stats"]
    counts = {
        e["data"]["command"]: (e["num_requests"], e["num_errors"]) for e in stats["endpoints"]
    }
    assert counts == {"thermostat.set": (2, 1), "thermostat.get": (1, 0)}
