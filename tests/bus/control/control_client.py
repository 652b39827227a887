"""A raw JSON-lines client for the control endpoint's tests (not a test module)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any


class LineClient:
    """One raw connection to a control socket, one JSON object per line.

    ``call`` sends a request and returns its reply, keeping notifications and
    other replies for later; ``until`` reads up to a reply and returns what came
    before it too. ``rcvbuf`` shrinks the receive buffer to make a slow reader.
    As a context manager it closes the connection on the way out.
    """

    def __init__(self, path: Path | str, timeout: float = 10.0, rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.buffer = b""
        self.notifications: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}
        self.ids = iter(range(1, 1 << 30))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: Any) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def read(self) -> dict[str, Any] | None:
        """The next line as JSON; ``None`` at EOF."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def reply(self, rid: Any) -> dict[str, Any]:
        """Read until the reply with ``rid`` arrives (others are kept)."""
        while rid not in self.replies:
            message = self.read()
            assert message is not None, f"connection closed before reply {rid!r}"
            if "id" in message:
                self.replies[message["id"]] = message
            else:
                self.notifications.append(message)
        return self.replies.pop(rid)

    def request(self, method: str, params: Any = None, rid: Any = None) -> Any:
        rid = next(self.ids) if rid is None else rid
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return rid

    def until(self, rid: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read up to the reply ``rid``: that reply, and every other line before it.

        Replies may come in any order: one read earlier is kept for its own call.
        """
        if rid in self.replies:
            return self.replies.pop(rid), []
        before = []
        while True:
            message = self.read()
            assert message is not None, f"closed before reply {rid!r}; got {before[-3:]}"
            if message.get("id") == rid and ("result" in message or "error" in message):
                return message, before
            if "id" in message and message["id"] is not None:
                self.replies[message["id"]] = message
            before.append(message)

    def call(self, method: str, params: Any = None) -> dict[str, Any]:
        return self.reply(self.request(method, params))

    def result(self, method: str, params: Any = None) -> Any:
        reply = self.call(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None) -> dict[str, Any]:
        reply = self.call(method, params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        return error

    def notification(self) -> dict[str, Any]:
        while not self.notifications:
            message = self.read()
            assert message is not None, "connection closed"
            if "id" in message:
                self.replies[message["id"]] = message
            else:
                self.notifications.append(message)
        return self.notifications.pop(0)

    def at_eof(self) -> bool:
        """Whether the server closed the connection (reads what is left)."""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
