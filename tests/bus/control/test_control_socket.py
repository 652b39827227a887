"""The control socket: modes, ownership, peer uid, stale sockets, discovery, close."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import bus.control._addr as control_addr
import bus.control._server as control_server
from bus import Bus, BusError
from bus.control import (
    AddressInUseError,
    AmbiguousBusError,
    BusFullError,
    ForeignBusError,
    NoBusError,
    SocketDirError,
    default_address,
    discover,
    parse_address,
    resolve,
    socket_dir,
)

pytestmark = pytest.mark.timeout(30)


def describe(path: Path | str) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(os.fspath(path))
        sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "describe"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, "closed before the reply"
            data += chunk
    result: dict[str, Any] = json.loads(data)["result"]
    return result


def stale_socket(path: Path) -> None:
    """A socket file whose listener is gone, as a bus that died leaves it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.fspath(path))
    sock.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def control_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"bus:{name}/control")]


# -- addresses --------------------------------------------------------------------


def test_socket_dir_and_default_address(runtime_dir: Path) -> None:
    assert socket_dir() == runtime_dir / "bus"
    assert default_address("home") == runtime_dir / "bus" / "home.sock"


def test_socket_dir_without_xdg_is_per_user_under_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", "/var/tmp")
    assert socket_dir() == Path(f"/var/tmp/bus-{os.getuid()}")


def test_parse_address() -> None:
    assert parse_address("unix:path=/run/x.sock") == Path("/run/x.sock")
    assert parse_address("unix:path=/run/x.sock,guid=abc") == Path("/run/x.sock")
    assert parse_address("unix:guid=abc,path=/y.sock") == Path("/y.sock")
    assert parse_address("/tmp/z.sock") == Path("/tmp/z.sock")
    assert parse_address("  rel.sock ") == Path("rel.sock")
    for bad in ("", "unix:abstract=/x", "unix:"):
        with pytest.raises(ValueError, match="address"):
            parse_address(bad)


# -- modes and ownership ---------------------------------------------------------------


def test_directory_0700_and_socket_0600(runtime_dir: Path) -> None:
    old = os.umask(0)  # a careless umask must not open them up
    try:
        with Bus(name="modes", control=True) as bus:
            assert bus.address == runtime_dir / "bus" / "modes.sock"
            assert stat.S_IMODE(os.stat(runtime_dir / "bus").st_mode) == 0o700
            st = os.lstat(bus.address)
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o600
            assert st.st_uid == os.getuid()
    finally:
        os.umask(old)


def test_a_directory_open_to_others_is_refused(runtime_dir: Path) -> None:
    (runtime_dir / "bus").mkdir(mode=0o755)
    os.chmod(runtime_dir / "bus", 0o755)
    with pytest.raises(BusError, match="chmod 700"):
        Bus(name="open", control=True)
    assert not control_threads("open")
    with pytest.raises(BusError, match="chmod 700"):
        discover()


def test_a_directory_of_another_user_is_refused(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (runtime_dir / "bus").mkdir(mode=0o700)
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)
    with pytest.raises(BusError, match="not to you"):
        Bus(name="theirs", control=True)


def test_a_symlinked_directory_is_refused(runtime_dir: Path) -> None:
    target = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        (runtime_dir / "bus").symlink_to(target)
        with pytest.raises(BusError, match="not a directory"):
            Bus(name="link", control=True)
    finally:
        shutil.rmtree(target)


def test_a_missing_runtime_dir_is_a_clear_error(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir / "gone"))
    with pytest.raises(BusError, match="is XDG_RUNTIME_DIR right"):
        Bus(name="nowhere", control=True)


def test_a_path_too_long_is_a_clear_error(runtime_dir: Path) -> None:
    with pytest.raises(ValueError, match="longer than a Unix socket allows"):
        Bus(name="long", control=runtime_dir / ("x" * 120 + ".sock"))


# -- peer uid -----------------------------------------------------------------------------------


def test_peer_uid_is_our_own() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        assert control_server.peer_uid(a) in (os.getuid(), None)


def test_a_peer_of_another_user_is_closed_at_once(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Bus(name="peers", control=True) as bus:
        monkeypatch.setattr(control_server, "peer_uid", lambda sock: os.getuid() + 1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(os.fspath(bus.address))  # type: ignore[arg-type]
            try:
                sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "describe"}\n')
                assert sock.recv(65536) == b""
            except (ConnectionResetError, BrokenPipeError):
                pass
        assert bus._control is not None
        assert bus._control.refused == 1
        assert bus._control.connections == 0
        monkeypatch.undo()
        assert describe(bus.address)["name"] == "peers"  # type: ignore[arg-type]


# -- stale sockets, a live bus, close ----------------------------------------------------------


def test_a_stale_socket_is_replaced(runtime_dir: Path) -> None:
    (runtime_dir / "bus").mkdir(mode=0o700)
    stale_socket(runtime_dir / "bus" / "stale.sock")
    with Bus(name="stale", control=True) as bus:
        assert describe(bus.address)["pid"] == os.getpid()  # type: ignore[arg-type]


def test_a_live_bus_of_the_same_name_is_a_clear_error(runtime_dir: Path) -> None:
    with Bus(name="twin", control=True) as first:
        threads = set(threading.enumerate())
        with pytest.raises(AddressInUseError, match="a bus named twin is already running"):
            Bus(name="twin", control=True)
        # The refused bus closed what it had started (the probe's connection
        # to the first bus may still be winding down); the first still serves.
        new = {t for t in threading.enumerate() if t.is_alive()} - threads
        assert not [t.name for t in new if "/control-" not in t.name]
        assert describe(first.address)["name"] == "twin"  # type: ignore[arg-type]


def test_a_file_that_is_not_a_socket_is_left_alone(runtime_dir: Path) -> None:
    path = runtime_dir / "file.sock"
    path.write_text("precious")
    with pytest.raises(AddressInUseError, match="not a socket"):
        Bus(name="file", control=path)
    assert path.read_text() == "precious"


def test_explicit_path_creates_a_private_parent(runtime_dir: Path) -> None:
    path = runtime_dir / "sub" / "x.sock"
    with Bus(name="explicit", control=str(path)) as bus:
        assert bus.address == path
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert describe(path)["address"] == str(path)
    assert not path.exists()


def _give_away(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` another user's: really when we are root, else as the checks see it."""
    if os.getuid() == 0:
        os.chown(path, 65534, 65534)
    else:
        real = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: real + 1)


def test_an_explicit_path_in_a_directory_others_may_write_is_refused(runtime_dir: Path) -> None:
    shared = runtime_dir / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(SocketDirError, match="writable by other users") as info:
        Bus(name="careless", control=shared / "careless.sock")
    assert str(shared) in str(info.value)
    assert "choose a directory of your own" in str(info.value)
    assert f"chmod go-w {shared}" in str(info.value)
    assert not (shared / "careless.sock").exists()
    assert not control_threads("careless")
    readable = runtime_dir / "readable"  # others may look, not write: that is safe
    readable.mkdir()
    os.chmod(readable, 0o755)
    with Bus(name="readable", control=readable / "readable.sock") as bus:
        assert describe(readable / "readable.sock")["name"] == "readable"
        assert bus.address == readable / "readable.sock"


def test_an_explicit_path_in_another_users_directory_is_refused(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = runtime_dir / "theirs"
    theirs.mkdir(mode=0o700)
    _give_away(theirs, monkeypatch)
    with pytest.raises(SocketDirError, match="not to you") as info:
        Bus(name="intruder", control=theirs / "intruder.sock")
    assert str(theirs) in str(info.value)
    assert "remove it" not in str(info.value)  # not ours to remove: choose another
    assert "choose a directory of your own" in str(info.value)
    assert not (theirs / "intruder.sock").exists()


def test_an_explicit_path_through_a_symlinked_directory_is_refused(runtime_dir: Path) -> None:
    real = runtime_dir / "real"
    real.mkdir(mode=0o700)
    (runtime_dir / "link").symlink_to(real)
    with pytest.raises(SocketDirError, match="is a symlink"):
        Bus(name="linked", control=runtime_dir / "link" / "linked.sock")
    assert not (real / "linked.sock").exists()


def test_probe_and_resolve_check_who_serves_the_socket(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus.control._addr as addr

    with Bus(name="mine", control=True) as bus:
        assert bus.address is not None
        with monkeypatch.context() as patched:
            patched.setattr(addr, "peer_uid", lambda sock: os.getuid() + 1)
            with pytest.raises(ForeignBusError, match="served by uid") as info:
                addr.probe(bus.address)
            assert str(bus.address) in str(info.value)
            assert discover() == []  # not listed: its answers cannot be trusted
        assert [b["name"] for b in discover()] == ["mine"]


def test_a_full_bus_is_discovered_as_refusing_never_as_no_bus(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Bus(name="full", control=True) as bus:
        assert bus._control is not None
        monkeypatch.setattr(bus._control, "max_connections", 1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
            holder.connect(os.fspath(bus.address))  # type: ignore[arg-type]
            holder.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "describe"}\n')
            assert b'"result"' in holder.recv(65536)  # attached: the one place is taken
            message = "bus full is refusing connections: 1 clients attached"
            assert discover() == [
                {"name": "full", "address": str(bus.address), "refusing": message, "limit": 1}
            ]
            assert resolve(None) == bus.address  # a bus is there: the client will say it is full
            assert resolve("full") == bus.address
            with pytest.raises(BusFullError, match=message) as info:
                control_addr.probe(bus.address)  # type: ignore[arg-type]
            assert info.value.limit == 1
        # Once the holder has gone, the same bus is listed as usual.
        for _ in range(500):
            if bus._control.connections == 0:
                break
            time.sleep(0.01)
        assert [b.get("pid") for b in discover()] == [os.getpid()]


def test_close_removes_the_socket_and_ends_every_connection(runtime_dir: Path) -> None:
    bus = Bus(name="closer", control=True)
    address = bus.address
    assert address is not None
    clients = []
    for _ in range(3):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(os.fspath(address))
        clients.append(sock)
    sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": '
                 b'{"topic": "activity"}}\n')  # fmt: skip
    assert b'"subscription"' in sock.recv(65536)
    bus.close()
    assert not address.exists()
    for sock in clients:
        with sock:
            assert sock.recv(65536) == b""
    assert not control_threads("closer")
    assert bus.address == address  # still says where it was


def test_close_leaves_a_socket_that_another_bus_took_over(runtime_dir: Path) -> None:
    bus = Bus(name="usurped", control=True)
    assert bus.address is not None
    os.unlink(bus.address)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(os.fspath(bus.address))
    try:
        bus.close()
        assert bus.address.exists()
    finally:
        other.close()


def test_no_control_means_no_socket_and_no_threads(runtime_dir: Path) -> None:
    with Bus(name="quiet") as bus:
        assert bus.address is None
        assert not control_threads("quiet")
    assert not (runtime_dir / "bus").exists()


def test_an_attached_client_costs_the_bus_nothing(runtime_dir: Path) -> None:
    with Bus(name="cheap", control=True) as bus:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            sock.connect(os.fspath(bus.address))  # type: ignore[arg-type]
            sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "inspect"}\n')
            assert sock.recv(65536)
            assert bus.observer is None or bus.observer.watchers == ()
            assert bus.observer is None or bus.observer.taps == ()
            assert bus.spans._observers == ()


# -- discover and resolve --------------------------------------------------------------------


def test_discover_and_resolve_with_no_bus(runtime_dir: Path) -> None:
    assert discover() == []
    with pytest.raises(NoBusError, match="no bus is running"):
        resolve(None)
    with pytest.raises(NoBusError, match="no bus named 'home' is running"):
        resolve("home")


def test_discover_and_resolve_with_one_bus(runtime_dir: Path) -> None:
    with Bus(name="one", control=True) as bus:
        found = discover()
        assert [b["name"] for b in found] == ["one"]
        assert found[0]["address"] == str(bus.address)
        assert resolve(None) == bus.address
        assert resolve("one") == bus.address
        assert resolve(str(bus.address)) == bus.address
        assert resolve(f"unix:path={bus.address}") == bus.address
        with pytest.raises(NoBusError, match="running: one") as info:
            resolve("two")
        assert info.value.running == ["one"]


def test_discover_and_resolve_with_two_buses(runtime_dir: Path) -> None:
    with Bus(name="alpha", control=True) as a, Bus(name="beta", control=True) as b:
        assert sorted(x["name"] for x in discover()) == ["alpha", "beta"]
        with pytest.raises(AmbiguousBusError, match=r"alpha, beta") as info:
            resolve(None)
        assert info.value.choices == ["alpha", "beta"]
        assert resolve("beta") == b.address
        assert resolve("alpha") == a.address


def test_bus_address_names_one_explicitly(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Bus(name="alpha", control=True), Bus(name="beta", control=True) as b:
        monkeypatch.setenv("BUS_ADDRESS", f"unix:path={b.address}")
        assert resolve(None) == b.address
        monkeypatch.setenv("BUS_ADDRESS", str(b.address))
        assert resolve(None) == b.address


def test_discover_removes_stale_sockets(runtime_dir: Path) -> None:
    with Bus(name="alive", control=True):
        stale_socket(runtime_dir / "bus" / "dead.sock")
        (runtime_dir / "bus" / "notes.txt").write_text("not a socket")
        assert [b["name"] for b in discover()] == ["alive"]
        assert not (runtime_dir / "bus" / "dead.sock").exists()
        assert (runtime_dir / "bus" / "notes.txt").exists()
        stale_socket(runtime_dir / "bus" / "dead.sock")
        with pytest.raises(NoBusError, match="dead"):
            resolve("dead")
        assert not (runtime_dir / "bus" / "dead.sock").exists()


def test_discover_skips_a_bus_that_does_not_answer(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus.control._addr as addr

    monkeypatch.setattr(addr, "PROBE_TIMEOUT", 0.2)
    (runtime_dir / "bus").mkdir(mode=0o700)
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(os.fspath(runtime_dir / "bus" / "mute.sock"))
    mute.listen(1)
    try:
        with Bus(name="talks", control=True):
            assert [b["name"] for b in discover()] == ["talks"]
        assert (runtime_dir / "bus" / "mute.sock").exists()
    finally:
        mute.close()
