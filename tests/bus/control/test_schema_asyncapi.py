"""The AsyncAPI 3.0 document of a bus, parsed by the official AsyncAPI parser.

The parser is JavaScript (``@asyncapi/parser``, from npm), pinned by
``tests/js/package-lock.json``; the Makefile installs it there (``npm ci``,
part of the set-up ``make test`` runs). The test installs it the same way if
it is missing, and is skipped only when ``npm`` itself is not there, saying
so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sample_services
from bus import Bus
from bus.schema import asyncapi
from tests.bus.control.control_client import LineClient
from tests.bus.control.typed_service import Typed

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "tests" / "js"
SCRIPT = NODE_DIR / "asyncapi_parse.cjs"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def parser() -> Path:
    """The directory holding ``node_modules/@asyncapi/parser``, installed if need be."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm is not installed: the AsyncAPI parser (@asyncapi/parser) cannot run")
    if not (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            check=True,
            timeout=280,
        )
    assert (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir(), "npm ci failed"
    return NODE_DIR


def parse(parser: Path, document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What the parser says of ``document``; fails the test on any error it reports."""
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document, indent=2))
    done = subprocess.run(
        ["node", str(SCRIPT), str(parser), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    errors = [d for d in report["diagnostics"] if d["severity"] == 0]
    assert not errors, json.dumps(errors, indent=2)
    assert report["parsed"], report
    assert done.returncode == 0, done.stderr
    return report


@pytest.fixture
def home() -> Iterator[Bus]:
    with Bus(name="home", tracing=False) as bus:
        sample_services.start(bus, tick_interval=3600.0)
        bus.add_service(Typed())
        yield bus


def test_the_whole_bus_parses_without_errors(parser: Path, home: Bus, tmp_path: Path) -> None:
    report = parse(parser, asyncapi(home), tmp_path)
    # Nothing worse than advice (a newer AsyncAPI version exists, say).
    assert all(d["severity"] >= 2 for d in report["diagnostics"]), report["diagnostics"]


def test_the_document_over_the_control_socket_parses_too(
    parser: Path, runtime_dir: Path, tmp_path: Path
) -> None:
    with Bus(name="served", control=True, tracing=False) as bus:
        bus.add_service(Typed())
        assert bus.address is not None
        client = LineClient(bus.address)
        try:
            document = client.result("schema", {"format": "asyncapi"})
        finally:
            client.close()
    parse(parser, document, tmp_path)


def test_a_broken_document_is_reported(parser: Path, home: Bus, tmp_path: Path) -> None:
    # The parser does check: a reply message the channel does not have is an error.
    document = asyncapi(home)
    operation = document["operations"]["execute.lights.get"]
    operation["reply"]["messages"].append(
        {"$ref": "#/channels/command.lights.get.reply/messages/nope"}
    )
    with pytest.raises(AssertionError):
        parse(parser, document, tmp_path)


def test_commands_are_request_reply_operations_and_events_channels(home: Bus) -> None:
    document = asyncapi(home)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "bus home"
    get = document["operations"]["execute.lights.get"]
    assert get["action"] == "receive"
    assert get["channel"] == {"$ref": "#/channels/command.lights.get"}
    assert get["reply"]["channel"] == {"$ref": "#/channels/command.lights.get.reply"}
    assert get["traits"] == [{"$ref": "#/components/operationTraits/readonly"}]
    assert get["x-bus-readonly"] is True
    turn_on = document["operations"]["execute.lights.turn_on"]
    assert "traits" not in turn_on
    assert turn_on["x-bus-readonly"] is False
    assert document["channels"]["command.lights.get"]["address"] == "lights.get"
    schemas = document["components"]["schemas"]
    assert schemas["lights.get.result"] == {"$ref": "#/components/schemas/LightState"}
    assert schemas["lights.turn_on.params"]["properties"]["brightness"]["default"] == 100
    changed = document["channels"]["event.lights.changed"]
    assert changed["address"] == "lights.changed"
    assert document["operations"]["fire.lights.changed"]["action"] == "send"
    # The automation listens to *.changed, which names no one event: no listen operation.
    assert "listen.lights.changed" not in document["operations"]
    listen = document["operations"]["listen.motion.detected"]
    assert listen["action"] == "receive"
    assert listen["tags"] == [{"name": "service:automation"}]
