"""Listener patterns: exact names, ``*`` for everything, and dotted globs.

A pattern without ``*`` matches exactly that name. ``*`` matches any run of
characters, dots included, so ``*`` alone matches every event, ``lights.*``
matches ``lights.on`` and ``lights.kitchen.on``, and ``*.changed`` matches
``thermostat.changed``. Nothing else is special: ``?`` and ``[`` are literal.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["compile_pattern", "is_wildcard", "pattern_matches", "validate_name", "validate_pattern"]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")
_PATTERN_PART = r"(?:[A-Za-z0-9_\-]|\*)+"
_PATTERN_RE = re.compile(rf"{_PATTERN_PART}(\.{_PATTERN_PART})*")


def validate_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid command or event name, else raise.

    Names are dotted identifiers: letters, digits, ``_`` and ``-``, segments
    separated by single dots (``lights.kitchen.on``).

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: the string is not a valid name.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits, '_' and '-' in dot-separated parts"
        )
    return name


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid listener pattern, else raise.

    Raises:
        TypeError: ``pattern`` is not a string.
        ValueError: the string is not a valid pattern.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"event pattern must be a str, not {type(pattern).__name__}")
    if not _PATTERN_RE.fullmatch(pattern):
        raise ValueError(
            f"invalid event pattern {pattern!r}: use a name, '*', or dotted globs like 'lights.*'"
        )
    return pattern


def is_wildcard(pattern: str) -> bool:
    """Whether ``pattern`` contains ``*`` (and so may match many names)."""
    return "*" in pattern


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression equivalent to ``pattern`` (anchored at both ends)."""
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(rf"\A{body}\Z", re.DOTALL)


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether the listener ``pattern`` matches the event ``name``."""
    if "*" not in pattern:
        return pattern == name
    if pattern == "*":
        return True
    return compile_pattern(pattern).match(name) is not None
