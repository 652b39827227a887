"""``busctl call``'s wait for a result, and what Ctrl-C does to it.

    value = wait_call(client, "counted.wait_async", [], {}, timeout=30.0)

A first Ctrl-C stops waiting, as it always has: the command runs on in the
bus. For a few seconds more a second Ctrl-C cancels it (the bus's
``cancel``, on the connection that started it) and says what became of it:
cancelled, or not, because a sync handler cannot be interrupted, or because
it had already finished. Either way the verb ends with status 130.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import TYPE_CHECKING, Any

from .._cancel import can_cancel, cancel_execute, describe, start_execute
from .._client import _REPLY_GRACE  # as Client.execute waits: the bus's timeout and a grace
from . import _output
from .options import Failure, interrupted

if TYPE_CHECKING:
    from .._cancel import Running
    from .._client import Client

__all__ = ["CANCEL_WINDOW", "wait_call"]

CANCEL_WINDOW = 3.0
"""Seconds after a first Ctrl-C in which a second one cancels the command."""


def wait_call(
    client: Client, name: str, args: list[Any], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """Execute ``name`` and return its result; Ctrl-C as the module says.

    Raises:
        RemoteError: the bus refused the call, or the handler raised.
        TimeoutError: no reply within ``timeout`` (and a grace).
        Failure: Ctrl-C (status 130), saying what became of the command.
    """
    # A Ctrl-C while the call is being sent is one during the wait: it is
    # held until the try below, which answers it, has begun.
    held = _HeldInterrupt()
    try:
        running = start_execute(client, name, args, kwargs, timeout)
    except BaseException:
        held.release()
        raise
    wait = None if timeout is None else timeout + _REPLY_GRACE
    try:
        held.release()
        reply = running.future.result(wait)
    except FutureTimeoutError:
        running.future.cancel()
        raise TimeoutError(f"no reply to execute within {wait} s") from None
    except KeyboardInterrupt:
        if not can_cancel(client):  # over NATS: no second chance to offer
            raise interrupted(
                f"stopped waiting for {name}: it runs on in the bus; its result is dropped "
                "(over NATS a call cannot be cancelled)"
            ) from None
        raise _second_chance(client, running, name) from None
    return reply.get("value") if isinstance(reply, dict) else reply


class _HeldInterrupt:
    """SIGINT held back from its handler until ``release()``, which raises it then.

    Only the main thread receives Python's signals, so elsewhere (and where
    SIGINT is not Python's own handler) this holds nothing.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending = True

    def release(self) -> None:
        """Put the handler back; raise ``KeyboardInterrupt`` if a Ctrl-C came meanwhile."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def _second_chance(client: Client, running: Running, name: str) -> Failure:
    """After a first Ctrl-C: wait a little for a second, which cancels the command."""
    window = f"{CANCEL_WINDOW:g}"
    try:  # from here on, a second Ctrl-C means cancel, wherever it lands
        err = _output.console(stderr=True)
        err.print(
            ("\n" if err.is_terminal else "")  # on a line of its own, after the ^C echoed
            + f"stopped waiting for {name}: it runs on in the bus; "
            f"press Ctrl-C again within {window} s to cancel it",
            markup=False,
            highlight=False,
        )
        running.future.exception(CANCEL_WINDOW)
    except FutureTimeoutError:
        return _after_our_line(f"left {name} running in the bus; its result is dropped")
    except KeyboardInterrupt:
        return _cancel(client, running, name)
    except Exception:  # the connection ended: what the command did is unknown here
        return _after_our_line(f"{name}: the connection ended; its result is lost")
    return _after_our_line(f"{name} finished meanwhile; its result is dropped")


def _after_our_line(message: str) -> Failure:
    """Ctrl-C's outcome, when no ^C was echoed since our last line: no blank line first."""
    failure = interrupted(message)
    failure.after_echo = False
    return failure


def _cancel(client: Client, running: Running, name: str) -> Failure:
    try:
        outcome = cancel_execute(client, running)
    except Exception as exc:  # the connection ended, no answer: say so, in one line
        return interrupted(f"could not cancel {name}: {exc}")
    return interrupted(describe(outcome, name))
