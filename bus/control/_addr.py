"""Addresses of control sockets, their directory's safety, and discovery.

The public face is ``bus.control``; this module has no server code, so that
clients (``discover``, ``resolve``) load nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

from .._core._errors import BusError
from . import protocol
from .protocol import ErrorCode

__all__ = [
    "AddressInUseError",
    "AmbiguousBusError",
    "BusFullError",
    "ForeignBusError",
    "NoBusError",
    "SocketDirError",
    "check_peer",
    "check_private_dir",
    "default_address",
    "discover",
    "ensure_socket_dir",
    "parse_address",
    "peer_uid",
    "probe",
    "refusal",
    "refusing_message",
    "resolve",
    "socket_dir",
]

#: How long discovery waits for one bus to answer ``describe``.
PROBE_TIMEOUT = 2.0
#: The JSON-RPC error a full server sends, with ``"id": null``, before it hangs up.


class NoBusError(BusError, LookupError):
    """Raised by ``resolve`` when no running bus matches what was asked for.

    Attributes:
        target: the name or path asked for (``None``: any bus).
        running: the names of the buses that do run.
    """

    def __init__(self, message: str, target: str | None = None, running: list[str] | None = None):
        self.target = target
        self.running = list(running or [])
        super().__init__(message)


class AmbiguousBusError(BusError, LookupError):
    """Raised by ``resolve(None)`` when several buses run and none was named.

    Attributes:
        choices: the names of the running buses.
    """

    def __init__(self, message: str, choices: list[str]):
        self.choices = list(choices)
        super().__init__(message)


class BusFullError(BusError, ConnectionError):
    """Raised when a bus is up but turns new clients away: it has as many as it serves.

    ``discover`` lists such a bus with its ``refusing`` message instead of
    leaving it out, so that a full bus is never mistaken for no bus.

    Attributes:
        address: the socket path.
        limit: how many clients the bus serves at once, if it said.
    """

    def __init__(self, message: str, address: Path, limit: int | None = None) -> None:
        self.address = address
        self.limit = limit
        super().__init__(message)


class ForeignBusError(BusError, PermissionError):
    """Raised by a client whose socket is served by a process of another user.

    A socket path can be anywhere (``--bus PATH``, ``BUS_ADDRESS``): the
    client checks who answers before it sends a single request.
    """


class SocketDirError(BusError):
    """Raised when the socket directory cannot be trusted or read.

    The message names the directory and how to fix it.
    """


class AddressInUseError(BusError, OSError):
    """Raised by ``Bus(control=...)`` when a live bus already listens on the address.

    A socket file left behind by a bus that died is not an error: it is
    removed and replaced.
    """


def socket_dir() -> Path:
    """The directory holding the sockets of this user's buses.

    ``$XDG_RUNTIME_DIR/bus`` when ``XDG_RUNTIME_DIR`` is set, else
    ``bus-UID`` under the temp directory (``$TMPDIR``, by default ``/tmp``).
    It is created (mode ``0700``) only when a bus starts listening there.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "bus"
    return Path(tempfile.gettempdir()) / f"bus-{os.getuid()}"


def default_address(name: str) -> Path:
    """The socket a bus named ``name`` listens on with ``control=True``."""
    return socket_dir() / f"{name}.sock"


def parse_address(text: str) -> Path:
    """The socket path an address names: ``unix:path=/x.sock`` or a plain path.

    The ``unix:`` form is the D-Bus spelling used by ``BUS_ADDRESS``; other
    keys in it (``guid=...``) are ignored.

    Raises:
        ValueError: the text names no path (``unix:abstract=...`` included).
    """
    text = text.strip()
    if text.startswith("unix:"):
        for part in text[len("unix:") :].split(","):
            key, _, value = part.partition("=")
            if key == "path" and value:
                return Path(value).expanduser()
        raise ValueError(f"cannot read the address {text!r}: use unix:path=/some/where.sock")
    if not text:
        raise ValueError("an empty bus address")
    return Path(text).expanduser()


def check_private_dir(directory: Path, *, explicit: bool = False) -> None:
    """Raise unless ``directory`` is a real directory of ours that others cannot use.

    The default socket directory must be ``0700``: no access at all for
    others. The directory of an explicit socket path (``Bus(control=PATH)``,
    ``busctl run --address``) may be readable by others, but no one else may
    write to it, where they could replace the socket.

    Raises:
        SocketDirError: it is missing, unreadable, a symlink or not a
            directory, belongs to another user, or is open to others (the
            message names the directory and says how to fix it).
    """
    # The default directory is ours to remove; an explicit one (/tmp, a
    # home) is not: its fix is another directory.
    fix = "choose a directory of your own" if explicit else "remove it, or set XDG_RUNTIME_DIR"
    try:
        st = os.lstat(directory)
    except OSError as exc:
        elsewhere = fix if explicit else "set XDG_RUNTIME_DIR"
        raise SocketDirError(
            f"cannot use {directory}: {exc.strerror or exc}; check it, or {elsewhere}"
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise SocketDirError(
            f"{directory} is a symlink, not a directory: refusing to use it; {fix}"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise SocketDirError(f"{directory} is not a directory: {fix}")
    if st.st_uid != os.getuid():
        raise SocketDirError(
            f"{directory} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): "
            f"refusing to use it; {fix}"
        )
    mode = stat.S_IMODE(st.st_mode)
    if explicit and mode & 0o022:
        raise SocketDirError(
            f"{directory} has mode {mode:04o}, writable by other users: refusing to put a "
            f"socket there; {fix} (or, if only you should write there, "
            f"run `chmod go-w {directory}`)"
        )
    if not explicit and mode & 0o077:
        raise SocketDirError(
            f"{directory} has mode {mode:04o}, open to other users: "
            f"refusing to use it; run `chmod 700 {directory}`"
        )


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end, ``None`` where it cannot be known.

    Linux reports it with ``SO_PEERCRED``. Elsewhere the socket's ``0600``
    mode and its private directory are the only guard.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def check_peer(sock: socket.socket, address: Path) -> None:
    """Raise unless the server at the other end of ``sock`` runs as this user.

    Raises:
        ForeignBusError: another user's process serves ``address``.
    """
    uid = peer_uid(sock)
    if uid is not None and uid != os.getuid():
        raise ForeignBusError(
            f"refusing to attach to {address}: it is served by uid {uid}, not by you "
            f"(uid {os.getuid()}); check the address"
        )


def refusing_message(name: str, clients: int) -> str:
    """What a full bus says to a client it turns away (one line)."""
    return f"bus {name} is refusing connections: {clients} clients attached"


def ensure_socket_dir(directory: Path | None = None) -> Path:
    """Create ``directory`` (default ``socket_dir()``) with mode 0700, then check it.

    Raises:
        SocketDirError: see ``check_private_dir``.
    """
    directory = socket_dir() if directory is None else directory
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise SocketDirError(
            f"cannot create {directory}: {directory.parent} does not exist "
            "(is XDG_RUNTIME_DIR right?)"
        ) from None
    except OSError as exc:
        raise SocketDirError(
            f"cannot create {directory}: {exc.strerror or exc}; check {directory.parent}, "
            "or set XDG_RUNTIME_DIR"
        ) from None
    else:
        os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask
    check_private_dir(directory)
    return directory


def probe(path: Path, timeout: float | None = None) -> dict[str, Any] | None:
    """The ``describe`` result of the bus at ``path``, ``None`` if it is stale.

    A socket that refuses the connection belongs to a bus that died: it is
    removed. Any other failure (a bus too busy to answer, a file that is not
    a socket) raises ``OSError`` and leaves the file alone.

    Raises:
        BusFullError: the bus is up but turns clients away (it has its most).
        ForeignBusError: another user's process serves the socket.
        OSError: the file is not a socket, or the bus did not answer.
    """
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PROBE_TIMEOUT if timeout is None else timeout)
        try:
            sock.connect(os.fspath(path))
        except ConnectionRefusedError:
            _remove_if_same(path, st)
            return None
        check_peer(sock, path)
        unsent: OSError | None = None
        try:
            sock.sendall(protocol.dumps(protocol.request(1, "describe")))
        except OSError as exc:  # a full bus may hang up first: its reason is still to read
            unsent = exc
        data = _first_line(sock, path)
        if data:
            _wait_for_hangup(sock)
    if not data:
        raise unsent or OSError(f"the bus at {path} closed the connection")
    reply = json.loads(data)
    result = reply.get("result") if isinstance(reply, dict) else None
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict):
        raise refusal(error, path)
    if not isinstance(result, dict):
        raise OSError(f"the bus at {path} did not answer describe")
    return result


def _first_line(sock: socket.socket, path: Path) -> bytes:
    """The first line the server sends (``b""`` when it closes first)."""
    data = b""
    while b"\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return b""
        data += chunk
        if len(data) > 1 << 20:
            raise OSError(f"the bus at {path} sent a line too long")
    return data.split(b"\n", 1)[0]


def _wait_for_hangup(sock: socket.socket) -> None:
    """Say goodbye and wait (up to the socket's timeout) until the server hangs up.

    The server forgets a client before it hangs up on it: once this returns,
    the probe no longer takes one of its places, and a client connecting
    right after (``resolve`` then ``connect``) is not turned away because of it.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass


def refusal(error: dict[str, Any], path: Path) -> BusError | OSError:
    """The exception for an ``error`` a server sent instead of answering.

    ``-32008`` (too many clients) is ``BusFullError`` with the server's own
    message; anything else is an ``OSError`` naming the socket.
    """
    message = str(error.get("message", ""))
    if error.get("code") == ErrorCode.TOO_MANY_CLIENTS:
        data = error.get("data")
        limit = data.get("limit") if isinstance(data, dict) else None
        return BusFullError(message, path, limit if isinstance(limit, int) else None)
    return OSError(f"the bus at {path} refused: {message}")


def _remove_if_same(path: Path, st: os.stat_result) -> None:
    # Only the very file that refused: a new bus may have replaced it meanwhile.
    with contextlib.suppress(OSError):
        now = os.lstat(path)
        if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)


def discover() -> list[dict[str, Any]]:
    """The ``describe`` result of every live bus in ``socket_dir()``, by name.

    A bus that is up but full (it turns new clients away) is listed too, as
    ``{"name", "address", "refusing", "limit"}``, where ``refusing`` is its
    one-line reason: a full bus is never reported as no bus. Stale sockets
    (their bus died) are removed on the way; a bus that does not answer
    within ``PROBE_TIMEOUT`` is left out. Blocks while probing.

    Raises:
        SocketDirError: the directory cannot be read, or is not private to
            the user (see ``check_private_dir``): its sockets cannot be trusted.
    """
    directory = socket_dir()
    if not _check_dir_if_there(directory):
        return []
    try:
        paths = sorted(directory.glob("*.sock"))
    except OSError as exc:
        raise SocketDirError(
            f"cannot read {directory}: {exc.strerror or exc}; check its owner and mode "
            "(`chmod 700`), or set XDG_RUNTIME_DIR"
        ) from None
    found = []
    for path in paths:
        try:
            info = probe(path)
        except BusFullError as exc:
            found.append(
                {"name": path.stem, "address": str(path), "refusing": str(exc), "limit": exc.limit}
            )
            continue
        except (OSError, ValueError):
            continue
        if info is not None:
            info.setdefault("address", str(path))
            found.append(info)
    return found


def _check_dir_if_there(directory: Path) -> bool:
    """``check_private_dir(directory)`` if it exists; whether it does."""
    try:
        os.lstat(directory)
    except FileNotFoundError:
        return False
    except OSError:
        pass  # check_private_dir says what is wrong with it
    check_private_dir(directory)
    return True


def resolve(target: str | None = None) -> Path:
    """The socket to connect to for ``target``.

    Args:
        target: ``None`` for ``$BUS_ADDRESS`` or else the one bus running; a
            bus name (its socket in ``socket_dir()``); or a path or
            ``unix:path=...`` address.

    Raises:
        NoBusError: nothing runs there (a stale socket found on the way is
            removed), or no bus runs at all.
        AmbiguousBusError: ``target`` is ``None``, ``BUS_ADDRESS`` is unset
            and several buses run.
        SocketDirError: the bus is looked for in ``socket_dir()`` (``None``
            or a name), and that directory cannot be read or trusted.
        ValueError: ``target`` or ``BUS_ADDRESS`` is not a valid address.
    """
    if target is None:
        env = os.environ.get("BUS_ADDRESS", "").strip()
        if env:
            return parse_address(env)
        buses = discover()
        names = [str(b.get("name")) for b in buses]
        if not buses:
            raise NoBusError(f"no bus is running (looked in {socket_dir()})", None, [])
        if len(buses) > 1:
            raise AmbiguousBusError(
                f"{len(buses)} buses are running ({', '.join(names)}): name the one to use",
                names,
            )
        return Path(str(buses[0]["address"]))
    if target.startswith("unix:") or os.sep in target or target.endswith(".sock"):
        path = parse_address(target)
        where = f"at {path}"
    else:
        _check_dir_if_there(socket_dir())
        path = default_address(target)
        where = f"named {target!r}"
    try:
        alive = probe(path) is not None
    except FileNotFoundError:
        alive = False
    except OSError:
        alive = True  # there, but busy or odd: let the connection say what is wrong
    if alive:
        return path
    running = []
    with contextlib.suppress(OSError, BusError):
        running = [str(b.get("name")) for b in discover()]
    others = f"; running: {', '.join(running)}" if running else ""
    raise NoBusError(f"no bus {where} is running{others}", target, running)
