"""Cancelling a command a console started, and saying plainly what became of it.

    running = start_execute(client, "counted.wait_async", [], {}, timeout=30.0)
    ...                                       # Ctrl-C, twice
    outcome = cancel_execute(client, running)
    print(describe(outcome, "counted.wait_async"))
    # cancelled counted.wait_async: its handler was interrupted

The bus cancels only what the connection that asked for it started
(``cancel`` names the ``execute`` request's id), so the console keeps the id
of each ``execute`` it may cancel. A command that has not started never
runs; a running ``async def`` handler sees ``CancelledError`` at its
``await``; a running sync handler cannot be interrupted by anything, and
runs to its end (``docs/protocol.md``, ``cancel``).
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bus.control.protocol import ErrorCode

from ._remote import RemoteError

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "CancelOutcome",
    "Running",
    "can_cancel",
    "cancel_execute",
    "describe",
    "outcome_of",
    "request_cancel",
    "start_execute",
]

CancelOutcome = Literal["cancelled", "sync", "finished", "unsupported", "remote"]
"""What a cancel did: ``cancelled``; ``sync``: a sync handler runs on, nothing
can interrupt it; ``finished``: it had already ended; ``unsupported``: the
bus has no ``cancel`` (older than async handlers); ``remote``: the console is
attached over NATS, where each request stands alone and none can name an
``execute`` to cancel (``cancel`` needs the socket that sent it)."""

CANCEL_WAIT = 5.0
"""Seconds to wait for the bus to answer a ``cancel``."""


@dataclass(frozen=True)
class Running:
    """An ``execute`` this console sent: its request's id and its reply."""

    id: int
    future: Future[Any]


def start_execute(
    client: Client,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> Running:
    """Send an ``execute`` of ``name`` and keep what a ``cancel`` of it needs.

    Raises:
        ConnectionLost: the connection is closed.
    """
    params = {"name": name, "args": list(args), "kwargs": dict(kwargs), "timeout": timeout}
    request_id, future = client.request_with_id("execute", params)
    return Running(request_id, future)


def outcome_of(reply: Any, done: bool) -> CancelOutcome:
    """The outcome a ``cancel`` reply stands for.

    Args:
        reply: the ``cancel`` result, ``{"cancelled": BOOL, "async": BOOL}``.
        done: whether the command's reply has come meanwhile.
    """
    if isinstance(reply, dict) and reply.get("cancelled"):
        return "cancelled"
    if done or (isinstance(reply, dict) and reply.get("async")):
        return "finished"  # an async one that cannot be cancelled had already ended
    return "sync"


def request_cancel(client: Client, running: Running) -> Future[CancelOutcome]:
    """Ask the bus to cancel ``running``, without waiting; the future holds what it did.

    The future fails with the bus's error for anything but the outcomes above
    (``RemoteError``), or ``ConnectionLost``.
    """
    out: Future[CancelOutcome] = Future()
    if running.future.done():
        out.set_result("finished")
        return out
    if not can_cancel(client):
        out.set_result("remote")
        return out

    def answered(reply: Future[Any]) -> None:
        error = reply.exception() if not reply.cancelled() else None
        if reply.cancelled():
            out.cancel()
        elif error is None:
            out.set_result(outcome_of(reply.result(), running.future.done()))
        elif isinstance(error, RemoteError) and error.code == ErrorCode.METHOD_NOT_FOUND:
            out.set_result("unsupported")
        elif (
            isinstance(error, RemoteError)
            and error.code == ErrorCode.INVALID_PARAMS
            and error.data.get("param") == "id"
        ):
            out.set_result("finished")  # no such execute running: it ended before the cancel came
        else:
            out.set_exception(error)

    client.request_async("cancel", {"id": running.id}).add_done_callback(answered)
    return out


def can_cancel(client: Client) -> bool:
    """Whether ``client`` reaches its bus by its socket, where ``cancel`` can name an execute."""
    from ._transport import SocketTransport

    transport = getattr(client, "transport", None)
    return transport is None or isinstance(transport, SocketTransport)


def cancel_execute(client: Client, running: Running, wait: float = CANCEL_WAIT) -> CancelOutcome:
    """Ask the bus to cancel ``running`` and wait for its answer; what it did.

    Raises:
        ConnectionLost: the connection ended.
        RemoteError: the bus refused for another reason than those above.
        TimeoutError: no answer within ``wait`` seconds.
    """
    asked = request_cancel(client, running)
    try:
        return asked.result(wait)
    except FutureTimeoutError:
        raise TimeoutError(f"the bus did not answer the cancel within {wait:g} s") from None


def describe(outcome: CancelOutcome, name: str, *, still_waiting: bool = False) -> str:
    """One line saying what became of command ``name``.

    Args:
        still_waiting: the console goes on waiting for the command's reply
            (the REPL) rather than leaving it to run on (``busctl call``).
    """
    if outcome == "cancelled":
        return f"cancelled {name}: its handler was interrupted (or never started)"
    if outcome == "finished":
        return f"could not cancel {name}: it had already finished"
    if outcome == "sync":
        reason = "its handler is sync and cannot be interrupted"
    elif outcome == "remote":
        reason = (
            "over NATS no request can name another to cancel "
            "(attach to the bus's socket, on its machine, to cancel)"
        )
    else:
        reason = "this bus cannot cancel commands (it has no 'cancel')"
    then = "still waiting for it to finish" if still_waiting else "it runs on in the bus to its end"
    return f"could not cancel {name}: {reason}; {then}"
