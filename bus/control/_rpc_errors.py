"""The bus's errors as JSON-RPC errors: ``RpcError`` and the mapping of each refusal.

The control methods (``_methods``) raise ``RpcError`` for wrong params, and
map what the bus raised, or what a command's future failed with, to the codes
of ``docs/protocol.md`` (``ErrorCode``) with ``error_reply`` and
``handler_error``. The NATS responders answer with the same mapping.
"""

from __future__ import annotations

import traceback
from typing import Any

from .._core._contract import InvalidArgumentError
from .._core._errors import (
    BusClosedError,
    BusError,
    CommandNotFoundError,
    DeadlockError,
    DroppedByConsoleError,
    MailboxFullError,
    ServiceFailedError,
    error_message,
    error_text,
)
from .._observe._jsonval import json_ready
from . import protocol
from .protocol import ErrorCode

__all__ = [
    "KNOWN_ERRORS",
    "RpcError",
    "described",
    "error_reply",
    "handler_error",
    "invalid_argument",
    "service_failed",
    "traceback_text",
]

#: Refusals that are answered, not logged.
KNOWN_ERRORS = (BusError,)


class RpcError(Exception):
    """A JSON-RPC error to send back: ``code``, ``message`` and ``data``."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def reply(self, rid: int | str | None) -> dict[str, Any]:
        """The error reply to request ``rid``."""
        return protocol.error(rid, self.code, self.message, self.data)

    def to_json(self) -> dict[str, Any]:
        """The ``error`` member of a reply."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def described(exc: BaseException, **extra: Any) -> dict[str, Any]:
    """The ``data`` of an error reply: the exception's type and message, and ``extra``."""
    return {"type": type(exc).__qualname__, "message": error_message(exc), **extra}


def traceback_text(exc: BaseException) -> str:
    """The exception's traceback, as text."""
    return "".join(traceback.format_exception(exc))


def error_reply(exc: BaseException) -> RpcError:
    """The JSON-RPC error for an exception raised while serving a request.

    Anything that is not one of the bus's known refusals is a bug in the
    server: ``-32603`` with the traceback.
    """
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, InvalidArgumentError):
        return invalid_argument(exc)
    if isinstance(exc, CommandNotFoundError):
        return RpcError(
            ErrorCode.NO_SUCH_COMMAND, str(exc), described(exc, suggestions=exc.suggestions)
        )
    if isinstance(exc, BusClosedError):
        return RpcError(ErrorCode.BUS_CLOSED, str(exc), described(exc))
    if isinstance(exc, MailboxFullError):
        return RpcError(ErrorCode.MAILBOX_FULL, str(exc), described(exc))
    if isinstance(exc, ServiceFailedError):
        return service_failed(exc)
    if isinstance(exc, DeadlockError):
        return RpcError(ErrorCode.DEADLOCK, str(exc), described(exc, cycle=exc.cycle))
    return RpcError(
        ErrorCode.INTERNAL_ERROR,
        f"internal error: {error_text(exc)}",
        described(exc, traceback=traceback_text(exc)),
    )


def service_failed(exc: ServiceFailedError) -> RpcError:
    """``-32011``: the command's service has failed; which, and why."""
    data = described(exc, service=exc.service, reason=exc.reason)
    return RpcError(ErrorCode.SERVICE_FAILED, str(exc), data)


def invalid_argument(exc: InvalidArgumentError) -> RpcError:
    """``-32012`` for arguments that do not convert: which, what was expected, what came."""
    problems = [
        {
            "param": p.param,
            "path": p.path,
            "expected": p.expected,
            "value": json_ready(p.value)[0],
            "message": p.message,
        }
        for p in exc.problems
    ]
    first = problems[0] if problems else {"param": None, "expected": None, "value": None}
    data = described(
        exc,
        target=exc.target,
        param=first["param"],
        expected=first["expected"],
        value=first["value"],
        problems=problems,
        signature=exc.signature or None,
    )
    return RpcError(ErrorCode.INVALID_ARGUMENT, str(exc), data)


def handler_error(exc: BaseException) -> RpcError:
    """The error for what a command's future failed with (``-32000`` mostly)."""
    if isinstance(exc, DroppedByConsoleError):
        return RpcError(ErrorCode.DROPPED, str(exc), described(exc, hold=exc.hold))
    if isinstance(exc, DeadlockError):
        return RpcError(ErrorCode.DEADLOCK, str(exc), described(exc, cycle=exc.cycle))
    if isinstance(exc, BusClosedError):
        return RpcError(ErrorCode.BUS_CLOSED, str(exc), described(exc))
    if isinstance(exc, ServiceFailedError):
        return service_failed(exc)
    if isinstance(exc, InvalidArgumentError):  # refused by a handler's own process (NATS)
        return invalid_argument(exc)
    message = error_text(exc) if error_message(exc) else type(exc).__name__
    return RpcError(ErrorCode.HANDLER_ERROR, message, described(exc, traceback=traceback_text(exc)))
