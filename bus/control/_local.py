"""The control protocol's methods, answered in process: for a console that holds the bus itself.

    from bus.control import RequestError, answer

    answer(bus, "hold", {"pattern": "lights.turn_on"})    # as over the socket
    try:
        answer(bus, "release", {"id": 99})
    except RequestError as exc:
        exc.code == protocol.ErrorCode.NO_SUCH_HOLD

A console in the same process as its bus (``busctl``'s TUI on a bus it was
given, tests) asks exactly what it would ask over the socket, and gets the
same results and the same error codes, without a socket. Methods that
answer later or keep sending, or that act on a connection's own requests
(``execute``, ``subscribe``, ``unsubscribe``, ``cancel``) are the bus's own
verbs, ``Bus.watch`` and ``Future.cancel`` in process, and are refused here.
"""

from __future__ import annotations

from typing import Any

from . import _methods as rpc
from ._served import ServedBus
from .protocol import ErrorCode

__all__ = ["RequestError", "answer"]

_NOT_HERE = ("execute", "subscribe", "unsubscribe", "cancel")


class RequestError(Exception):
    """A request ``answer`` refused, as the server would: ``code``, ``message``, ``data``.

    ``code`` is one of ``bus.control.protocol.ErrorCode``.
    """

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        self.code = int(code)
        self.message = message
        self.data = dict(data or {})
        super().__init__(message)


class _Session:
    """What a method needs of whoever it answers, in process."""

    def __init__(self, bus: ServedBus) -> None:
        self.bus = bus
        self.address = "(in process)"

    def execute(self, *args: Any, **kwargs: Any) -> None:
        raise rpc.RpcError(ErrorCode.METHOD_NOT_FOUND, "execute is Bus.execute_command here")

    def subscribe(
        self, topic: str, patterns: tuple[str, ...], buffer: int, *, lossless: bool = False
    ) -> Any:
        raise rpc.RpcError(ErrorCode.METHOD_NOT_FOUND, "subscribe is Bus.watch here")

    def executing(self, rid: Any) -> Any:
        raise rpc.RpcError(ErrorCode.METHOD_NOT_FOUND, "cancel is Future.cancel here")

    def unsubscribe(self, sid: Any) -> int | None:
        raise rpc.RpcError(ErrorCode.METHOD_NOT_FOUND, "subscribe is Bus.watch here")


def answer(bus: ServedBus, method: str, params: dict[str, Any] | None = None) -> Any:
    """The result of control request ``method`` on ``bus``, as its server would answer it.

    Blocks as the method does (``wait_idle``, ``traces``, ``history`` wait
    for the bus a little); any thread.

    Raises:
        RequestError: what the server would answer with an error.
    """
    handler = rpc.METHODS.get(method)
    if handler is None or method in _NOT_HERE:
        raise RequestError(
            ErrorCode.METHOD_NOT_FOUND,
            f"no method {method!r} here",
            {"methods": [m for m in rpc.METHODS if m not in _NOT_HERE]},
        )
    try:
        return handler(_Session(bus), dict(params or {}), None)
    except Exception as exc:
        error = rpc.error_reply(exc)
        raise RequestError(error.code, error.message, error.data) from None
