"""The control endpoint under abuse: slow readers, hang-ups, crowds and fuzzed frames.

Whatever one client does, the bus keeps its pace and every other client is
served.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus import Bus, Service, command, listener
from tests.bus.control_client import LineClient

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

    @listener("lights.*")
    def on_lights(self, *args: Any, **kwargs: Any) -> None:
        self.seen += 1


@pytest.fixture
def served(runtime_dir: Path) -> Iterator[Bus]:
    bus = Bus(name="robust", control=True)
    try:
        bus.add_service(Lights())
        yield bus
    finally:
        bus.close()


def address(bus: Bus) -> Path:
    assert bus.address is not None
    return bus.address


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
        assert other.result("execute", {"name": "echo", "args": [1]}) == {"result": 1}
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
    assert served._watchers == ()
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
    while served._watchers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served._watchers == ()


def test_eof_waits_for_commands_in_flight(served: Bus) -> None:
    c = LineClient(address(served))
    c.request("execute", {"name": "nap", "args": [0.2]}, rid="nap")
    c.sock.shutdown(socket.SHUT_WR)
    reply = c.read()
    assert reply == {"jsonrpc": "2.0", "id": "nap", "result": {"result": 0.2}}
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
                if got[rid] != {"result": [n, i]}:
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
        assert other.result("execute", {"name": "echo", "args": ["ok"]}) == {"result": "ok"}
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
    server = served._control
    assert server is not None
    monkeypatch.setattr(server, "max_connections", 2)
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
    assert first.until("still")[0]["result"] == {"result": 7}
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
