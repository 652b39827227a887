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
import tempfile
from pathlib import Path
from typing import Any

from ._errors import BusError

__all__ = [
    "AddressInUseError",
    "AmbiguousBusError",
    "NoBusError",
    "check_private_dir",
    "default_address",
    "discover",
    "ensure_socket_dir",
    "parse_address",
    "probe",
    "resolve",
    "socket_dir",
]

#: How long discovery waits for one bus to answer ``describe``.
PROBE_TIMEOUT = 2.0


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


def check_private_dir(directory: Path) -> None:
    """Raise unless ``directory`` is a real directory owned by us with mode 0700.

    Raises:
        BusError: it is a symlink or not a directory, belongs to another user,
            or others may read or write it (the message says how to fix it).
    """
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise BusError(f"{directory} is not a directory: remove it, or set XDG_RUNTIME_DIR")
    if st.st_uid != os.getuid():
        raise BusError(
            f"{directory} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}): "
            "refusing to use it; remove it, or set XDG_RUNTIME_DIR"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise BusError(
            f"{directory} has mode {mode:04o}, open to other users: "
            f"refusing to use it; run `chmod 700 {directory}`"
        )


def ensure_socket_dir(directory: Path | None = None) -> Path:
    """Create ``directory`` (default ``socket_dir()``) with mode 0700, then check it.

    Raises:
        BusError: see ``check_private_dir``.
    """
    directory = socket_dir() if directory is None else directory
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise BusError(
            f"cannot create {directory}: {directory.parent} does not exist "
            "(is XDG_RUNTIME_DIR right?)"
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
        request = {"jsonrpc": "2.0", "id": 1, "method": "describe"}
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError(f"the bus at {path} closed the connection")
            data += chunk
            if len(data) > 1 << 20:
                raise OSError(f"the bus at {path} sent a line too long")
    reply = json.loads(data.split(b"\n", 1)[0])
    result = reply.get("result") if isinstance(reply, dict) else None
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict):
        raise OSError(f"the bus at {path} refused: {error.get('message')}")
    if not isinstance(result, dict):
        raise OSError(f"the bus at {path} did not answer describe")
    return result


def _remove_if_same(path: Path, st: os.stat_result) -> None:
    # Only the very file that refused: a new bus may have replaced it meanwhile.
    with contextlib.suppress(OSError):
        now = os.lstat(path)
        if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            os.unlink(path)


def discover() -> list[dict[str, Any]]:
    """The ``describe`` result of every live bus in ``socket_dir()``, by name.

    Stale sockets (their bus died) are removed on the way; a bus that does not
    answer within ``PROBE_TIMEOUT`` is left out. Blocks while probing.

    Raises:
        BusError: the directory is not private to the user (see
            ``check_private_dir``): its sockets cannot be trusted.
    """
    directory = socket_dir()
    if not directory.exists():
        return []
    check_private_dir(directory)
    found = []
    for path in sorted(directory.glob("*.sock")):
        try:
            info = probe(path)
        except (OSError, ValueError):
            continue
        if info is not None:
            info.setdefault("address", str(path))
            found.append(info)
    return found


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
