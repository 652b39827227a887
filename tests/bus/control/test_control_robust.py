"""The control endpoint under abuse: slow readers, hang-ups, crowds and fuzzed frames.

Whatever one client does, the bus keeps its pace and every other client is
served.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus, Service, command, listener
from tests.bus.control.control_client import LineClient

pytestmark = pytest.mark.timeout(60)


class Lights(Service):
    name = "lights"

    def on_start(self) -> None:
        self.seen = 0

    @command("echo")
    def echo(self, value: Any = None) -> Any:
        return value

    @command("nap")
    def nap(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @command("unprintable")
    def unprintable(self) -> None:
        raise Unprintable()

    @listener("lights.*")
    def on_lights(self, *args: Any, **kwargs: Any) -> None:
        self.seen += 1


class Unprintable(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.fixture
def served(serve: Callable[..., Bus]) -> Bus:
    return serve("robust", Lights())


def address(bus: Bus) -> Path:
    assert bus.address is not None
    return bus.address


def read_out(subscriber: LineClient) -> tuple[int, list[dict[str, Any]]]:
    """Everything a subscriber was sent: how many activity lines, and the drop reports."""
    _, lines = subscriber.until(subscriber.request("describe"))
    received = sum(1 for line in lines if line["method"] == "activity")
    return received, [line["params"] for line in lines if line["method"] == "dropped"]


def limited(served: Bus, monkeypatch: pytest.MonkeyPatch, **limits: float) -> Any:
    """The control server of ``served``, with ``limits`` set for this test only."""
    server = served._control
    assert server is not None
    for name, value in limits.items():
        monkeypatch.setattr(server, name, value)
    return server


def test_a_handler_error_without_text_is_answered_and_the_connection_lives(served: Bus) -> None:
    with LineClient(address(served)) as c:
        error = c.error("execute", {"name": "unprintable"})
        assert error["message"] == "Unprintable: <exception str() failed>"
        assert error["data"]["type"] == "Unprintable"
        assert error["data"]["message"] == "<exception str() failed>"
        assert "Traceback" in error["data"]["traceback"]
        assert c.call("execute", {"name": "echo", "args": [1]})["result"] == {"value": 1}


# -- slow readers -------------------------------------------------------------------------------


def test_a_subscriber_that_never_reads_does_not_block_the_bus(served: Bus) -> None:
    events = 20_000
    slow = LineClient(address(served), rcvbuf=4096)
    subscribed, _ = slow.until(slow.request("subscribe", {"topic": "activity", "buffer": 100}))
    assert subscribed["result"]["subscription"] == 1
    started = time.monotonic()
    for i in range(events):
        served.fire_event("lights.changed", i)
    firing = time.monotonic() - started
    assert served.wait_idle(30)
    # Nothing has been read yet: the writer is stuck on a full socket and the
    # subscription's buffer is full; the bus went on without waiting.
    assert firing < 20, f"firing took {firing:.1f}s"
    assert served._runtimes["lights"].service.seen == events  # type: ignore[union-attr]
    other = LineClient(address(served))
    assert other.result("describe")["name"] == "robust"
    other.close()
    # Now the slow client reads everything: each activity arrives or is counted.
    produced = 2 * events  # one "event" and one "delivery" per fire
    received = dropped = 0
    _, lines = slow.until(slow.request("describe"))
    reports = []
    for line in lines:
        if line["method"] == "activity":
            received += 1
        else:
            assert line["method"] == "dropped"
            assert line["params"]["subscription"] == 1
            reports.append(line["params"])
            dropped += line["params"]["count"]
    assert reports, "no dropped notification"
    assert all(r["count"] > 0 for r in reports)
    assert reports[-1]["total"] == dropped
    assert received + dropped == produced
    assert dropped > produced // 2
    assert slow.result("unsubscribe", {"subscription": 1}) == {"dropped": dropped}
    slow.close()


def test_a_client_that_pipelines_without_reading_only_slows_itself(served: Bus) -> None:
    greedy = LineClient(address(served), rcvbuf=4096)
    payload = "x" * 1000
    line = (
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "execute",
                "params": {"name": "echo", "args": [payload]},
            }
        ).encode()
        + b"\n"
    )

    def flood() -> None:
        try:
            for _ in range(5000):
                greedy.send_raw(line)
        except OSError:
            pass

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    other = LineClient(address(served))
    for _ in range(20):
        assert other.result("execute", {"name": "echo", "args": [1]}) == {"value": 1}
    other.close()
    greedy.sock.close()
    flooder.join(20)
    assert not flooder.is_alive()


# -- hang-ups -----------------------------------------------------------------------------------


def test_a_client_that_hangs_up_mid_stream(served: Bus) -> None:
    for _ in range(5):
        c = LineClient(address(served))
        c.result("subscribe", {"topic": "activity"})
        c.result("subscribe", {"topic": "spans"})
        c.request("execute", {"name": "nap", "args": [0.05]})
        for i in range(200):
            served.fire_event("lights.on", i)
        # Reset, not a polite close: the server must take it in its stride.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    assert served.wait_idle(10)
    deadline = time.monotonic() + 10
    while served._control.connections and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert served._control.connections == 0  # type: ignore[union-attr]
    assert served.observer.watchers == ()
    assert served.spans._observers == ()
    assert served.execute_command("echo", 5).result(5) == 5


def test_a_half_closed_subscriber_keeps_receiving(served: Bus) -> None:
    c = LineClient(address(served))
    c.send_raw(
        b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": '
        b'{"topic": "activity", "patterns": ["lights.*"]}}\n'
    )
    c.sock.shutdown(socket.SHUT_WR)  # `... | socat - UNIX-CONNECT:...` does this
    assert c.read() == {"jsonrpc": "2.0", "id": 1, "result": {"subscription": 1}}
    served.fire_event("lights.off")
    note = c.read()
    assert note is not None
    assert note["params"]["activity"]["name"] == "lights.off"
    c.close()
    deadline = time.monotonic() + 10
    while served.observer.watchers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.observer.watchers == ()


def test_eof_waits_for_commands_in_flight(served: Bus) -> None:
    c = LineClient(address(served))
    c.request("execute", {"name": "nap", "args": [0.2]}, rid="nap")
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.read()
    assert reply == {"jsonrpc": "2.0", "id": "nap", "result": {"value": 0.2}}
    assert c.read() is None
    c.close()


# -- crowds --------------------------------------------------------------------------------------


def test_many_clients_at_once(served: Bus) -> None:
    clients = 24
    per_client = 25
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def work(n: int) -> None:
        try:
            c = LineClient(address(served))
            barrier.wait(10)
            ids = [
                c.request("execute", {"name": "echo", "args": [[n, i]]}) for i in range(per_client)
            ]
            c.request("subscribe", {"topic": "activity", "patterns": [f"lights.c{n}"]}, rid="sub")
            got = {}
            for rid in [*ids, "sub"]:
                reply, _ = c.until(rid)
                got[rid] = reply["result"]
            for i, rid in enumerate(ids):
                if got[rid] != {"value": [n, i]}:
                    failures.append(f"client {n}: {got[rid]}")
            served.fire_event(f"lights.c{n}", n)
            while True:
                note = c.read()
                assert note is not None
                if note["params"]["activity"]["kind"] == "event":
                    break
            if note["params"]["activity"]["name"] != f"lights.c{n}":
                failures.append(f"client {n} saw {note}")
            c.close()
        except Exception as exc:  # reported below, with the client's number
            failures.append(f"client {n}: {exc!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert not failures
    assert all(not t.is_alive() for t in threads)


# -- fuzzing ---------------------------------------------------------------------------------------

_METHODS = ["describe", "inspect", "execute", "fire", "who_handles", "subscribe",
            "unsubscribe", "traces", "nope", ""]  # fmt: skip
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_params = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["echo", "lights.on", "x y", ""]) | _json_values,
        "args": st.lists(_json_values, max_size=3) | _json_values,
        "kwargs": st.dictionaries(st.sampled_from(["value", "seconds", "zzz"]), _json_values)
        | _json_values,
        "timeout": st.sampled_from([0, 0.05, None, -1, "1"]),
        "topic": st.sampled_from(["activity", "spans", "other"]) | _json_values,
        "patterns": st.lists(st.sampled_from(["*", "lights.*", "bad pattern"]), max_size=2)
        | _json_values,
        "buffer": st.integers(-2, 20) | _json_values,
        "subscription": st.integers(0, 3) | _json_values,
        "limit": st.integers(-1, 30) | _json_values,
        "trace_id": st.text("0123456789abcdefg", min_size=31, max_size=33) | _json_values,
    },
)
_requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]) | _json_values,
        "id": st.integers(-5, 1 << 70) | st.text(max_size=10) | _json_values,
        "method": st.sampled_from(_METHODS) | _json_values,
        "params": _params | _json_values,
    },
)
_frames = (
    _requests.map(lambda r: json.dumps(r).encode())
    | st.lists(_requests, max_size=3).map(lambda r: json.dumps(r).encode())
    | _json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
    | _requests.map(lambda r: json.dumps(r).encode()).flatmap(
        lambda b: st.integers(0, max(0, len(b) - 1)).map(lambda n: b[:n])  # cut short
    )
    | st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"1" * 5000, b"NaN", b"\x00\r\n"])
)


@pytest.fixture(scope="module")
def fuzz_bus() -> Iterator[Bus]:
    directory = Path(tempfile.mkdtemp(prefix="bfz", dir="/tmp"))
    bus = Bus(name="fuzz", control=directory / "fuzz.sock")
    try:
        bus.add_service(Lights())
        yield bus
    finally:
        bus.close()
        shutil.rmtree(directory, ignore_errors=True)


def _check_reply(message: dict[str, Any]) -> None:
    if "id" not in message:  # a notification from a subscription the fuzzer made
        assert message["method"] in ("activity", "spans", "dropped"), message
        return
    assert message["jsonrpc"] == "2.0"
    assert ("result" in message) != ("error" in message), message
    if "error" in message:
        error = message["error"]
        assert isinstance(error["code"], int)
        assert isinstance(error["message"], str)
        assert error["code"] != -32603, error  # never a server bug


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(_frames, min_size=1, max_size=4))
def test_fuzzed_frames_are_answered_or_refused(fuzz_bus: Bus, frames: list[bytes]) -> None:
    c = LineClient(address(fuzz_bus), timeout=20)
    try:
        for frame in frames:
            c.send_raw(frame.replace(b"\n", b" ") + b"\n")
        reply, before = c.until(c.request("describe", rid="probe-after-fuzz"))
        assert reply["result"]["name"] == "fuzz"
        for message in before:
            _check_reply(message)
    finally:
        c.close()
    # Another client is served as if nothing happened.
    other = LineClient(address(fuzz_bus))
    try:
        assert other.result("execute", {"name": "echo", "args": ["ok"]}) == {"value": "ok"}
    finally:
        other.close()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=2000))
def test_random_bytes_never_hurt_the_server(fuzz_bus: Bus, data: bytes) -> None:
    c = LineClient(address(fuzz_bus), timeout=20)
    try:
        c.send_raw(data + b"\n")
        reply, before = c.until(c.request("describe", rid="probe-after-bytes"))
        assert reply["result"]["name"] == "fuzz"
        for message in before:
            _check_reply(message)
    finally:
        c.close()


def test_a_client_beyond_the_limit_is_told_why_and_the_others_are_served(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, max_connections=2)
    first, second = LineClient(address(served)), LineClient(address(served))
    for c in (first, second):  # both attached: the server has answered each
        c.request("describe", rid="hello")
        assert c.until("hello")[0]["result"]["name"] == served.name
    third = LineClient(address(served))
    refusal = third.read()
    assert refusal is not None
    assert refusal["id"] is None
    assert refusal["error"]["code"] == -32008
    assert refusal["error"]["data"] == {"limit": 2}
    assert refusal["error"]["message"] == "bus robust is refusing connections: 2 clients attached"
    assert third.read() is None  # then closed
    assert server.turned_away == 1
    first.request("execute", {"name": "echo", "args": [7]}, rid="still")
    assert first.until("still")[0]["result"] == {"value": 7}
    first.close()
    for _ in range(200):  # the server forgets a closed client
        if server.connections < 2:
            break
        time.sleep(0.01)
    fourth = LineClient(address(served))
    fourth.request("describe", rid="room")
    assert fourth.until("room")[0]["result"]["name"] == served.name
    for c in (second, third, fourth):
        c.close()


# -- hostile patterns and names ------------------------------------------------------------------

HOSTILE = "*a" * 11 + "*b"


@pytest.mark.timeout(20)
def test_a_hostile_pattern_does_not_freeze_the_bus(served: Bus) -> None:
    # As a regex, this subscription and a fire of a 34-letter name froze the
    # whole process for 4 s; every letter more doubled it.
    c = LineClient(address(served))
    c.result("subscribe", {"topic": "activity", "patterns": [HOSTILE, "lights.*"]})
    served.register_listener(HOSTILE, lambda *a, **k: None)
    for length in (34, 100, 255):
        assert c.result("fire", {"name": "a" * length}) == {"listeners": 0}
        assert c.result("who_handles", {"name": "a" * length})["listeners"] == []
    assert c.result("fire", {"name": "a" * 254 + "b"}) == {"listeners": 1}
    served.fire_event("lights.on")
    assert served.wait_idle(10)
    names = sorted(c.notification()["params"]["activity"]["name"] for _ in range(4))
    assert names == ["a" * 254 + "b"] * 2 + ["lights.on"] * 2  # each event and its delivery
    c.close()


def test_names_and_patterns_over_the_cap_are_refused_in_one_short_line(served: Bus) -> None:
    c = LineClient(address(served))
    for method in ("fire", "execute", "who_handles"):
        error = c.error(method, {"name": "a" * 100_000})
        assert error["code"] == -32602
        assert error["data"] == {"param": "name"}
        assert "longer than 255 characters" in error["message"]
        assert len(error["message"]) < 200
    error = c.error("subscribe", {"topic": "activity", "patterns": ["*a" * 200]})
    assert (error["code"], error["data"]) == (-32602, {"param": "patterns"})
    assert "longer than 255 characters" in error["message"]
    error = c.error("subscribe", {"topic": "activity", "patterns": ["a"] * 65})
    assert (error["code"], error["data"]) == (-32602, {"param": "patterns"})
    assert "at most 64" in error["message"]
    assert c.result("describe")["name"] == "robust"
    c.close()


# -- subscriptions and memory, per connection and in all -----------------------------------------


def test_subscriptions_per_connection_are_capped(served: Bus) -> None:
    server = served._control
    assert server is not None
    c = LineClient(address(served))
    ids = [
        c.result("subscribe", {"topic": "activity", "patterns": [f"none.{n}"]})["subscription"]
        for n in range(32)
    ]
    error = c.error("subscribe", {"topic": "spans"})
    assert error["code"] == -32009
    assert error["data"] == {"limit": 32}
    assert "too many subscriptions: 32" in error["message"]
    # All of them are checked as one: one watch on the bus, not 32.
    assert len(served.observer.watchers) == 1
    assert c.result("unsubscribe", {"subscription": ids[0]}) == {"dropped": 0}
    c.result("subscribe", {"topic": "activity", "patterns": ["lights.*"]})
    served.fire_event("lights.on")
    note = c.notification()
    assert note["params"]["activity"]["name"] == "lights.on"
    other = LineClient(address(served))  # the cap is per connection
    other.result("subscribe", {"topic": "activity"})
    assert len(served.observer.watchers) == 2
    for sid in [*ids[1:], 33]:
        c.result("unsubscribe", {"subscription": sid})
    assert len(served.observer.watchers) == 1
    c.close()
    other.close()


def test_a_subscriber_that_never_reads_holds_bounded_memory(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, max_queued_bytes=64 * 1024)
    slow = LineClient(address(served), rcvbuf=4096)
    # A buffer of a million notifications: only the byte bound can stop it.
    slow.result("subscribe", {"topic": "activity", "buffer": 1_000_000})
    payload = "x" * 2000
    fires = 2000
    for i in range(fires):
        served.fire_event("lights.changed", i, payload)
        assert server.queued_bytes <= 64 * 1024 + 8 * 1024
    assert served.wait_idle(30)
    received, reports = read_out(slow)
    assert reports, "nothing dropped: the queue grew without bound"
    dropped = reports[-1]["total"]
    assert received + dropped == 2 * fires  # each arrived, or was counted
    assert received < fires // 2
    slow.close()


def test_all_subscribers_together_hold_bounded_memory(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, max_queued_bytes=1 << 20, max_total_bytes=128 * 1024)
    slow = [LineClient(address(served), rcvbuf=4096) for _ in range(3)]
    for c in slow:
        c.result("subscribe", {"topic": "activity", "buffer": 1_000_000})
    payload = "y" * 2000
    fires = 1000
    for i in range(fires):
        served.fire_event("lights.changed", i, payload)
        assert server.queued_bytes <= 128 * 1024 + 8 * 1024
    assert served.wait_idle(30)
    for c in slow:
        received, reports = read_out(c)
        dropped = reports[-1]["total"] if reports else 0
        assert received + dropped == 2 * fires
    assert server.queued_bytes == 0  # all written: nothing is counted twice or lost
    for c in slow:
        c.close()


def test_replies_to_a_client_that_does_not_read_are_bounded_in_bytes(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, max_queued_bytes=32 * 1024)
    greedy = LineClient(address(served), rcvbuf=4096)
    big = "z" * 20_000
    requests = 100
    for n in range(requests):
        greedy.request("execute", {"name": "echo", "args": [big]}, rid=f"w{n}")
    greedy.request("describe", rid="last")
    # The reader stops taking requests once a reply has no room; what is
    # queued stays near the bound (one reply may overshoot it).
    other = LineClient(address(served))
    for _ in range(5):
        assert other.result("inspect")["bus"]["name"] == "robust"
        assert server.queued_bytes <= 32 * 1024 + 2 * len(big) + 4096
    other.close()
    assert greedy.reply("last")["result"]["name"] == "robust"
    for n in range(requests):  # every request was served, none lost
        assert greedy.reply(f"w{n}")["result"] == {"value": big}
    assert server.queued_bytes == 0
    greedy.close()


# -- time limits, and a full server -------------------------------------------------------------


def _closing_reason(c: LineClient) -> dict[str, Any]:
    """Read to the end: the last line must be the server's reason for hanging up."""
    last = None
    while True:
        message = c.read()
        if message is None:
            break
        last = message
    assert last is not None
    assert last["id"] is None, last
    assert last["error"]["code"] == -32010
    error: dict[str, Any] = last["error"]
    return error


def test_half_lines_and_silence_do_not_hold_the_slots(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, hello_timeout=1.0, line_timeout=1.0, max_connections=3)
    half = LineClient(address(served))
    assert half.result("describe")["name"] == "robust"
    half.send_raw(b'{"jsonrpc": "2.0", "id": 2, "meth')  # and never the rest
    silent = LineClient(address(served))
    trickle = LineClient(address(served))
    trickle.send_raw(b"{")
    turned_away = LineClient(address(served))  # accepted after the three: no room
    assert turned_away.read()["error"]["code"] == -32008  # type: ignore[index]
    error = _closing_reason(half)
    assert error["data"] == {"reason": "incomplete", "timeout": 1.0}
    assert error["message"] == "closing the connection: a request line was left unfinished for 1 s"
    assert _closing_reason(silent)["data"] == {"reason": "silent", "timeout": 1.0}
    assert _closing_reason(trickle)["data"]["reason"] in ("silent", "incomplete")
    for _ in range(500):  # the server forgets them as their threads end
        if server.connections == 0:
            break
        time.sleep(0.01)
    fresh = LineClient(address(served))
    assert fresh.result("describe")["name"] == "robust"
    assert server.expired == 3
    for c in (half, silent, trickle, turned_away, fresh):
        c.close()


def test_an_idle_client_is_closed_and_a_subscribed_one_is_not(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited(served, monkeypatch, idle_timeout=0.5)
    idle = LineClient(address(served))
    watching = LineClient(address(served))
    busy = LineClient(address(served))
    assert idle.result("describe")["name"] == "robust"
    watching.result("subscribe", {"topic": "activity", "patterns": ["lights.*"]})
    busy.request("execute", {"name": "nap", "args": [1.5]}, rid="nap")
    error = _closing_reason(idle)
    assert error["data"] == {"reason": "idle", "timeout": 0.5}
    # The idle one is gone; the others, idle as long, are not.
    reply, _ = busy.until("nap")
    assert reply["result"] == {"value": 1.5}
    served.fire_event("lights.off")
    assert watching.notification()["params"]["activity"]["name"] == "lights.off"
    for c in (idle, watching, busy):
        c.close()


def test_a_subscriber_that_stops_reading_is_closed(
    served: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = limited(served, monkeypatch, stall_timeout=0.5)
    stuck = LineClient(address(served), rcvbuf=4096)
    stuck.result("subscribe", {"topic": "activity"})
    payload = "s" * 4000
    deadline = time.monotonic() + 30
    i = 0
    while server.stalled == 0 and time.monotonic() < deadline:
        served.fire_event("lights.changed", i, payload)  # until its socket is full
        i += 1
        if i % 100 == 0:
            served.wait_idle(5)
            time.sleep(0.05)
    assert server.stalled == 1
    for _ in range(500):
        if server.connections == 0:
            break
        time.sleep(0.01)
    assert server.connections == 0
    assert server.queued_bytes == 0
    assert served.observer.watchers == ()
    stuck.close()


@pytest.mark.timeout(15)
def test_a_full_server_refuses_at_once(served: Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each refusal used to wait 0.25 s for a slot: 200 clients at once filled
    # the listen queue, and discovery saw no bus at all.
    server = limited(served, monkeypatch, max_connections=1)
    holder = LineClient(address(served))
    assert holder.result("describe")["name"] == "robust"
    for _ in range(100):
        c = LineClient(address(served))
        refusal = c.read()
        assert refusal is not None
        assert refusal["error"]["code"] == -32008
        assert refusal["error"]["message"] == (
            "bus robust is refusing connections: 1 clients attached"
        )
        c.close()
    assert server.turned_away == 100
    assert holder.result("describe")["name"] == "robust"
    holder.close()


def test_refusals_are_logged_rate_limited(
    served: Bus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import bus.control._server as control_server

    server = limited(served, monkeypatch, max_connections=1)
    holder = LineClient(address(served))
    assert holder.result("describe")["name"] == "robust"
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="bus.control"):
        for _ in range(200):
            c = LineClient(address(served))
            assert c.read() is not None
            c.close()
        monkeypatch.setattr(control_server, "peer_uid", lambda sock: os.getuid() + 1)
        for _ in range(200):
            c = LineClient(address(served))
            assert c.at_eof()
            c.close()
        for _ in range(500):
            if server.refused == 200:
                break
            time.sleep(0.01)
    seconds = time.monotonic() - started
    assert (server.turned_away, server.refused) == (200, 200)
    lines = [r.getMessage() for r in caplog.records if r.name == "bus.control"]
    # Once a second at most for each kind, with the count skipped since.
    turned_away = [m for m in lines if m.startswith("turned away")]
    refused = [m for m in lines if m.startswith("refused a control connection from uid")]
    assert 1 <= len(turned_away) <= 1 + seconds, lines
    assert 1 <= len(refused) <= 1 + seconds, lines
    assert len(lines) == len(turned_away) + len(refused)
    holder.close()


def test_a_failed_service_is_answered_with_its_own_code(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A command of a failed service was answered -32000 through its future,
    # and -32603 "internal error" with a traceback when refused at once:
    # -32011 says what happened, with the service and the reason.
    from bus._core._stats import HandlerStats

    finish = HandlerStats.finish
    doomed: list[HandlerStats] = []

    def faulty(self: HandlerStats, elapsed: float, error: BaseException | None) -> None:
        if self in doomed:
            raise RuntimeError("a bug in the bus")
        finish(self, elapsed, error)

    monkeypatch.setattr(HandlerStats, "finish", faulty)

    class Doomed(Service):
        name = "doomed"

        @command("boom")
        def boom(self) -> str:
            # Raises: a call that succeeds is counted in C when the
            # accelerator runs (test_robustness says more).
            raise ValueError("never delivered")

    bus = Bus(name="failing", control=True, tracing=False)
    try:
        bus.add_service(Doomed())
        doomed.append(bus.router.command("boom").stats)
        assert bus.address is not None
        client = LineClient(bus.address)
        try:
            for when in ("running", "refused at once"):
                error = client.error("execute", {"name": "boom"})
                assert error["code"] == -32011, (when, error)
                assert error["data"]["type"] == "ServiceFailedError"
                assert error["data"]["service"] == "doomed"
                assert "died of RuntimeError: a bug in the bus" in error["data"]["reason"]
                assert error["message"].startswith("service 'doomed' has failed: its thread")
        finally:
            client.close()
    finally:
        bus.close()
