"""Where the REPL writes: one rich console, and the count of what went wrong.

    printer = Printer(sys.stdout, colour=None, verbose=False)
    printer.say("monitor stopped (3 shown)")
    printer.failed(remote_error, hint="write brightness=60, not --brightness 60")
    printer.failures                      # a script's exit status is 1 if not 0

Every message may carry names, errors and tracebacks from the bus, so each
is shown with its control characters made visible, never read as markup.
"""

from __future__ import annotations

import os
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from .._args import ArgumentError
from ..render.text import visible
from .views import show_error

__all__ = ["Printer"]


class Printer:
    """The REPL's output: results and messages to ``stream``, failures counted.

    Args:
        stream: where everything is written.
        colour: colour and highlighting (``None``: when ``stream`` is a terminal
            and ``NO_COLOR`` is unset).
        verbose: show the remote traceback with each error.

    Attributes:
        console: the rich console on ``stream`` (views write to it).
        failures: how many lines failed, for ``run_script``'s status.
        last_error: the last error shown, for the ``traceback`` verb.
    """

    def __init__(self, stream: TextIO, *, colour: bool | None, verbose: bool) -> None:
        if colour is None:
            colour = stream.isatty() and not os.environ.get("NO_COLOR")
        self.colour = colour
        self.verbose = verbose
        self.failures = 0
        self.last_error: BaseException | None = None
        self.console = Console(
            file=stream,
            force_terminal=colour,
            no_color=not colour,
            highlight=colour,
            soft_wrap=not colour,
            width=None if colour else 200,
        )

    def say(self, text: str, *, error: bool = False) -> None:
        """One message; ``error`` prefixes ``error:`` (red on a terminal)."""
        text = visible(text, multiline=not error)
        if error and self.colour:
            self.console.print(f"[bold red]error:[/] {escape(text)}", highlight=False)
        elif error:
            self.console.print(f"error: {text}", markup=False, highlight=False)
        else:
            self.console.print(text, markup=False, highlight=False)

    def failed(self, exc: BaseException, *, hint: str | None = None, counted: bool = True) -> None:
        """A request that failed: one line (the traceback too when verbose).

        ``counted``: a line the user typed failed (not the REPL's own
        bookkeeping, such as attaching), so a script ends with status 1.
        """
        if counted:
            self.last_error = exc
            self.failures += 1
        show_error(self.console, exc, verbose=self.verbose, colour=self.colour, hint=hint)

    def bad_arguments(self, exc: ArgumentError) -> None:
        """A line that could not be read: ``error: bad argument: ...``, counted."""
        self.last_error = exc
        self.failures += 1
        self.say(f"bad argument: {exc}", error=True)
