"""Listener patterns: exact names, ``*`` for everything, and dotted globs.

A pattern without ``*`` matches exactly that name. ``*`` matches any run of
characters, dots included, so ``*`` alone matches every event, ``lights.*``
matches ``lights.on`` and ``lights.kitchen.on``, and ``*.changed`` matches
``thermostat.changed``. Nothing else is special: ``?`` and ``[`` are literal.

Names and patterns are at most ``MAX_NAME`` and ``MAX_PATTERN`` (255)
characters. Matching never backtracks: the literal parts between the stars
are found left to right with ``str.find``, so one match costs time linear in
the lengths of the name and the pattern, whatever the pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "MAX_NAME",
    "MAX_PATTERN",
    "is_wildcard",
    "pattern_matches",
    "shown",
    "validate_name",
    "validate_pattern",
]

#: The longest command, event, service or bus name, in characters.
MAX_NAME = 255
#: The longest listener or subscription pattern, in characters.
MAX_PATTERN = 255

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")
_PATTERN_PART = r"(?:[A-Za-z0-9_\-]|\*)+"
_PATTERN_RE = re.compile(rf"{_PATTERN_PART}(\.{_PATTERN_PART})*")


def shown(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters for an error message."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def validate_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid command or event name, else raise.

    Names are dotted identifiers: letters, digits, ``_`` and ``-``, segments
    separated by single dots (``lights.kitchen.on``), at most ``MAX_NAME``
    characters.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: the string is not a valid name, or is too long.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if len(name) > MAX_NAME:
        raise ValueError(
            f"invalid {what} {shown(name)}: longer than {MAX_NAME} characters ({len(name)})"
        )
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} {shown(name)}: use letters, digits, '_' and '-' in dot-separated parts"
        )
    return name


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is a valid listener pattern, else raise.

    Raises:
        TypeError: ``pattern`` is not a string.
        ValueError: the string is not a valid pattern, or is longer than
            ``MAX_PATTERN`` characters.
    """
    if not isinstance(pattern, str):
        raise TypeError(f"event pattern must be a str, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(
            f"invalid event pattern {shown(pattern)}: longer than {MAX_PATTERN} characters "
            f"({len(pattern)})"
        )
    if not _PATTERN_RE.fullmatch(pattern):
        raise ValueError(
            f"invalid event pattern {shown(pattern)}: use a name, '*', or dotted globs like "
            "'lights.*'"
        )
    return pattern


def is_wildcard(pattern: str) -> bool:
    """Whether ``pattern`` contains ``*`` (and so may match many names)."""
    return "*" in pattern


@lru_cache(maxsize=1024)
def _parts(pattern: str) -> tuple[str, str, tuple[str, ...], int]:
    """``pattern`` split at its stars: head, tail, the non-empty middles, their length."""
    pieces = pattern.split("*")
    middles = tuple(p for p in pieces[1:-1] if p)
    return pieces[0], pieces[-1], middles, sum(map(len, pieces))


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether the listener ``pattern`` matches the event ``name``.

    Linear in ``len(pattern) + len(name)``: the head and tail are compared in
    place, and each literal part between stars is found at its leftmost place
    after the previous one. Taking the leftmost place is never wrong, because
    the star before a part can absorb anything, and leaves the most room for
    the parts after it; so nothing is ever retried.
    """
    if "*" not in pattern:
        return pattern == name
    head, tail, middles, fixed = _parts(pattern)
    if len(name) < fixed or not name.startswith(head) or not name.endswith(tail):
        return False
    position, end = len(head), len(name) - len(tail)
    for part in middles:
        found = name.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
