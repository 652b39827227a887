"""The control client against a small fake line server: demultiplexing, errors, lifetime."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from busctl._client import Client, ConnectionLost, RemoteError

pytestmark = pytest.mark.timeout(30)

Handler = Callable[["FakeServer", socket.socket, dict[str, Any]], None]


class FakeServer:
    """A one-connection-at-a-time JSON-lines server whose replies the test scripts."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.requests: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connections: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(os.fspath(path))
        self._listener.listen()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for line in conn.makefile("rb"):
                request = json.loads(line)
                self.requests.put(request)
                self.handler(self, conn, request)

    @staticmethod
    def send(conn: socket.socket, message: dict[str, Any]) -> None:
        conn.sendall((json.dumps(message) + "\n").encode())

    def close(self) -> None:
        self._listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def reply(conn: socket.socket, request: dict[str, Any], result: Any) -> None:
    FakeServer.send(conn, {"jsonrpc": "2.0", "id": request["id"], "result": result})


DESCRIBE = {"protocol": 1, "name": "fake", "pid": 1, "started_at": 0.0, "methods": []}


def basic(server: FakeServer, conn: socket.socket, request: dict[str, Any]) -> None:
    method = request["method"]
    if method == "describe":
        reply(conn, request, DESCRIBE)
    elif method == "execute":
        params = request["params"]
        if params["name"] == "boom":
            error = {
                "code": -32000,
                "message": "it broke",
                "data": {"type": "ValueError", "message": "it broke", "traceback": "Traceback..."},
            }
            server.send(conn, {"jsonrpc": "2.0", "id": request["id"], "error": error})
        elif params["name"] == "slow":
            pass  # never answered: the test answers out of order
        else:
            reply(conn, request, {"result": [params["args"], params["kwargs"]]})
    elif method == "subscribe":
        # A notification straight after the reply, as a real server may send.
        reply(conn, request, {"subscription": 7})
        activity = {"subscription": 7, "activity": {"kind": "event", "name": "x"}}
        server.send(conn, {"jsonrpc": "2.0", "method": "activity", "params": activity})
        dropped = {"subscription": 7, "count": 3, "total": 3}
        server.send(conn, {"jsonrpc": "2.0", "method": "dropped", "params": dropped})
    elif method == "unsubscribe":
        reply(conn, request, {"dropped": 3})
    elif method == "fire":
        reply(conn, request, {"listeners": 2})


@pytest.fixture
def sock_path() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bct-", dir="/tmp") as directory:
        yield Path(directory) / "fake.sock"


@pytest.fixture
def server(sock_path: Path) -> Iterator[FakeServer]:
    fake = FakeServer(sock_path, basic)
    yield fake
    fake.close()


def test_connect_fetches_describe(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client:
        assert client.name == "fake"
        assert client.info == DESCRIBE
        assert client.address == server.path
    assert client.closed


def test_unix_path_address_spelling(server: FakeServer) -> None:
    with Client.connect(f"unix:path={server.path}") as client:
        assert client.name == "fake"


def test_execute_and_fire(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client:
        assert client.execute("echo", [1, "a"], {"k": None}) == [[1, "a"], {"k": None}]
        assert client.fire("ev", [1]) == 2
        sent = [server.requests.get(timeout=5) for _ in range(3)][1]
        assert sent["params"] == {
            "name": "echo",
            "args": [1, "a"],
            "kwargs": {"k": None},
            "timeout": 30.0,
        }


def test_remote_error_carries_type_and_traceback(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client, pytest.raises(RemoteError) as info:
        client.execute("boom")
    assert info.value.code == -32000
    assert info.value.type == "ValueError"
    assert info.value.remote_traceback == "Traceback..."
    assert str(info.value) == "ValueError: it broke"


def test_replies_out_of_order_reach_their_callers(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client:
        slow = client.request_async("execute", {"name": "slow", "args": [], "kwargs": {}})
        assert client.execute("echo", [2]) == [[2], {}]  # not held up by the slow one
        assert not slow.done()
        slow_request = next(r for r in iter(server.requests.get, None) if r["method"] == "execute")
        reply(server.connections[0], slow_request, {"result": "late"})
        assert slow.result(timeout=5) == {"result": "late"}


def test_subscription_gets_notifications_sent_right_after_the_reply(server: FakeServer) -> None:
    got: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    with Client.connect(str(server.path)) as client:
        subscription = client.subscribe("activity", lambda m, p: got.put((m, p)), ["x*"])
        assert subscription.id == 7
        method, params = got.get(timeout=5)
        assert (method, params["activity"]["name"]) == ("activity", "x")
        assert got.get(timeout=5)[0] == "dropped"
        assert subscription.dropped == 3
        assert subscription.close() == 3
        assert subscription.closed


def test_server_going_away_fails_pending_and_calls_on_disconnect(server: FakeServer) -> None:
    gone = threading.Event()
    client = Client.connect(str(server.path))
    client.on_disconnect(gone.set)
    pending = client.request_async("execute", {"name": "slow", "args": [], "kwargs": {}})
    server.close()
    assert gone.wait(5)
    with pytest.raises(ConnectionLost):
        pending.result(timeout=5)
    with pytest.raises(ConnectionLost):
        client.execute("echo")
    assert client.closed
    called = threading.Event()
    client.on_disconnect(called.set)  # after the fact: called at once
    assert called.is_set()
    client.close()


def test_close_fails_pending_requests(server: FakeServer) -> None:
    client = Client.connect(str(server.path))
    pending = client.request_async("execute", {"name": "slow", "args": [], "kwargs": {}})
    client.close()
    with pytest.raises(ConnectionLost):
        pending.result(timeout=5)
    client.close()  # idempotent


def test_request_timeout(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client, pytest.raises(TimeoutError):
        client.request("execute", {"name": "slow", "args": [], "kwargs": {}}, timeout=0.05)


def test_nothing_listening_is_connection_lost(sock_path: Path) -> None:
    with pytest.raises(ConnectionLost, match="cannot connect"):
        Client.connect(str(sock_path))


def test_concurrent_requests_from_many_threads(server: FakeServer) -> None:
    with Client.connect(str(server.path)) as client:
        results: dict[int, Any] = {}

        def work(i: int) -> None:
            results[i] = client.execute("echo", [i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {i: [[i], {}] for i in range(20)}


def test_a_full_bus_says_why_it_closed_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from bus import Bus
    from bus.control import BusFullError

    runtime = tempfile.mkdtemp(prefix="bcl", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    with contextlib.ExitStack() as cleanup, Bus(name="full", control=True) as bus:
        cleanup.callback(shutil.rmtree, runtime, True)
        assert bus._control is not None
        monkeypatch.setattr(bus._control, "max_connections", 1)
        with Client.connect("full", timeout=5) as first:
            assert first.describe()["name"] == "full"
            with pytest.raises(BusFullError) as refused:
                Client.connect("full", timeout=5)
            assert str(refused.value) == "bus full is refusing connections: 1 clients attached"
            assert refused.value.limit == 1
            assert refused.value.address == bus.address
            assert first.inspect()["bus"]["name"] == "full"  # the first is still served


def with_late_activity(server: FakeServer, conn: socket.socket, request: dict[str, Any]) -> None:
    """``basic``, then one more activity after the ``dropped`` report."""
    basic(server, conn, request)
    if request["method"] == "subscribe":
        activity = {"subscription": 7, "activity": {"kind": "event", "name": "y"}}
        server.send(conn, {"jsonrpc": "2.0", "method": "activity", "params": activity})


def test_monitor_and_capture_report_what_the_bus_dropped(sock_path: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from busctl.commands import capture, monitor

    fake = FakeServer(sock_path, with_late_activity)
    try:
        runner = CliRunner()
        shown = runner.invoke(monitor, ["--bus", str(sock_path), "--json", "-n", "2"])
        assert shown.exit_code == 0, shown.output
        assert [json.loads(line)["name"] for line in shown.stdout.splitlines()] == ["x", "y"]
        assert "... 3 notifications dropped (reading too slowly)" in shown.stderr
        out = tmp_path / "cap.jsonl"
        captured = runner.invoke(
            capture, ["--bus", str(sock_path), "-o", str(out), "--duration", "0.3"]
        )
        assert captured.exit_code == 0, captured.output
        assert "3 dropped (the bus could not send them in time)" in captured.stderr
    finally:
        fake.close()
