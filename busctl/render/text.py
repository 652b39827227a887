"""Text from a bus or a file, made safe to show a person: control characters made visible.

    from busctl.render.text import clipped, visible, visible_json, visible_markup

    visible("\\x1b]0;pwned\\x07name")           # '\\\\x1b]0;pwned\\\\x07name': shown, not obeyed
    visible("a\\nb")                            # 'a\\\\nb': one line stays one line
    visible("line 1\\nline 2", multiline=True)  # newlines kept where text may span lines
    visible_markup("[red]x[/]")                 # for rich markup: '\\\\[red]x\\\\[/]'
    visible_json('["\u202e"]')                 # JSON stays JSON: '["\\u202e"]'
    clipped("x" * 10_000, 80)                   # 'xxx…(9,921 more characters)'

Names, arguments, results, docstrings, error messages and thread names
reach the console from a bus or a trace file that anyone may have written.
A terminal obeys what it is sent: an escape sequence can set the window
title, move the cursor, hide text or (BEL) ring; a bidi override can make
``evil`` read as ``live``; a newline inside an argument splits a monitor
line in two. Every human-facing face (CLI, REPL, TUI) passes such text
through ``visible`` first, so each of those characters is shown as the
escape a developer would type (``\\x1b``, ``\\u202e``, ``\\n``). JSON output
stays JSON: ``visible_json`` spells the same characters as JSON escapes
(``json.dumps`` escapes only the C0 controls itself when ``ensure_ascii`` is
off).

What is escaped: the C0 and C1 controls and DEL (Unicode ``Cc``), the
invisible format characters (``Cf``: bidi embeddings, overrides and
isolates, zero-width space, soft hyphen, the byte-order mark, tags...), the
line and paragraph separators U+2028 and U+2029, and lone surrogates (which
cannot even be encoded for the terminal). The zero-width joiner and
non-joiner stay: emoji sequences and several scripts need them. With
``multiline=True``, ``\\n`` and ``\\t`` stay too (``\\r\\n`` becomes ``\\n``),
for docstrings, tracebacks and pretty-printed JSON.
"""

from __future__ import annotations

import re

__all__ = ["clipped", "visible", "visible_json", "visible_markup"]

# With the C0 controls (added below), every code point of the general
# categories Cc, Cf, Zl, Zp and Cs, less the zero-width (non-)joiner (U+200C,
# U+200D). Written out rather than computed from unicodedata at import (a
# 60 ms scan of every code point, on every busctl start); a test compares it
# with the running Python's database.
_INVISIBLE = (
    "\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_ONE_LINE = re.compile(f"[\x00-\x1f{_INVISIBLE}]")
_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f{_INVISIBLE}]")  # \t and \n kept

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: object, *, multiline: bool = False) -> str:
    """``value`` as text with every control and invisible character shown as an escape.

    Args:
        value: the text (anything else is shown as its ``str``).
        multiline: keep ``\\n`` and ``\\t`` (and read ``\\r\\n`` as ``\\n``), for
            text shown on several lines; by default they are escaped too, so
            the text stays on one line.

    Returns:
        The text, unchanged when it has nothing to escape (the common case,
        checked at C speed). A backslash already in the text is left as it
        is: this is for reading, not a reversible encoding.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # no Cc, Cf, Z* but space, Cs, Co or Cn: nothing to escape
        return text
    if multiline:
        return _MULTILINE.sub(_escape, text.replace("\r\n", "\n"))
    return _ONE_LINE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells the rest as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def visible_json(text: str) -> str:
    """A JSON document with each invisible character as a JSON ``\\uXXXX`` escape.

    Still valid JSON, holding the same data: ``json.dumps(..., ensure_ascii=
    False)`` escapes the C0 controls but writes DEL, C1, bidi overrides and
    U+2028 raw. Outside strings JSON has only spaces, ``\\n`` and ``\\t``,
    which stay.
    """
    if text.isprintable():
        return text
    return _MULTILINE.sub(_json_escape, text)


def visible_markup(value: object, *, multiline: bool = False) -> str:
    """``visible(value)`` escaped for rich or Textual markup (``[red]`` shown, not applied)."""
    from rich.markup import escape

    return escape(visible(value, multiline=multiline))


def clipped(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out.

    For values that may be huge (an argument list of megabytes) on a line
    meant for reading; ``--json`` and the files keep them whole.
    """
    if len(text) <= limit:
        return text
    rest = len(text) - limit
    return f"{text[:limit]}…({rest:,} more characters)"
