"""Times as every face shows them: latencies, durations, wall-clock times, trace offsets.

    latency(0.42)          # '420 µs'   (a latency is given in milliseconds)
    latency(3.456)         # '3.46 ms'
    duration(3725.0)       # '1 h 2 min' (a duration is given in seconds)
    clock(1_700_000_000.5) # '23:13:20.500', local time
    trace_ms(0.06)         # '0.06 ms'  (always milliseconds: offsets in one trace line up)

A latency picks the unit a person reads at a glance (``ns``, ``µs``, ``ms``,
``s``), with a space before it and about three significant digits. The CLI,
the REPL and the TUI all show command and listener latencies, activity
durations and span durations with ``latency``; ``trace_ms`` is only for the
columns of ``busctl trace show``, where times in one tree are compared.

Anything that is not a finite number (``None``, a string, ``NaN``, a bool
from a misbehaving bus) is shown as ``-``, never a crash.
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["clock", "duration", "latency", "number", "trace_ms"]

_LAST_CLOCK = 253_402_300_800  # 10000-01-01: time.localtime takes years 1..9999 or so


def number(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def latency(ms: Any) -> str:
    """A latency given in milliseconds: ``850 ns``, ``420 µs``, ``3.20 ms``, ``1.25 s``; ``-``."""
    value = number(ms)
    if value is None:
        return "-"
    if value < 0:
        return "-" + latency(-value)
    if value < 0.001:
        return f"{value * 1e6:.0f} ns"
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"
    return duration(value / 1000) if value >= 60_000 else f"{value / 1000:.2f} s"


def duration(seconds: Any) -> str:
    """A span of time in seconds as a person says it: ``42 s``, ``3 min 5 s``, ``3 d 4 h``."""
    value = number(seconds)
    if value is None:
        return "-"
    if value < 0:
        return "-" + duration(-value)
    if value < 1:
        return latency(value * 1000)
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    total = int(value)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


def clock(epoch: Any) -> str:
    """Local wall-clock time with milliseconds, ``14:03:07.215``; ``--:--:--.---`` if unknown.

    ``epoch`` is seconds since the epoch; a value no calendar can show (negative,
    past the year 9999, not a number) is unknown.
    """
    value = number(epoch)
    if value is None or not 0 <= value < _LAST_CLOCK:
        return "--:--:--.---"
    millis = int(value * 1000) % 1000
    return time.strftime("%H:%M:%S", time.localtime(value)) + f".{millis:03d}"


def trace_ms(ms: float) -> str:
    """A time inside one trace, always in milliseconds: ``0.06 ms``, ``200.6 ms``, ``1.25 s``.

    For the offsets and durations of ``busctl trace show``, which are read
    down a column and compared: one unit keeps them comparable at a glance.
    """
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"
