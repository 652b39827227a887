"""The control client against a small fake line server: demultiplexing, errors, lifetime."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import sys
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
            # The client ended its side: hang up, as a real server does (a
            # probe waits for that, up to its timeout).
            conn.shutdown(socket.SHUT_RDWR)

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
            reply(conn, request, {"value": [params["args"], params["kwargs"]]})
    elif method == "subscribe":
        # A notification straight after the reply, as a real server may send.
        reply(conn, request, {"subscription": 7})
        activity = {"subscription": 7, "activity": {"kind": "event", "name": "x"}}
        server.send(conn, {"jsonrpc": "2.0", "method": "activity", "params": activity})
        dropped = {"subscription": 7, "count": 3, "total": 3}
        server.send(conn, {"jsonrpc": "2.0", "method": "dropped", "params": dropped})
    elif method == "unsubscribe":
        reply(conn, request, {"dropped": 3})
    elif method == "inspect":  # capture asks how many spans the bus dropped, before and after
        reply(conn, request, {"tracing": {"dropped": 0}})
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
        reply(server.connections[0], slow_request, {"value": "late"})
        assert slow.result(timeout=5) == {"value": "late"}


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

    from busctl.cli.watch import capture, monitor

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


# -- who answers, a full bus, a bad socket directory (real busctl processes) -------------------


def busctl(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "busctl", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def runtime_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private XDG_RUNTIME_DIR for this process and the busctl it runs."""
    runtime = tempfile.mkdtemp(prefix="bce", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    env = {k: v for k, v in os.environ.items() if k != "BUS_ADDRESS"}
    yield env
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_full_bus_is_reported_as_full_not_as_no_bus(runtime_env: dict[str, str]) -> None:
    from bus import Bus

    with Bus(name="home", control=True) as bus:
        assert bus._control is not None
        bus._control.max_connections = 1
        with Client.connect("home", timeout=5) as holder:
            assert holder.describe()["name"] == "home"
            message = "bus home is refusing connections: 1 clients attached"
            for argv in (["status"], ["status", "--bus", "home"], ["call", "x"]):
                refused = busctl(*argv, env=runtime_env)
                assert refused.returncode == 3, refused.stderr
                assert refused.stderr.strip() == f"error: {message}"
            listed = busctl("list", env=runtime_env)
            assert listed.returncode == 0, listed.stderr
            assert "home" in listed.stdout
            assert str(bus.address) in listed.stdout
            assert listed.stderr.strip() == message
            as_json = busctl("list", "--json", env=runtime_env)
            assert json.loads(as_json.stdout) == [
                {"name": "home", "address": str(bus.address), "refusing": message, "limit": 1}
            ]
            assert holder.inspect()["bus"]["name"] == "home"  # the one attached is served


def _spoil(directory: Path, how: str) -> str:
    """Make the socket directory unusable; return what the fix says."""
    if how == "open":
        directory.mkdir()
        os.chmod(directory, 0o777)
        return f"run `chmod 700 {directory}`"
    if how == "symlink":
        target = Path(tempfile.mkdtemp(prefix="bct", dir="/tmp"))
        directory.symlink_to(target)
        return "remove it, or set XDG_RUNTIME_DIR"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    return "remove it, or set XDG_RUNTIME_DIR"


@pytest.mark.parametrize("how", ["open", "symlink", "foreign"])
def test_discovery_names_a_bad_socket_directory_and_its_fix(
    runtime_env: dict[str, str], how: str
) -> None:
    if how == "foreign" and os.getuid() != 0:
        pytest.skip("giving a directory to another user needs root")
    directory = Path(runtime_env["XDG_RUNTIME_DIR"]) / "bus"
    fix = _spoil(directory, how)
    for argv in (["list"], ["status"], ["status", "--bus", "home"], ["monitor"]):
        result = busctl(*argv, env=runtime_env)
        assert result.returncode == 1, (argv, result.stderr)
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (argv, result.stderr)
        assert lines[0].startswith(f"error: {directory} ")
        assert fix in lines[0]
    if how == "symlink":
        shutil.rmtree(directory.resolve(), ignore_errors=True)


_FOREIGN_SERVER = """
import json, os, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.setgid(65534)
os.setuid(65534)
listener.bind(sys.argv[1])
listener.listen()
print("ready", flush=True)
while True:
    conn, _ = listener.accept()
    for line in conn.makefile("rb"):
        request = json.loads(line)
        answer = {"name": "theirs", "pid": os.getpid(), "protocol": 1, "methods": []}
        reply = {"jsonrpc": "2.0", "id": request.get("id"), "result": answer}
        conn.sendall(json.dumps(reply).encode() + b"\\n")
"""


@pytest.mark.skipif(
    os.getuid() != 0 or not hasattr(socket, "SO_PEERCRED"),
    reason="running a server as another user needs root, and SO_PEERCRED",
)
def test_a_client_refuses_a_server_run_by_another_user(runtime_env: dict[str, str]) -> None:
    from bus.control import ForeignBusError

    directory = Path(tempfile.mkdtemp(prefix="bcf", dir="/tmp"))  # theirs, where they can reach
    os.chown(directory, 65534, 65534)
    path = directory / "theirs.sock"
    server = subprocess.Popen(
        [sys.executable, "-c", _FOREIGN_SERVER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        with pytest.raises(ForeignBusError, match="served by uid 65534") as info:
            Client.connect(str(path), timeout=5)
        assert str(path) in str(info.value)
        result = busctl("status", "--bus", str(path), env=runtime_env)
        assert result.returncode == 3
        assert result.stderr.strip() == f"error: {info.value}"
        assert server.poll() is None  # it was never sent a request it could answer
    finally:
        server.kill()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_client_checks_the_servers_uid_before_sending(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus.control._addr as addr
    from bus.control import ForeignBusError

    with monkeypatch.context() as patched:
        patched.setattr(addr, "peer_uid", lambda sock: os.getuid() + 1)
        with pytest.raises(ForeignBusError, match=f"served by uid {os.getuid() + 1}"):
            Client.connect(str(server.path), timeout=5)
    assert server.requests.empty()  # not even describe was sent
    with Client.connect(str(server.path), timeout=5) as client:
        assert client.name == "fake"


def with_a_flood(server: FakeServer, conn: socket.socket, request: dict[str, Any]) -> None:
    """``basic``, but ``subscribe`` is followed by 200 activities and lines that are not JSON."""
    basic(server, conn, request)
    if request["method"] == "subscribe":
        for n in range(200):
            activity = {"subscription": 7, "activity": {"kind": "event", "name": f"e{n}"}}
            server.send(conn, {"jsonrpc": "2.0", "method": "activity", "params": activity})
            conn.sendall(b"not json\n")


def test_a_failing_callback_and_bad_lines_do_not_flood_the_log(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeServer(sock_path, with_a_flood)
    seen: list[str] = []

    def broken(method: str, params: dict[str, Any]) -> None:
        seen.append(method)
        raise RuntimeError("broken callback")

    try:
        with (
            caplog.at_level(logging.WARNING, logger="busctl._client"),
            Client.connect(str(sock_path), timeout=5) as client,
        ):
            client.subscribe("activity", broken)
            assert client.fire("after") == 2  # served after the flood: all of it was read
        assert seen.count("activity") == 201  # every one was delivered; the log was spared
        failures = [r for r in caplog.records if "subscription callback failed" in r.message]
        bad_lines = [r for r in caplog.records if "ignoring a line that is not JSON" in r.message]
        assert len(failures) == len(bad_lines) == 1
        # and when the client closes, how many more there were
        messages = [r.message for r in caplog.records]
        assert any(
            m.endswith("more subscription callback failures were not logged") for m in messages
        )
        assert any(m.endswith("more lines that were not JSON were not logged") for m in messages)
    finally:
        fake.close()


# -- one connection per verb ------------------------------------------------------------


@pytest.fixture
def named_fake(runtime_env: dict[str, str]) -> Iterator[FakeServer]:
    """A fake bus listening where a bus named ``fake`` would."""
    from bus.control import default_address, socket_dir

    socket_dir().mkdir(mode=0o700)
    fake = FakeServer(default_address("fake"), basic)
    yield fake
    fake.close()


def methods(server: FakeServer) -> list[str]:
    out = []
    while not server.requests.empty():
        out.append(server.requests.get_nowait()["method"])
    return out


@pytest.mark.parametrize("target", ["fake", None])
def test_attaching_opens_one_connection_and_asks_describe_once(
    named_fake: FakeServer, target: str | None
) -> None:
    with Client.connect(target, timeout=5) as client:
        assert client.name == "fake"
        assert client.execute("echo", [1]) == [[1], {}]
    assert len(named_fake.connections) == 1
    assert methods(named_fake) == ["describe", "execute"]


def test_a_call_is_one_connection_and_one_describe(named_fake: FakeServer) -> None:
    from click.testing import CliRunner

    from busctl.cli import cli

    result = CliRunner().invoke(cli, ["call", "echo", "1", "x=2", "--bus", "fake"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [[1], {"x": 2}]
    assert len(named_fake.connections) == 1
    assert methods(named_fake) == ["describe", "execute"]


def test_a_name_nothing_answers_for_is_looked_up_and_the_running_ones_named(
    named_fake: FakeServer,
) -> None:
    from bus.control import NoBusError, default_address

    stale = default_address("gone")
    stale.touch()  # a file nothing listens on, as a dead bus leaves a socket
    with pytest.raises(NoBusError, match="no bus named 'nothere' is running; running: fake"):
        Client.connect("nothere", timeout=5)
    with pytest.raises(ConnectionLost, match="cannot connect to"):
        Client.connect(str(stale), timeout=5)  # an explicit path is not looked up


def test_with_several_sockets_discovery_chooses(named_fake: FakeServer) -> None:
    from bus.control import AmbiguousBusError, default_address

    # A socket file nothing listens on, as a bus that died leaves it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(default_address("dead")))
    stale.close()
    with Client.connect(None, timeout=5) as client:  # discovery removes it on the way
        assert client.address == named_fake.path
    assert not default_address("dead").exists()
    other = FakeServer(default_address("other"), basic)
    try:
        with pytest.raises(AmbiguousBusError):
            Client.connect(None, timeout=5)
    finally:
        other.close()


def odd_errors(server: FakeServer, conn: socket.socket, request: dict[str, Any]) -> None:
    if request["method"] == "describe":
        reply(conn, request, DESCRIBE)
    elif request["params"]["name"] == "text":
        server.send(conn, {"jsonrpc": "2.0", "id": request["id"], "error": "it broke"})
    else:
        error = {"code": "soon", "message": "odd", "data": ["not", "an", "object"]}
        server.send(conn, {"jsonrpc": "2.0", "id": request["id"], "error": error})


def test_an_error_of_any_shape_is_a_remote_error_and_the_reader_goes_on(sock_path: Path) -> None:
    from bus.control.protocol import ErrorCode

    fake = FakeServer(sock_path, odd_errors)
    try:
        with Client.connect(str(sock_path)) as client:
            for name, message in (("code", "odd"), ("text", "it broke")):
                with pytest.raises(RemoteError) as info:
                    client.execute(name, timeout=5)
                assert info.value.code == ErrorCode.INTERNAL_ERROR
                assert info.value.message == message
                assert info.value.data == {}
            assert not client.closed  # the reader read on
    finally:
        fake.close()
