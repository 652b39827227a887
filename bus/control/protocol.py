"""The control protocol on the wire: JSON-RPC 2.0, one object per line.

    from bus.control import protocol

    line = protocol.dumps(protocol.request(1, "execute", {"name": "say_hello", "args": ["Ann"]}))
    reply = protocol.loads(line_from_the_socket)
    if "error" in reply and reply["error"]["code"] == protocol.ErrorCode.NO_SUCH_COMMAND: ...

This module is the one place in code where the protocol is written down:
its version, the line limit, the methods and topics, every error code the
server sends (``ErrorCode``), the envelopes (``request``, ``notification``,
``result``, ``error``) and the framing (``dumps``, ``loads``). The server
(``bus.control``) and the console (``busctl``) both build and read their
messages with it; ``docs/protocol.md`` says what each method does.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

__all__ = [
    "MAX_LINE",
    "METHODS",
    "SCHEMA_FORMATS",
    "TOPICS",
    "VERSION",
    "ErrorCode",
    "ProtocolError",
    "dumps",
    "error",
    "loads",
    "notification",
    "request",
    "result",
]

VERSION = 2
"""Bumped when a method's params or result change shape (2: ``execute`` returns ``value``)."""

MAX_LINE = 1 << 20
"""The longest line either side sends, newline excluded; a longer request closes the connection."""

METHODS = (
    "describe",
    "inspect",
    "execute",
    "fire",
    "who_handles",
    "subscribe",
    "unsubscribe",
    "traces",
    "wait_idle",
    "schema",
    "cancel",
    "hold",
    "held",
    "release",
    "drop",
    "unhold",
    "stub",
    "unstub",
    "stubs",
    "history",
)
"""The server's methods, as ``describe`` lists them."""

SCHEMA_FORMATS = ("jsonschema", "asyncapi")
"""What ``schema`` can export: a JSON Schema document, or an AsyncAPI 3.0 one."""

TOPICS = ("activity", "spans")
"""What ``subscribe`` can follow."""


class ErrorCode(IntEnum):
    """Every error code the server sends, one meaning each.

    The first five are JSON-RPC's own; the rest are the bus's, in the range
    JSON-RPC leaves to servers.
    """

    PARSE_ERROR = -32700
    """The line is not JSON."""
    INVALID_REQUEST = -32600
    """The JSON is not a request: no ``method``, a bad ``id``, not ``jsonrpc: "2.0"``."""
    METHOD_NOT_FOUND = -32601
    """No such method (``data.methods`` lists them)."""
    INVALID_PARAMS = -32602
    """A param is missing, unknown, or of the wrong type (``data.param`` names it)."""
    INTERNAL_ERROR = -32603
    """A bug in the server (``data.traceback``)."""
    HANDLER_ERROR = -32000
    """The command's handler raised (``data``: ``type``, ``message``, ``traceback``)."""
    NO_SUCH_COMMAND = -32001
    """No command by that name (``data.suggestions``)."""
    BAD_ARGUMENTS = -32002
    """The arguments do not bind to the command's signature (``data.signature``)."""
    BUS_CLOSED = -32003
    """The bus is closed or closing."""
    TIMED_OUT = -32004
    """No result within ``timeout``; the command still runs."""
    MAILBOX_FULL = -32005
    """The owner's mailbox is full."""
    DEADLOCK = -32006
    """The handler's wait would have closed a cycle (``data.cycle``)."""
    NO_SUCH_SUBSCRIPTION = -32007
    """``unsubscribe`` of a subscription this connection does not have."""
    TOO_MANY_CLIENTS = -32008
    """The server is full; sent with ``id: null`` before it hangs up (``data.limit``)."""
    TOO_MANY_SUBSCRIPTIONS = -32009
    """This connection has as many subscriptions as it may (``data.limit``)."""
    CLOSING = -32010
    """The server is closing this connection (``data.reason``: silent, incomplete, idle)."""
    SERVICE_FAILED = -32011
    """The command's service has failed (``data.service``, ``data.reason``)."""
    INVALID_ARGUMENT = -32012
    """An argument does not convert to its parameter's type; nothing was dispatched.

    ``data``: ``param``, ``expected`` and ``value`` of the first argument at
    fault, and ``problems``, every one of them (``param``, ``path``,
    ``expected``, ``value``, ``message``).
    """
    CANCELLED = -32013
    """The command was cancelled (by ``cancel``) before it finished (``data.type``)."""
    NO_SUCH_HOLD = -32014
    """``unhold``, ``release`` or ``drop`` of a hold or held item that is not there."""
    NO_SUCH_STUB = -32015
    """``unstub`` of a command that is not stubbed."""
    DROPPED = -32016
    """The command's call was held and a console dropped it (``DroppedByConsoleError``)."""


class ProtocolError(ValueError):
    """A line that is not a JSON-RPC message of this protocol."""


def request(rid: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A request; ``params`` are left out when ``None``."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A message that wants no reply (the server's ``activity``, ``spans``, ``dropped``)."""
    return {"jsonrpc": "2.0", "method": method, "params": params}


def result(rid: int | str | None, value: Any) -> dict[str, Any]:
    """A successful reply to request ``rid``."""
    return {"jsonrpc": "2.0", "id": rid, "result": value}


def error(
    rid: int | str | None, code: int, message: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An error reply to request ``rid`` (``None`` when it could not be read)."""
    body: dict[str, Any] = {"code": int(code), "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": body}


def dumps(message: Any) -> bytes:
    """One line of strict JSON (no NaN), UTF-8, ending in a newline.

    A lone surrogate (from ``"\\ud800"`` in a request, say), which UTF-8
    cannot carry, is escaped instead.

    Raises:
        TypeError, ValueError: the message is not JSON-serialisable.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def loads(line: bytes | str) -> dict[str, Any]:
    """The message on one line.

    Raises:
        ProtocolError: the line is not JSON, or not a JSON object.
    """
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"not a JSON-RPC message: a {type(message).__name__}")
    return message
