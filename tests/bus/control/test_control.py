"""The control endpoint's methods and errors, spoken over a raw socket.

Every test talks to a real ``Bus(control=True)`` through a tiny line client
defined here (no busctl), in a private ``XDG_RUNTIME_DIR`` under /tmp.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Service, command, listener
from tests.bus.control.control_client import LineClient

pytestmark = pytest.mark.timeout(30)


class Greeter(Service):
    name = "greeter"

    def on_start(self) -> None:
        self.heard: list[Any] = []
        self.release = threading.Event()

    @command("say_hello")
    def say_hello(self, name: str, punctuation: str = "!") -> str:
        """Greet someone."""
        return f"Hello, {name}{punctuation}"

    @command("fail")
    def fail(self) -> None:
        raise ValueError("it went wrong")

    @command("opaque")
    def opaque(self) -> object:
        return {1, 2}

    @command("huge")
    def huge(self) -> list[int]:
        return [10**5000]  # beyond CPython's int-to-str digit limit

    @command("nan")
    def nan(self) -> float:
        return float("nan")

    @listener("greet.*")
    def on_greet(self, *args: Any) -> None:
        self.heard.append(args)

    @listener("*")
    def on_all(self, *args: Any) -> None:
        pass


class Slow(Service):
    name = "slow"
    concurrency = 4

    def on_start(self) -> None:
        self.release = threading.Event()

    @command("wait_for_release")
    def wait_for_release(self) -> str:
        self.release.wait(20)
        return "released"


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Iterator[Bus]:
    slow = Slow()
    try:
        yield serve("ctl", Greeter(), slow)
    finally:
        slow.release.set()  # before the bus closes: a blocked handler would hold it up


def service_of(bus: Bus, name: str) -> Any:
    return bus._runtimes[name].service


# -- describe, inspect ----------------------------------------------------------------


def test_describe(served: Bus, client: LineClient) -> None:
    info = client.result("describe")
    assert info["protocol"] == 2
    assert info["name"] == "ctl"
    assert info["pid"] == os.getpid()
    assert info["address"] == str(served.address)
    assert info["started_at"] == served.started_at
    assert set(info["methods"]) == {
        "describe", "inspect", "execute", "fire", "who_handles",
        "subscribe", "unsubscribe", "traces", "wait_idle", "schema", "cancel",
        "hold", "held", "release", "drop", "unhold", "stub", "unstub", "stubs", "history",
    }  # fmt: skip


def test_reply_carries_the_request_id_string_or_int(client: LineClient) -> None:
    assert client.reply(client.request("describe", rid="abc"))["id"] == "abc"
    assert client.reply(client.request("describe", rid=0))["id"] == 0


def test_inspect(client: LineClient) -> None:
    snapshot = client.result("inspect")
    assert {"bus", "totals", "services", "commands", "listeners", "waits", "tracing"} <= set(
        snapshot
    )
    assert "say_hello" in [c["name"] for c in snapshot["commands"]]


# -- execute -----------------------------------------------------------------------------


def test_execute_returns_the_result(client: LineClient) -> None:
    params = {"name": "say_hello", "args": ["Ada"], "kwargs": {"punctuation": "?"}}
    assert client.result("execute", params) == {"value": "Hello, Ada?"}


def test_execute_defaults_args_and_kwargs(client: LineClient) -> None:
    reply = client.error("execute", {"name": "say_hello"})
    assert reply["code"] == -32002


def test_execute_unknown_command_suggests(client: LineClient) -> None:
    error = client.error("execute", {"name": "say_helo", "args": ["x"]})
    assert error["code"] == -32001
    assert error["data"]["type"] == "CommandNotFoundError"
    assert error["data"]["suggestions"] == ["say_hello"]
    assert "say_helo" in error["data"]["message"]


def test_execute_arguments_that_do_not_bind(client: LineClient) -> None:
    error = client.error("execute", {"name": "say_hello", "args": [1, 2, 3]})
    assert error["code"] == -32002
    assert error["data"]["type"] == "TypeError"
    assert error["data"]["signature"] == "(name: str, punctuation: str = '!') -> str"
    error = client.error("execute", {"name": "say_hello", "kwargs": {"nobody": 1}})
    assert error["code"] == -32002


def test_execute_handler_error_has_type_message_traceback(client: LineClient) -> None:
    error = client.error("execute", {"name": "fail"})
    assert error["code"] == -32000
    data = error["data"]
    assert data["type"] == "ValueError"
    assert data["message"] == "it went wrong"
    assert "raise ValueError" in data["traceback"]
    assert "it went wrong" in error["message"]


def test_execute_result_not_json_is_marked_and_lossy(client: LineClient) -> None:
    # A set is JSON as pydantic's JSON mode has it: an array, nothing lost.
    assert client.result("execute", {"name": "opaque"}) == {"value": [1, 2]}
    assert client.result("execute", {"name": "nan"}) == {
        "value": {"$repr": "nan", "$type": "float"},
        "lossy": True,
    }
    huge = client.result("execute", {"name": "huge"})
    assert huge["lossy"] is True
    assert huge["value"][0]["$unencodable"].startswith("ValueError: Exceeds the limit")


def test_execute_timeout(served: Bus, client: LineClient) -> None:
    started = time.monotonic()
    error = client.error("execute", {"name": "wait_for_release", "timeout": 0.2})
    assert time.monotonic() - started < 5
    assert error["code"] == -32004
    assert error["data"]["timeout"] == 0.2
    service_of(served, "slow").release.set()


def test_slow_execute_does_not_hold_up_the_connection(served: Bus, client: LineClient) -> None:
    slow = client.request("execute", {"name": "wait_for_release"})
    assert client.result("describe")["name"] == "ctl"
    assert client.result("execute", {"name": "say_hello", "args": ["x"]})["value"] == "Hello, x!"
    other = LineClient(served.address)  # type: ignore[arg-type]
    try:
        assert other.result("inspect")["bus"]["name"] == "ctl"
    finally:
        other.close()
    service_of(served, "slow").release.set()
    assert client.reply(slow)["result"] == {"value": "released"}


def test_execute_on_a_closing_bus(runtime_dir: Path) -> None:
    bus = Bus(name="closing", control=True)
    bus.add_service(Greeter())
    c = LineClient(bus.address)  # type: ignore[arg-type]
    bus._closing = True  # what close() sets first, before it stops anything
    try:
        error = c.error("execute", {"name": "say_hello", "args": ["x"]})
        assert error["code"] == -32003
        assert error["data"]["type"] == "BusClosedError"
        assert c.error("fire", {"name": "greet.x"})["code"] == -32003
    finally:
        bus._closing = False
        c.close()
        bus.close()


def test_execute_on_a_full_mailbox(runtime_dir: Path) -> None:
    bus = Bus(name="full", control=True, mailbox_size=1)
    slow = bus.add_service(Slow())
    try:
        c = LineClient(bus.address)  # type: ignore[arg-type]
        first = c.request("execute", {"name": "wait_for_release"})
        # The first is running or queued; fill the mailbox until it refuses.
        codes = []
        for _ in range(10):
            reply = c.call("execute", {"name": "wait_for_release", "timeout": 0.01})
            codes.append(reply["error"]["code"])
            if codes[-1] == -32005:
                break
        assert codes[-1] == -32005
        assert reply["error"]["data"]["type"] == "MailboxFullError"
        slow.release.set()  # type: ignore[attr-defined]
        assert c.reply(first)["result"]["value"] == "released"
        c.close()
    finally:
        slow.release.set()  # type: ignore[attr-defined]
        bus.close()


def test_execute_deadlock_is_reported(runtime_dir: Path) -> None:
    class Loop(Service):
        name = "loop"

        @command("me")
        def me(self) -> Any:
            return self.bus.execute_command("me_too").result(timeout=5)

        @command("me_too")
        def me_too(self) -> str:
            return "unreachable"

    with Bus(name="dl", control=True) as bus:
        bus.add_service(Loop())
        c = LineClient(bus.address)  # type: ignore[arg-type]
        error = c.error("execute", {"name": "me"})
        assert error["code"] == -32006
        assert error["data"]["cycle"] == ["loop", "loop"]
        c.close()


def test_execute_as_notification_runs_without_reply(served: Bus, client: LineClient) -> None:
    client.send({"jsonrpc": "2.0", "method": "fire", "params": {"name": "greet.quiet"}})
    client.send(
        {"jsonrpc": "2.0", "method": "execute", "params": {"name": "say_hello", "args": ["n"]}}
    )
    assert client.call("describe")["id"] == 1  # the first reply is the describe's
    served.wait_idle(5)
    assert service_of(served, "greeter").heard == [()]
    calls = {c["name"]: c["calls"] for c in served.inspect()["commands"]}
    assert calls["say_hello"] == 1


# -- fire ----------------------------------------------------------------------------------


def test_fire_counts_matching_listeners(served: Bus, client: LineClient) -> None:
    assert client.result("fire", {"name": "greet.world", "args": [1], "kwargs": {}}) == {
        "listeners": 2
    }
    assert client.result("fire", {"name": "nobody.hears"}) == {"listeners": 1}
    served.wait_idle(5)
    assert service_of(served, "greeter").heard == [(1,)]


def test_fire_bad_event_name(client: LineClient) -> None:
    error = client.error("fire", {"name": "not a name"})
    assert error["code"] == -32602
    assert error["data"]["param"] == "name"


# -- who_handles --------------------------------------------------------------------------


def test_who_handles_a_command(client: LineClient) -> None:
    routing = client.result("who_handles", {"name": "say_hello"})
    assert routing["name"] == "say_hello"
    entry = routing["command"]
    assert entry["owner"] == "greeter"
    assert entry["signature"] == "(name: str, punctuation: str = '!') -> str"
    assert entry["doc"] == "Greet someone."
    assert entry["threads"] == ["bus:ctl/greeter"]
    assert [listener["pattern"] for listener in routing["listeners"]] == ["*"]


def test_who_handles_an_event_in_delivery_order(served: Bus, client: LineClient) -> None:
    served.register_listener("greet.hello", lambda *a: None)
    routing = client.result("who_handles", {"name": "greet.hello"})
    assert routing["command"] is None
    assert [x["pattern"] for x in routing["listeners"]] == ["greet.*", "*", "greet.hello"]
    orders = [x["order"] for x in routing["listeners"]]
    assert orders == sorted(orders)
    assert routing["suggestions"] == []


def test_who_handles_nothing_suggests(served: Bus, client: LineClient) -> None:
    served.register_listener("lights.on", lambda *a: None)
    # '*' matches everything: take it away to see a name nothing handles.
    for handler in served.router.listeners():
        if handler.name == "*":
            served.router.remove(handler)
    routing = client.result("who_handles", {"name": "say_hallo"})
    assert routing["command"] is None
    assert routing["listeners"] == []
    assert "say_hello" in routing["suggestions"]


# -- traces ----------------------------------------------------------------------------------


def test_traces_recent_and_by_id(served: Bus, client: LineClient) -> None:
    assert client.result("execute", {"name": "say_hello", "args": ["t"]})["value"] == "Hello, t!"
    data = client.result("traces", {"limit": 1})
    spans = [s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["name"] for s in spans} == {"say_hello"}
    assert {s["kind"] for s in spans} == {2, 3}  # SERVER, CLIENT
    trace_id = spans[0]["traceId"]
    again = client.result("traces", {"trace_id": trace_id})
    assert again == data
    assert client.result("traces", {"trace_id": "0" * 31 + "1"}) == {"resourceSpans": []}


def test_traces_bad_params(client: LineClient) -> None:
    for params, param in [
        ({"limit": 0}, "limit"),
        ({"limit": "3"}, "limit"),
        ({"limit": True}, "limit"),
        ({"trace_id": "xyz"}, "trace_id"),
        ({"trace_id": "g" * 32}, "trace_id"),
        ({"trace": 1}, "trace"),
    ]:
        error = client.error("traces", params)
        assert error["code"] == -32602, params
        assert error["data"]["param"] == param


# -- subscribe ------------------------------------------------------------------------------


def test_subscribe_activity_with_patterns(served: Bus, client: LineClient) -> None:
    sub = client.result("subscribe", {"topic": "activity", "patterns": ["greet.*"]})["subscription"]
    served.execute_command("say_hello", "not matched").result(5)
    served.fire_event("greet.one", 1)
    first = client.notification()
    assert first["method"] == "activity"
    assert first["params"]["subscription"] == sub
    activity = first["params"]["activity"]
    assert activity["kind"] == "event"
    assert activity["name"] == "greet.one"
    assert activity["args"] == "[1]"
    kinds = {first["params"]["activity"]["kind"]}
    while len(kinds) < 2:
        kinds.add(client.notification()["params"]["activity"]["kind"])
    assert kinds == {"event", "delivery"}
    assert client.result("unsubscribe", {"subscription": sub}) == {"dropped": 0}
    error = client.error("unsubscribe", {"subscription": sub})
    assert error["code"] == -32007
    assert error["data"]["subscription"] == sub


def test_subscribe_spans_batches_otlp(served: Bus, client: LineClient) -> None:
    sub = client.result("subscribe", {"topic": "spans", "patterns": ["say_*"]})["subscription"]
    served.fire_event("greet.unseen")
    served.execute_command("say_hello", "s").result(5)
    served.flush_traces(5)
    note = client.notification()
    assert note["method"] == "spans"
    assert note["params"]["subscription"] == sub
    data = note["params"]["data"]
    spans = [s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["name"] for s in spans} == {"say_hello"}
    assert len(spans) == 2
    client.result("unsubscribe", {"subscription": sub})
    assert served.spans._observers == ()


def test_closing_the_connection_ends_its_subscriptions(served: Bus) -> None:
    c = LineClient(served.address)  # type: ignore[arg-type]
    c.result("subscribe", {"topic": "activity"})
    c.result("subscribe", {"topic": "spans"})
    assert len(served.observer.watchers) == 1
    c.close()
    deadline = time.monotonic() + 5
    while (served.observer.watchers or served.spans._observers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.observer.watchers == ()
    assert served.spans._observers == ()


def test_subscribe_bad_params(client: LineClient) -> None:
    for params, param in [
        ({}, "topic"),
        ({"topic": "everything"}, "topic"),
        ({"topic": "activity", "patterns": "*"}, "patterns"),
        ({"topic": "activity", "patterns": []}, "patterns"),
        ({"topic": "activity", "patterns": ["a b"]}, "patterns"),
        ({"topic": "activity", "patterns": [3]}, "patterns"),
        ({"topic": "activity", "buffer": 0}, "buffer"),
        ({"topic": "activity", "buffer": 1.5}, "buffer"),
    ]:
        error = client.error("subscribe", params)
        assert error["code"] == -32602, params
        assert error["data"]["param"] == param, params


def test_unsubscribe_bad_params(client: LineClient) -> None:
    error = client.error("unsubscribe", {})
    assert (error["code"], error["data"]["param"]) == (-32602, "subscription")
    assert client.error("unsubscribe", {"subscription": "1"})["code"] == -32007


# -- request errors ----------------------------------------------------------------------------


def test_parse_error_has_position(client: LineClient) -> None:
    client.send_raw(b'{"jsonrpc": "2.0", "id": 1, "method": }\n')
    reply = client.read()
    assert reply is not None
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["data"]["position"] == 38


def test_not_utf8_is_a_parse_error(client: LineClient) -> None:
    client.send_raw(b'{"a": "\xff"}\n')
    reply = client.read()
    assert reply is not None
    assert reply["error"]["code"] == -32700
    assert reply["error"]["data"]["position"] == 7


@pytest.mark.parametrize(
    "line",
    [b"[]", b'[{"jsonrpc": "2.0", "id": 1, "method": "describe"}]', b"3", b'"describe"', b"null"],
)
def test_not_a_request_object(client: LineClient, line: bytes) -> None:
    client.send_raw(line + b"\n")
    reply = client.read()
    assert reply is not None
    assert reply["error"]["code"] == -32600
    assert reply["id"] is None
    assert client.result("describe")["name"] == "ctl"


@pytest.mark.parametrize(
    ("message", "rid"),
    [
        ({"id": 1, "method": "describe"}, 1),
        ({"jsonrpc": "1.0", "id": 2, "method": "describe"}, 2),
        ({"jsonrpc": "2.0", "id": 3}, 3),
        ({"jsonrpc": "2.0", "id": 4, "method": 4}, 4),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "describe"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "describe"}, None),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "describe"}, None),
        ({"jsonrpc": "2.0", "id": None, "method": "describe"}, None),
    ],
)
def test_invalid_request(client: LineClient, message: dict[str, Any], rid: Any) -> None:
    client.send(message)
    reply = client.read()
    assert reply is not None
    assert reply["error"]["code"] == -32600
    assert reply["id"] == rid


def test_unknown_method_lists_methods(client: LineClient) -> None:
    error = client.error("explode")
    assert error["code"] == -32601
    assert "describe" in error["data"]["methods"]


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("describe", [], "params"),
        ("describe", {"verbose": True}, "verbose"),
        ("execute", {}, "name"),
        ("execute", {"name": 3}, "name"),
        ("execute", {"name": ""}, "name"),
        ("execute", {"name": "say_hello", "args": "Ada"}, "args"),
        ("execute", {"name": "say_hello", "kwargs": []}, "kwargs"),
        ("execute", {"name": "say_hello", "timeout": "soon"}, "timeout"),
        ("execute", {"name": "say_hello", "timeout": -1}, "timeout"),
        ("execute", {"name": "say_hello", "timeout": True}, "timeout"),
        ("fire", {"name": None}, "name"),
        ("fire", {"name": "x", "args": {}}, "args"),
        ("who_handles", {}, "name"),
        ("who_handles", {"name": ["x"]}, "name"),
    ],
)
def test_wrong_params_name_the_param(
    client: LineClient, method: str, params: Any, param: str
) -> None:
    error = client.error(method, params)
    assert error["code"] == -32602
    assert error["data"]["param"] == param


def test_blank_lines_are_ignored(client: LineClient) -> None:
    client.send_raw(b"\n  \n\r\n")
    assert client.result("describe")["name"] == "ctl"


def test_a_line_over_the_limit_is_refused_and_closes(served: Bus, client: LineClient) -> None:
    from bus.control._conn import MAX_LINE

    big = b'{"jsonrpc": "2.0", "id": 1, "method": "describe", "params": {"x": "'
    client.send_raw(big + b"x" * (MAX_LINE + 10))
    reply = client.read()
    assert reply is not None
    assert reply["error"]["code"] == -32600
    assert reply["error"]["data"]["limit"] == MAX_LINE
    assert client.at_eof()
    other = LineClient(served.address)  # type: ignore[arg-type]
    assert other.result("describe")["name"] == "ctl"
    other.close()


def test_a_line_at_the_limit_is_served(client: LineClient) -> None:
    from bus.control._conn import MAX_LINE

    head = (
        b'{"jsonrpc": "2.0", "id": 7, "method": "fire", "params": {"name": "greet.big", "args": ["'
    )
    tail = b'"]}}'
    line = head + b"x" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(line) == MAX_LINE
    client.send_raw(line + b"\n")
    assert client.reply(7)["result"] == {"listeners": 2}


def test_last_request_without_newline_is_served_at_eof(served: Bus) -> None:
    c = LineClient(served.address)  # type: ignore[arg-type]
    c.send_raw(b'{"jsonrpc": "2.0", "id": 9, "method": "describe"}')
    c.sock.shutdown(socket.SHUT_WR)
    assert c.reply(9)["result"]["name"] == "ctl"
    assert c.at_eof()
    c.close()


def test_a_lone_surrogate_comes_back_as_valid_utf8(served: Bus, client: LineClient) -> None:
    client.send_raw(
        b'{"jsonrpc": "2.0", "id": 1, "method": "execute", '
        b'"params": {"name": "say_hello", "args": ["\\ud800 \xc2\xb0"]}}\n'
    )
    raw = b""
    while not raw.endswith(b"\n"):
        raw += client.sock.recv(65536)
    raw.decode("utf-8")  # strict: no lone surrogate on the wire
    assert json.loads(raw)["result"] == {"value": "Hello, \ud800 \u00b0!"}


def test_a_failing_span_observer_harms_nothing(served: Bus, client: LineClient) -> None:
    calls: list[int] = []

    def broken(spans: list[Any]) -> None:
        calls.append(len(spans))
        raise RuntimeError("observer bug")

    handle = served.spans.observe(broken)
    sub = client.result("subscribe", {"topic": "spans"})["subscription"]
    served.execute_command("say_hello", "o").result(5)
    served.flush_traces(5)
    note = client.notification()
    assert note["params"]["subscription"] == sub
    assert calls
    assert any(s.name == "say_hello" for s in served.spans.spans())
    handle.dispose()
    handle.dispose()
    assert len(served.spans._observers) == 1


# -- replay_of and wait_idle -------------------------------------------------------------

RECORDED = {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}


def test_replay_of_marks_the_server_span_and_links_the_recording(
    served: Bus, client: LineClient
) -> None:
    params = {"name": "say_hello", "args": ["Ada"], "replay_of": RECORDED}
    assert client.result("execute", params) == {"value": "Hello, Ada!"}
    assert served.flush_traces(10)
    (server,) = [
        s
        for s in served.spans.spans()
        if s.attributes
        and s.attributes.get("rpc.method") == "say_hello"
        and s.kind.name == "SERVER"
    ]
    assert server.attributes is not None
    assert server.attributes["bus.replayed"] is True
    (link,) = server.links
    assert format(link.context.trace_id, "032x") == RECORDED["trace_id"]
    assert format(link.context.span_id, "016x") == RECORDED["span_id"]


def test_replay_of_marks_the_producer_span_of_an_event(served: Bus, client: LineClient) -> None:
    params = {"name": "greet.world", "args": [7], "replay_of": RECORDED}
    assert client.result("fire", params) == {"listeners": 2}
    served.wait_idle(5)
    assert served.flush_traces(10)
    producers = [s for s in served.spans.spans() if s.name == "send greet.world"]
    assert len(producers) == 1
    assert producers[0].attributes is not None
    assert producers[0].attributes["bus.replayed"] is True
    consumers = [s for s in served.spans.spans() if s.name == "process greet.world"]
    assert consumers, "the listeners ran"
    assert all(not (s.attributes or {}).get("bus.replayed") for s in consumers)


@pytest.mark.parametrize(
    "value",
    [
        "0af7651916cd43dd8448eb211c80319c",
        {"trace_id": RECORDED["trace_id"]},
        {"trace_id": "XYZ", "span_id": RECORDED["span_id"]},
        {"trace_id": "0" * 32, "span_id": RECORDED["span_id"]},
        {**RECORDED, "extra": 1},
    ],
)
def test_a_malformed_replay_of_is_refused(client: LineClient, value: Any) -> None:
    error = client.error("execute", {"name": "say_hello", "args": ["x"], "replay_of": value})
    assert error["code"] == -32602
    assert error["data"]["param"] == "replay_of"
    error = client.error("fire", {"name": "greet.world", "replay_of": value})
    assert error["data"]["param"] == "replay_of"


def test_wait_idle_answers_once_the_work_is_done(served: Bus, client: LineClient) -> None:
    assert "wait_idle" in client.result("describe")["methods"]
    client.result("fire", {"name": "greet.world", "args": [3]})
    assert client.result("wait_idle", {"timeout": 10}) == {"idle": True}
    assert (3,) in service_of(served, "greeter").heard
    error = client.error("wait_idle", {"timeout": "soon"})
    assert error["data"]["param"] == "timeout"


# -- lossless span subscriptions ------------------------------------------------------


def test_a_lossless_subscription_is_for_spans_and_holds_tracing_while_open(
    served: Bus, client: LineClient
) -> None:
    error = client.error("subscribe", {"topic": "activity", "lossless": True})
    assert (error["code"], error["data"]["param"]) == (-32602, "lossless")
    assert "spans topic only" in error["message"]
    error = client.error("subscribe", {"topic": "spans", "lossless": "yes"})
    assert (error["code"], error["data"]["param"]) == (-32602, "lossless")
    assert served.inspect()["tracing"]["lossless_holds"] == 0

    sub = client.result("subscribe", {"topic": "spans", "lossless": True})["subscription"]
    assert served.inspect()["tracing"]["lossless_holds"] == 1
    client.result("unsubscribe", {"subscription": sub})
    assert served.inspect()["tracing"]["lossless_holds"] == 0

    # A connection that ends lets go of its holds too.
    other = LineClient(served.address)  # type: ignore[arg-type]
    other.result("subscribe", {"topic": "spans", "lossless": True})
    assert served.inspect()["tracing"]["lossless_holds"] == 1
    other.close()
    deadline = time.monotonic() + 5
    while served.inspect()["tracing"]["lossless_holds"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.inspect()["tracing"]["lossless_holds"] == 0


def test_a_lossless_reader_that_stops_reading_is_dropped_for_not_the_bus_stalled(
    served: Bus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import bus.control._conn as conn

    monkeypatch.setattr(conn, "LOSSLESS_WAIT", 0.2)
    stuck = LineClient(served.address, rcvbuf=4096)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger="bus.control")
    try:
        stuck.result("subscribe", {"topic": "spans", "lossless": True, "buffer": 1})
        # It reads nothing, and its socket fills with the first batches: a
        # batch each (the flush), of large spans.
        for i in range(100):
            served.execute_command("say_hello", "x" * 3000 + str(i)).result(5)
            assert served.flush_traces(30)  # the trace thread waited 0.2 s once, then went on
        assert served.inspect()["tracing"]["dropped"] == 0
        notes = []
        while not any(n["method"] == "dropped" for n in notes):
            notes.append(stuck.notification())
        dropped = next(n for n in notes if n["method"] == "dropped")
        assert dropped["params"]["count"] >= 1
        # It waited once, then dropped like any subscription: not 0.2 s a batch.
        waits = [r for r in caplog.records if "took no spans" in r.getMessage()]
        assert len(waits) == 1, [r.getMessage() for r in waits]
    finally:
        stuck.close()
