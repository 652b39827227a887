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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bus.control.protocol import ErrorCode

from ._remote import RemoteError

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["CancelOutcome", "Running", "cancel_execute", "describe", "outcome_of", "start_execute"]

CancelOutcome = Literal["cancelled", "sync", "finished", "unsupported"]
"""What a cancel did: ``cancelled``; ``sync``: a sync handler runs on, nothing
can interrupt it; ``finished``: it had already ended; ``unsupported``: the
bus has no ``cancel`` (older than async handlers)."""

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


def cancel_execute(client: Client, running: Running, wait: float = CANCEL_WAIT) -> CancelOutcome:
    """Ask the bus to cancel ``running``; what it did.

    Raises:
        ConnectionLost: the connection ended.
        RemoteError: the bus refused for another reason than those above.
        TimeoutError: no answer within ``wait`` seconds.
    """
    if running.future.done():
        return "finished"
    try:
        reply = client.request("cancel", {"id": running.id}, timeout=wait)
    except RemoteError as exc:
        if exc.code == ErrorCode.METHOD_NOT_FOUND:
            return "unsupported"
        if exc.code == ErrorCode.INVALID_PARAMS and exc.data.get("param") == "id":
            return "finished"  # no such execute running: it ended before the cancel came
        raise
    return outcome_of(reply, running.future.done())


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
    else:
        reason = "this bus cannot cancel commands (it has no 'cancel')"
    then = (
        "still waiting for it to finish (Ctrl-C stops waiting)"
        if still_waiting
        else "it runs on in the bus to its end"
    )
    return f"could not cancel {name}: {reason}; {then}"
