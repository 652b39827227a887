"""Names and listener patterns: the rules, and the one matcher the bus routes with.

    from bus.patterns import pattern_matches, validate_name

    validate_name("lights.kitchen.on")             # returns it, or raises ValueError
    pattern_matches("lights.*", "lights.kitchen.on")   # True

A name is dotted identifiers (letters, digits, ``_`` and ``-``), at most
``MAX_NAME`` characters. A pattern may also use ``*``, which matches any run
of characters, dots included; ``?`` and ``[`` are literal. Matching runs in
linear time, whatever the pattern. The console uses these to route as the
bus does.
"""

from __future__ import annotations

from ._core._patterns import (
    MAX_NAME,
    MAX_PATTERN,
    is_wildcard,
    pattern_matches,
    shown,
    validate_name,
    validate_pattern,
)

__all__ = [
    "MAX_NAME",
    "MAX_PATTERN",
    "is_wildcard",
    "pattern_matches",
    "shown",
    "validate_name",
    "validate_pattern",
]
