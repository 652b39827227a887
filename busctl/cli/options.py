"""What every ``busctl`` verb shares: options, attaching, failures as exit codes.

    @click.command("status")
    @attached_command                 # --bus, --nats, --json, -v, and failures reported
    def status(target, nats, as_json, verbose):
        with attached(target, nats) as client:
            ...
        raise Failure("one line for stderr", ExitStatus.NOT_FOUND)

A verb raises ``Failure`` (or lets a client, argument or bus error through);
``reports_failures`` prints it as one line on stderr, the remote traceback
too with ``-v``, and exits with the matching ``ExitStatus``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from bus import TransportError
from bus.control.protocol import ErrorCode

from .._args import ArgumentError
from .._client import Client, ConnectionLost, RemoteError
from .._exit import ExitStatus
from ..render.text import visible
from . import _output

__all__ = [
    "HINT_RUN",
    "Failure",
    "as_failure",
    "attached",
    "attached_command",
    "bus_option",
    "json_option",
    "nats_option",
    "reports_failures",
    "unavailable",
    "verbose_option",
]

P = ParamSpec("P")
R = TypeVar("R")

HINT_RUN = "start one with `busctl run`"


class Failure(Exception):
    """A verb failed: ``message`` goes to stderr as one line, ``status`` to the shell.

    ``detail`` is a traceback, shown only with ``-v``. ``type`` and ``code``
    (the bus's error type and JSON-RPC code, when the bus said) go into the
    JSON error object a verb run with ``--json`` prints on stdout, unless
    ``reported``: the verb printed a JSON report that says so already.
    """

    after_echo = True
    """Ctrl-C's message comes right after the ^C a terminal echoed: a new line first."""

    def __init__(
        self,
        message: str,
        status: ExitStatus,
        detail: str | None = None,
        *,
        type: str | None = None,
        code: int | None = None,
        reported: bool = False,
    ) -> None:
        self.status = status
        self.detail = detail
        self.type = type
        self.code = code
        #: The verb's JSON on stdout already says what failed (a report with
        #: its errors): no error object after it, stdout stays one document.
        self.reported = reported
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        """``{"error": {"type", "message", "code", "status"}}``: what ``--json`` prints."""
        return {
            "error": {
                "type": self.type or "Failure",
                "message": visible(str(self)),
                "code": self.code,
                "status": int(self.status),
            }
        }


def interrupted(message: str = "interrupted") -> Failure:
    """Ctrl-C: ``message`` says what became of the work (exit status 130)."""
    return Failure(message, ExitStatus.INTERRUPTED)


def bus_option(fn: Callable[P, R]) -> Callable[P, R]:
    """``--bus NAME|PATH`` (the ``target`` param) and ``--nats URL`` (``nats``)."""
    return click.option(
        "--bus",
        "target",
        metavar="NAME|PATH",
        help="The bus to attach to (default: $BUS_ADDRESS, else the one running). "
        "With --nats: a bus's name on that server (default: the one there).",
    )(nats_option(fn))


def nats_option(fn: Callable[P, R]) -> Callable[P, R]:
    """``--nats URL`` (the ``nats`` param), also read from ``$BUS_NATS_URL``."""
    return click.option(
        "--nats",
        "nats",
        metavar="URL",
        envvar="BUS_NATS_URL",
        help="Attach over this NATS server to a bus across processes, seen whole "
        "(default: $BUS_NATS_URL; '' for none).",
    )(fn)


def json_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only (for scripts).")(
        fn
    )


def verbose_option(fn: Callable[P, R]) -> Callable[P, R]:
    return click.option("-v", "--verbose", is_flag=True, help="On failure, add the traceback.")(fn)


def reports_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into one line on stderr and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        verbose = bool(kwargs.get("verbose"))
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # `busctl monitor | head`: the reader has had enough
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            sys.exit(ExitStatus.OK)
        except Failure as failure:
            _exit_with(failure, verbose, as_json)
        except KeyboardInterrupt:  # a verb that has more to say catches it first
            _exit_with(interrupted(), verbose, as_json)
        except Exception as exc:
            translated = as_failure(exc)
            if translated is None:
                raise
            _exit_with(translated, verbose, as_json)

    return wrapper


def _exit_with(failure: Failure, verbose: bool, as_json: bool = False) -> NoReturn:
    if as_json and not failure.reported:
        # A script reading stdout learns what failed there too; the line on
        # stderr stays for the person watching.
        with contextlib.suppress(OSError):
            _output.print_json(failure.to_json(), indent=None)
    message = str(failure)
    if failure.status is ExitStatus.INTERRUPTED:
        # Not an error: the user stopped it. On a line of its own, after the
        # ^C a terminal echoes (unless no ^C came just before: after_echo).
        err = _output.console(stderr=True)
        fresh = err.is_terminal and failure.after_echo
        err.print(("\n" if fresh else "") + message, markup=False, highlight=False)
        sys.exit(failure.status)
    if failure.detail and not verbose:
        message += " (-v shows the traceback)"
    _output.error(message)
    if failure.detail and verbose:
        sys.stderr.write(visible(failure.detail.rstrip(), multiline=True) + "\n")
    sys.exit(failure.status)


def as_failure(exc: Exception) -> Failure | None:
    """The ``Failure`` an exception from the client or the bus stands for."""
    from bus.control import (
        AmbiguousBusError,
        BusFullError,
        ForeignBusError,
        NoBusError,
        SocketDirError,
    )

    kind = type(exc).__name__
    if isinstance(exc, (BusFullError, ForeignBusError, TransportError)):
        # the message is the one line to show
        return Failure(str(exc), ExitStatus.NO_BUS, type=kind)
    if isinstance(exc, SocketDirError):
        # it names the directory and the fix
        return Failure(str(exc), ExitStatus.ERROR, type=kind)
    if isinstance(exc, NoBusError):
        message = str(exc)
        if "busctl run" not in message:
            message = f"{message}; {HINT_RUN}"
        return Failure(message, ExitStatus.NO_BUS, type=kind)
    if isinstance(exc, AmbiguousBusError):
        # The library's text ends in its own hint; this face has a better one.
        names = ", ".join(exc.choices)
        return Failure(
            f"{len(exc.choices)} buses are running ({names}): choose one with --bus NAME",
            ExitStatus.NO_BUS,
            type=kind,
        )
    if isinstance(exc, ConnectionLost):
        return Failure(str(exc), ExitStatus.NO_BUS, type=kind)
    if isinstance(exc, ArgumentError):
        return Failure(f"bad argument: {exc}", ExitStatus.USAGE, type=kind)
    if isinstance(exc, TimeoutError):
        return Failure(str(exc) or "timed out", ExitStatus.TIMEOUT, type=kind)
    if isinstance(exc, RemoteError):
        return _remote_failure(exc)
    return None


_CODE_STATUS: dict[int, ExitStatus] = {
    ErrorCode.HANDLER_ERROR: ExitStatus.FAILED,
    ErrorCode.NO_SUCH_COMMAND: ExitStatus.NOT_FOUND,
    ErrorCode.BAD_ARGUMENTS: ExitStatus.USAGE,
    # An argument of the wrong type (the typed contract): as wrong as one that does not bind.
    ErrorCode.INVALID_ARGUMENT: ExitStatus.USAGE,
    ErrorCode.BUS_CLOSED: ExitStatus.NO_BUS,
    ErrorCode.TIMED_OUT: ExitStatus.TIMEOUT,
    ErrorCode.NO_SUCH_HOLD: ExitStatus.NOT_FOUND,
    ErrorCode.NO_SUCH_STUB: ExitStatus.NOT_FOUND,
}

# Errors whose text starts with the remote exception's type (ValueError: ...).
_TYPED = (ErrorCode.HANDLER_ERROR, ErrorCode.INTERNAL_ERROR)


def unavailable(exc: RemoteError) -> bool:
    """Whether a call failed because no process serving it answered (a bus across processes).

    The bus reports it as the call's error (``ServiceUnavailableError``), but
    no handler raised it: the command is known, its processes are gone or
    silent, and it fails at its deadline.
    """
    return exc.code == ErrorCode.HANDLER_ERROR and exc.type == "ServiceUnavailableError"


def _untyped(exc: RemoteError) -> str:
    """The error's message without the ``Type: `` the bus put before it."""
    prefix = f"{exc.type}: "
    return (
        exc.message[len(prefix) :] if exc.type and exc.message.startswith(prefix) else exc.message
    )


def _remote_failure(exc: RemoteError) -> Failure:
    if unavailable(exc):
        # No handler raised: no process serving the command answered in time.
        return Failure(f"{_untyped(exc)} ({exc.type})", ExitStatus.TIMEOUT)
    status = _CODE_STATUS.get(exc.code, ExitStatus.ERROR)
    message = str(exc) if exc.code in _TYPED else exc.message
    suggestions = exc.data.get("suggestions")
    if suggestions and "did you mean" not in message:
        message += "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
    signature = exc.data.get("signature")
    if exc.code == ErrorCode.BAD_ARGUMENTS and signature and str(signature) not in message:
        message += f" (signature: {signature})"
    if exc.code == ErrorCode.TIMED_OUT and "--timeout" not in message:
        # The bus's text already says the command may still finish.
        message = f"{message}; raise --timeout to wait longer"
    return Failure(message, status, exc.remote_traceback, type=exc.type, code=exc.code)


@contextlib.contextmanager
def attached(target: str | None, nats: str | None = None) -> Iterator[Client]:
    """A client of the bus ``target`` names (over the NATS server ``nats``, if given)."""
    client = Client.connect(target, nats=nats or None)
    try:
        yield client
    finally:
        client.close()


def attached_command(fn: Callable[P, R]) -> Callable[P, R]:
    """The common options of a verb that reads from one bus and may print JSON."""
    return bus_option(json_option(verbose_option(reports_failures(fn))))
