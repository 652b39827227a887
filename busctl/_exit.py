"""Exit codes of ``busctl``, one meaning each."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus"]


class ExitStatus(IntEnum):
    """What ``busctl`` returns to the shell."""

    OK = 0  # the verb did what was asked
    ERROR = 1  # it failed: the one-line reason is on stderr
    USAGE = 2  # the command line was wrong: click's code, a bad literal, args not binding,
    # a value of the wrong type (nothing was sent on), a file that cannot be written there,
    # or a `run` target that does not load
    NO_BUS = 3  # no bus to attach to, several to choose from, or the connection failed
    NOT_FOUND = 4  # no such command (or nothing handles the name)
    FAILED = 5  # the command's handler raised (`-v` shows the remote traceback)
    TIMEOUT = 6  # no result within --timeout (the command may still finish)
    DIFFERS = 7  # replay: a command's result now differs from the recording
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT (monitor and capture end with OK)
