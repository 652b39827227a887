"""The verbs that act on a bus: ``call`` executes a command, ``emit`` fires an event.

    $ busctl call lights.turn_on kitchen brightness=60
    $ busctl call 'lights.turn_on(room="hall", brightness=30)'
    $ busctl emit motion.detected hall

Arguments are read by ``busctl._args`` (JSON or Python literals, never
``eval``) and sent as they are: whether they bind to the command's signature
is the bus's to say, and its answer is shown as one line.
"""

from __future__ import annotations

from typing import Any

import click

from bus.control.protocol import ErrorCode

from .._args import check_text, option_hint, parse_args, parse_call
from .._client import RemoteError
from .._exit import ExitStatus
from .._intervene import read_arguments
from . import _output
from ._interrupt import wait_call
from .options import (
    Failure,
    as_failure,
    attached,
    attached_command,
    unavailable,
)

__all__ = ["call", "emit"]


_PASS_THROUGH = {"ignore_unknown_options": True}  # so `call f -1` reads -1 as an argument


def _read_call(name: str, arguments: tuple[str, ...]) -> tuple[str, list[Any], dict[str, Any]]:
    """``NAME ARG...``, the REPL's ``'NAME(arg, kw=value)'`` as one word, or ``@FILE``/``-``.

    ``@FILE`` (``-``: standard input) holds the arguments as JSON (an
    array, an object of keywords, or ``{"args": [...], "kwargs": {...}}``);
    ``ARG``s after it are added, a keyword replacing the file's.
    """
    if "(" in name and not arguments:
        return parse_call(name)
    tokens = list(arguments)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if tokens and (tokens[0] == "-" or tokens[0].startswith("@")):
        args, kwargs = read_arguments(tokens.pop(0))
    more, more_kwargs = parse_args(tokens)
    return check_text(name), [*args, *more], {**kwargs, **more_kwargs}


@click.command("call", context_settings=_PASS_THROUGH)
@click.argument("name")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="[ARG]...")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the result.",
)
@attached_command
def call(
    name: str,
    arguments: tuple[str, ...],
    timeout: float,
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Execute a command and print its result.

    Each ARG is JSON or a Python literal (a bare word is a string);
    key=value passes a keyword argument. Nothing is ever eval'd. @FILE (or
    - for stdin) reads the arguments from JSON: an array, an object of
    keywords, {"args": [...], "kwargs": {...}}, or a line of `busctl history
    --json` (its call's arguments); ARGs after it add to them.

    Ctrl-C stops waiting (the command runs on in the bus); a second Ctrl-C
    within 3 s cancels it: an async handler is interrupted, a sync one
    cannot be and runs to its end.

    \b
      busctl call say_hello Alice
      busctl call lights.turn_on @args.json brightness=40
      busctl history lights.turn_on -n 1 --json | busctl call lights.turn_on -
      busctl call lights.turn_on kitchen brightness=60
      busctl call notifier.send "'dinner is ready'" channel=email
      busctl call thermostat.set_target living_room 21.5
      busctl call 'lights.turn_on(room="hall", brightness=30)'
    """
    name, args, kwargs = _read_call(name, arguments)
    with attached(target, nats) as client:
        try:
            # Ctrl-C stops the wait, not the command; a second one cancels it.
            result = wait_call(client, name, args, kwargs, timeout)
        except RemoteError as exc:
            if exc.code == ErrorCode.HANDLER_ERROR and not unavailable(exc):
                raise Failure(
                    f"{name} raised {exc}",
                    ExitStatus.FAILED,
                    exc.remote_traceback,
                    type=exc.type,
                    code=exc.code,
                ) from exc
            hint = option_hint(list(arguments)) if exc.code == ErrorCode.BAD_ARGUMENTS else None
            if hint is not None:
                failure = as_failure(exc)
                assert failure is not None  # a RemoteError always maps to one
                raise Failure(
                    f"{failure}; {hint}", failure.status, type=exc.type, code=exc.code
                ) from exc
            raise
    if as_json:
        _output.print_json(result)
    else:
        _output.print_value(result)


@click.command("emit", context_settings=_PASS_THROUGH)
@click.argument("name")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED, metavar="[ARG]...")
@attached_command
def emit(
    name: str,
    arguments: tuple[str, ...],
    target: str | None,
    nats: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Fire an event (arguments as for `call`); print how many listeners it reached."""
    name, args, kwargs = _read_call(name, arguments)
    with attached(target, nats) as client:
        count = client.fire(name, args, kwargs)
    if as_json:
        _output.print_json({"name": name, "listeners": count})
        return
    plural = "s" if count != 1 else ""
    _output.console().print(
        f"fired {name} to {count} listener{plural}", markup=False, highlight=False
    )
