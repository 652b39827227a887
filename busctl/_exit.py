"""Exit codes of ``busctl``, one meaning each."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus"]


class ExitStatus(IntEnum):
    """What ``busctl`` returns to the shell."""

    OK = 0  # the verb did what was asked
    ERROR = 1  # it failed: the one-line reason is on stderr
    USAGE = 2  # the command line itself was wrong (click's own code)
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
