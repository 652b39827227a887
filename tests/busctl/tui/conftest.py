"""Fixtures for the TUI's tests: a real bus with the sample services, and a fake source.

The Pilot tests run against a real in-process bus, over its control endpoint
(``counted_source`` also reads it directly). The snapshot tests use
``FakeSource``: fixed data, no times or pids that move.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from bus import Bus
from bus.control.protocol import ErrorCode
from busctl._client import Client
from busctl.tui._local_source import LocalSource
from busctl.tui._source import ClientSource
from tests.busctl.counted_services import Counted
from tests.busctl.served_buses import control_bus

FAST = {"tick_interval": 0.5, "notifier_delay": 0.01, "sensor_failure_rate": 0.0}


@pytest.fixture
def sample_bus() -> Iterator[Bus]:
    """A bus with the sample services on fast timers (no random sensor failures)."""
    with control_bus("tuitest", samples=FAST) as bus:
        yield bus


def open_source(bus: Bus, how: str = "attached") -> ClientSource | LocalSource:
    """A source on ``bus``: over its control socket (``attached``) or in this process."""
    if how == "attached":
        return ClientSource(Client.connect(str(bus.address)))
    return LocalSource(bus)


@pytest.fixture
def source(sample_bus: Bus) -> Iterator[ClientSource | LocalSource]:
    """A source attached to ``sample_bus``, closed after the test."""
    src = open_source(sample_bus)
    try:
        yield src
    finally:
        src.close()


@pytest.fixture(params=["attached", "in-process"])
def counted_source(
    request: pytest.FixtureRequest, counted_served: tuple[Bus, Counted]
) -> Iterator[ClientSource | LocalSource]:
    """The module's ``counted_served`` bus, reached both ways the TUI reaches a bus.

    ``attached``: over its control socket; ``in-process``: directly. Both must
    behave the same. Each module that uses it says which bus in ``counted_served``.
    """
    chosen = open_source(counted_served[0], request.param)
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture
def make_source() -> Callable[[Bus], ClientSource | LocalSource]:
    """``make_source(bus)``: a new source on ``bus`` (for reconnect tests)."""
    return open_source


@pytest.fixture
def run_app() -> Callable[..., Any]:
    """``run_app(coroutine_function)``: run an async test body on a fresh event loop."""

    def run(body: Callable[[], Any]) -> Any:
        return asyncio.run(body())

    return run


# -- the fake source for snapshots ------------------------------------------------------

T0 = 1_700_000_000.0


def _service(name: str, handled: int, failed: int = 0, threads: int = 1) -> dict[str, Any]:
    names = (
        [f"bus:demo/{name}"] if threads == 1 else [f"bus:demo/{name}-{i}" for i in range(threads)]
    )
    return {
        "name": name,
        "state": "running",
        "activity": "idle",
        "threads": [{"name": n, "state": "idle", "hung": False} for n in names],
        "mailbox": 0,
        "mailbox_size": 100000,
        "handled": handled,
        "failed": failed,
        "error": None,
    }


def _param(name: str, annotation: str, default: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "positional_or_keyword",
        "annotation": annotation,
        "default": default,
        "required": default is None,
    }


def _command(name: str, owner: str, signature: str, params: list[dict[str, Any]], **stats: Any):
    entry = {
        "name": name,
        "owner": owner,
        "handler": f"{owner.title()}.{name.split('.')[-1]}",
        "signature": signature,
        "params": params,
        "doc": f"The {name} command.",
        "calls": 0,
        "errors": 0,
        "p50_ms": None,
        "p99_ms": None,
    }
    entry.update(stats)
    return entry


INSPECT: dict[str, Any] = {
    "bus": {"name": "demo", "pid": 1, "state": "running"},
    "totals": {"services": 4, "commands": 4, "listeners": 2, "handled": 1234, "failed": 3},
    "services": [
        _service("greeter", 12),
        _service("lights", 310, failed=3),
        _service("thermostat", 95),
        _service("notifier", 40, threads=2),
    ],
    "commands": [
        _command("greeter.say_hello", "greeter", "(name: str) -> str", [_param("name", "str")],
                 calls=12, p50_ms=0.05, p99_ms=0.4),
        _command("lights.turn_on", "lights", "(room: str, brightness: int = 100) -> LightState",
                 [_param("room", "str"), _param("brightness", "int", "100")],
                 calls=300, errors=3, p50_ms=0.12, p99_ms=2.5),
        _command("lights.list", "lights", "() -> list[LightState]", [], calls=10, p50_ms=0.08,
                 p99_ms=0.3),
        _command("thermostat.set_target", "thermostat", "(celsius: float) -> float",
                 [_param("celsius", "float")], calls=95, p50_ms=0.2, p99_ms=1.1),
    ],
    "listeners": [
        {"pattern": "motion.detected", "owner": "lights", "handler": "Lights.on_motion",
         "signature": "(room: str) -> None", "params": [_param("room", "str")], "order": 1,
         "deliveries": 20, "errors": 0, "p50_ms": 0.1},
        {"pattern": "*.changed", "owner": "notifier", "handler": "Notifier.on_change",
         "signature": "(**state: Any) -> None", "params": [], "order": 2, "deliveries": 300,
         "errors": 1, "p50_ms": 3.0},
    ],
    "waits": [],
    "tracing": {"enabled": True},
}  # fmt: skip

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _span(span_id: str, parent: str, name: str, kind: int, start_us: int, end_us: int,
          attrs: dict[str, Any], error: bool = False) -> dict[str, Any]:  # fmt: skip
    base = 1_700_000_000_000_000_000
    out: dict[str, Any] = {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(base + start_us * 1000),
        "endTimeUnixNano": str(base + end_us * 1000),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) and not isinstance(
                v, bool) else {"doubleValue": v} if isinstance(v, float) else {"stringValue": v}}
            for k, v in attrs.items()
        ],
        "status": {"code": 2, "message": "ValueError: no room 'attic'"} if error else {},
    }  # fmt: skip
    if error:
        out["events"] = [
            {
                "name": "exception",
                "timeUnixNano": str(base + end_us * 1000),
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": "ValueError"}},
                    {"key": "exception.message", "value": {"stringValue": "no room 'attic'"}},
                    {
                        "key": "exception.stacktrace",
                        "value": {
                            "stringValue": 'Traceback (most recent call last):\n  File "lights.py",'
                            " line 40, in turn_on\nValueError: no room 'attic'"
                        },
                    },
                ],
            }
        ]
    return out


TRACE: dict[str, Any] = {
    "resourceSpans": [{"resource": {"attributes": []},
                       "scopeSpans": [{"scope": {"name": "bus"}, "spans": [
        _span("a000000000000001", "", "send motion.detected", 4, 0, 40,
              {"bus.caller": "sensor", "bus.args": "[]", "bus.kwargs": '{"room":"attic"}'}),
        _span("a000000000000002", "a000000000000001", "process motion.detected", 5, 300, 2300,
              {"bus.service": "automation", "thread.name": "bus:demo/automation",
               "bus.queued_ms": 0.3}),
        _span("a000000000000003", "a000000000000002", "lights.turn_on", 3, 400, 2200,
              {"bus.service": "lights", "bus.caller": "automation",
               "bus.args": '["attic"]'}, error=True),
        _span("a000000000000004", "a000000000000003", "lights.turn_on", 2, 1400, 2200,
              {"bus.service": "lights", "thread.name": "bus:demo/lights", "bus.queued_ms": 1.0,
               "bus.args": '["attic"]'}, error=True),
    ]}]}]
}  # fmt: skip

ACTIVITY: list[dict[str, Any]] = [
    {"kind": "event", "name": "motion.detected", "time": T0, "seq": 1, "caller": "sensor",
     "args": "[]", "kwargs": '{"room":"attic"}', "listeners": 1, "trace_id": TRACE_ID},
    {"kind": "call", "name": "lights.turn_on", "time": T0 + 0.0004, "seq": 2,
     "service": "lights", "caller": "automation", "args": '["attic"]', "trace_id": TRACE_ID},
    {"kind": "return", "name": "lights.turn_on", "time": T0 + 0.0022, "seq": 3,
     "service": "lights", "duration_ms": 0.8, "queued_ms": 1.0,
     "error": {"type": "ValueError", "message": "no room 'attic'"}, "trace_id": TRACE_ID},
    {"kind": "delivery", "name": "motion.detected", "time": T0 + 0.0023, "seq": 4,
     "service": "automation", "pattern": "motion.detected", "duration_ms": 2.0,
     "trace_id": TRACE_ID},
    {"kind": "call", "name": "greeter.say_hello", "time": T0 + 1, "seq": 5,
     "service": "greeter", "caller": "console", "args": '["Alice"]', "trace_id": "1" * 32},
    {"kind": "return", "name": "greeter.say_hello", "time": T0 + 1.0001, "seq": 6,
     "service": "greeter", "result": '"Hello, Alice!"', "duration_ms": 0.05, "trace_id": "1" * 32},
]  # fmt: skip


MODE = {
    "description": "What a zone's heating does.",
    "enum": ["heat", "off", "away"],
    "title": "Mode",
    "type": "string",
}

# The bus's schema of the commands the fake source describes (as ``schema`` sends it).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bus demo",
    "commands": {
        "lights.turn_on": {
            "service": "lights", "readonly": False,
            "params": {"type": "object", "additionalProperties": False, "required": ["room"],
                       "properties": {"room": {"title": "Room", "type": "string"},
                                      "brightness": {"title": "Brightness", "type": "integer",
                                                     "default": 100}}},
            "result": {"$ref": "#/$defs/LightState"},
        },
        "thermostat.set_mode": {
            "service": "thermostat", "readonly": False,
            "params": {"type": "object", "additionalProperties": False,
                       "required": ["zone", "mode"],
                       "properties": {"zone": {"title": "Zone", "type": "string"},
                                      "mode": {"$ref": "#/$defs/Mode"},
                                      "hours": {"title": "Hours", "type": "integer",
                                                "default": 1},
                                      "eco": {"title": "Eco", "type": "boolean",
                                              "default": False}}},
            "result": {"$ref": "#/$defs/ModeChange"},
        },
    },
    "events": {},
    "$defs": {
        "LightState": {"title": "LightState", "type": "object",
                       "properties": {"room": {"type": "string"}, "on": {"type": "boolean"},
                                      "brightness": {"type": "integer"}}},
        "Mode": MODE,
        "ModeChange": {"title": "ModeChange", "type": "object",
                       "properties": {"zone": {"type": "string"}, "mode": {"$ref": "#/$defs/Mode"},
                                      "at": {"type": "string", "format": "date-time"}}},
    },
}  # fmt: skip

SET_MODE: dict[str, Any] = _command(
    "thermostat.set_mode", "thermostat",
    "(zone: str, mode: Mode, hours: int = 1, eco: bool = False) -> ModeChange",
    [_param("zone", "str"), _param("mode", "Mode"), _param("hours", "int", "1"),
     _param("eco", "bool", "False")],
)  # fmt: skip
"""A typed command the fake source knows, though its ``inspect()`` does not list it."""


def one_name(name: str) -> dict[str, Any]:
    """The fake bus's ``schema`` of one name (``{}`` for a name it does not describe)."""
    if name not in SCHEMA["commands"]:
        return {}
    return {**copy.deepcopy(SCHEMA), "commands": {name: copy.deepcopy(SCHEMA["commands"][name])}}


def resolved(value: Any = None, error: BaseException | None = None) -> Future[Any]:
    """A future already done: with ``value``, or failed with ``error``."""
    future: Future[Any] = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    return future


class FakeSource:
    """A source with fixed data that answers at once; records what it was asked."""

    name = "demo"
    embedded = False
    dropped = 0
    address = "/run/user/1000/bus/demo.sock"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Any], dict[str, Any]]] = []
        self.callback: Callable[[dict[str, Any]], None] | None = None
        self.closed = False

    def inspect(self) -> Future[dict[str, Any]]:
        return resolved(copy.deepcopy(INSPECT))

    def traces(self, trace_id: str) -> Future[dict[str, Any]]:
        return resolved(copy.deepcopy(TRACE) if trace_id == TRACE_ID else {"resourceSpans": []})

    def execute(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[Any]:
        from busctl._client import RemoteError

        self.calls.append(("execute", name, args, kwargs))
        if kwargs.get("room") == "attic":
            return resolved(
                error=RemoteError(
                    -32000,
                    "no room 'attic'",
                    {
                        "type": "ValueError",
                        "traceback": 'Traceback (most recent call last):\n  File "lights.py", '
                        "line 40, in turn_on\nValueError: no room 'attic'\n",
                    },
                )
            )
        return resolved({"room": kwargs.get("room"), "on": True, "brightness": 100})

    def fire(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[int]:
        self.calls.append(("fire", name, args, kwargs))
        return resolved(1)

    def schema(self, name: str) -> Future[dict[str, Any]]:
        return resolved(one_name(name))

    def check(self, kind: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> Future[bool]:
        """Refuses ``hours`` that is not a whole number, as the bus would (``-32012``)."""
        from busctl._client import RemoteError

        self.calls.append(("check", name, args, kwargs))
        hours = kwargs.get("hours", 1)
        if name == "thermostat.set_mode" and not isinstance(hours, int):
            problem = {"param": "hours", "path": "", "expected": "int", "value": hours,
                       "message": "Input should be a valid integer"}  # fmt: skip
            message = (f"thermostat.set_mode{SET_MODE['signature']}: argument 'hours' must be "
                       f"int, not {hours!r} (Input should be a valid integer)")  # fmt: skip
            data = {"type": "InvalidArgumentError", "message": message, "problems": [problem],
                    **problem}  # fmt: skip
            return resolved(error=RemoteError(ErrorCode.INVALID_ARGUMENT, message, data))
        return resolved(True)

    def request(self, method: str, params: dict[str, Any] | None = None) -> Future[Any]:
        """Holds and history: none held, no history (the snapshots stay still)."""
        self.calls.append((method, "", [], dict(params or {})))
        answers: dict[str, Any] = {"held": {"holds": [], "held": []}, "history": {"entries": []}}
        return resolved(copy.deepcopy(answers.get(method, {})))

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.callback = callback
        for activity in ACTIVITY:
            callback(json.loads(json.dumps(activity)))

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_source() -> FakeSource:
    """A ``FakeSource``: the demo bus, one trace with a failure, six activity entries."""
    return FakeSource()


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test (activity times in snapshots)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def trace_id() -> str:
    """The fake source's trace."""
    return TRACE_ID
