"""A log that reports a repeated failure once a second, with the count skipped."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs a repeated failure at most once a second, with the count skipped.

    Thread-safe. A failure that repeats for every item (a broken listener, a
    full mailbox, a span that cannot be built) must not flood the log.
    """

    __slots__ = ("_last", "_lock", "_log", "_skipped")

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._last = -1e9
        self._skipped = 0
        self._lock = threading.Lock()

    def error(self, message: str, *args: object, exc: BaseException) -> None:
        self._report(logging.ERROR, message, args, exc)

    def warning(self, message: str, *args: object) -> None:
        self._report(logging.WARNING, message, args, None)

    def _report(
        self, level: int, message: str, args: tuple[object, ...], exc: BaseException | None
    ) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < 1.0:
                self._skipped += 1
                return
            skipped, self._last, self._skipped = self._skipped, now, 0
        if skipped:
            message += f" ({skipped} more since the last report)"
        self._log.log(level, message, *args, exc_info=exc)
