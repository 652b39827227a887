"""What the bus answers when a request fails, and the client's own ways of failing.

    try:
        client.execute("lights.turn_on", ["attic"])
    except RemoteError as exc:
        exc.code == ErrorCode.HANDLER_ERROR, exc.type, exc.remote_traceback
    except ConnectionLost:
        ...                               # no reply will come

``RemoteError`` carries a JSON-RPC error as the bus sent it (its code is one
of ``bus.control.protocol.ErrorCode``); ``remote_error`` reads one whatever
shape a misbehaving server gave it. ``FirstOnly`` keeps what goes wrong on
every line from flooding the log.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bus.control.protocol import ErrorCode

__all__ = [
    "ConnectionLost",
    "FirstOnly",
    "RemoteError",
    "invalid_argument",
    "refusal",
    "remote_error",
]

_log = logging.getLogger("busctl._client")


class RemoteError(Exception):
    """The bus answered a request with a JSON-RPC error.

    Attributes:
        code: the JSON-RPC error code (see the table in ``docs/protocol.md``).
        message: the error's one-line message.
        data: the error's ``data`` object (``{}`` when absent).
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        self.code = int(code)
        self.message = message
        self.data = dict(data or {})
        super().__init__(message)

    @property
    def type(self) -> str | None:
        """The remote exception's class name (``data["type"]``), if the bus sent one."""
        value = self.data.get("type")
        return value if isinstance(value, str) else None

    @property
    def remote_traceback(self) -> str | None:
        """The handler's traceback as text (``data["traceback"]``), if the bus sent one."""
        value = self.data.get("traceback")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        if self.type and not self.message.startswith(self.type):
            return f"{self.type}: {self.message}"
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.code, self.message, self.data))


class ConnectionLost(Exception):
    """The connection to the bus is closed or broke; no reply will come."""


def remote_error(error: Any) -> RemoteError:
    """The ``RemoteError`` for a JSON-RPC ``error`` member, whatever shape it came in."""
    if not isinstance(error, dict):
        return RemoteError(ErrorCode.INTERNAL_ERROR, str(error))
    code = error.get("code")
    data = error.get("data")
    return RemoteError(
        code if isinstance(code, int) and not isinstance(code, bool) else ErrorCode.INTERNAL_ERROR,
        str(error.get("message", "")),
        data if isinstance(data, dict) else {},
    )


def invalid_argument(exc: Exception) -> RemoteError:
    """The ``INVALID_ARGUMENT`` error the control endpoint sends for ``exc``.

    For a bus in this process (``bus.schema.InvalidArgumentError`` raised by
    ``convert_call`` or ``convert_event``), so that a face reads the same
    error whether the bus is attached or in process: the message, and each
    problem's ``param``, ``path``, ``expected``, ``value`` and ``message``.
    """
    from bus.schema import to_json

    problems = [
        {
            "param": p.param,
            "path": p.path,
            "expected": p.expected,
            "value": to_json(p.value)[0],
            "message": p.message,
        }
        for p in getattr(exc, "problems", ())
    ]
    first = problems[0] if problems else {"param": None, "expected": None, "value": None}
    data = {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "target": getattr(exc, "target", None),
        "param": first["param"],
        "expected": first["expected"],
        "value": first["value"],
        "problems": problems,
        "signature": getattr(exc, "signature", None) or None,
    }
    return RemoteError(ErrorCode.INVALID_ARGUMENT, str(exc), data)


def refusal(exc: Exception, signature: str | None = None) -> RemoteError | None:
    """The error the control endpoint sends when it refuses a call for ``exc``, if it would.

    For a bus in this process, which refuses before it dispatches as the
    endpoint does (``bus.schema.convert_call``, ``convert_event``): a value
    that does not convert (``INVALID_ARGUMENT``), no such command
    (``NO_SUCH_COMMAND``), arguments that do not bind (``BAD_ARGUMENTS``, with
    the command's ``signature``). ``None`` for anything else.
    """
    from bus import CommandNotFoundError
    from bus.schema import InvalidArgumentError

    described = {"type": type(exc).__qualname__, "message": str(exc)}
    if isinstance(exc, InvalidArgumentError):
        return invalid_argument(exc)
    if isinstance(exc, CommandNotFoundError):
        suggestions = list(getattr(exc, "suggestions", ()) or ())
        return RemoteError(
            ErrorCode.NO_SUCH_COMMAND, str(exc), {**described, "suggestions": suggestions}
        )
    if isinstance(exc, TypeError):
        return RemoteError(ErrorCode.BAD_ARGUMENTS, str(exc), {**described, "signature": signature})
    return None


class FirstOnly:
    """Logs the first of a repeated failure, and counts the rest.

    What a misbehaving server or callback does on every line must not flood
    the log: one line says what happened, ``report()`` how often.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, message: str, *args: object, exc: BaseException | None = None) -> None:
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            _log.warning(message + " (the next ones are counted, not logged)", *args, exc_info=exc)

    def report(self) -> None:
        """Log how many more there were, if any (once, at the end)."""
        with self._lock:
            more, self.count = self.count - 1, 0
        if more > 0:
            _log.warning("%d more %s were not logged", more, self.what)
