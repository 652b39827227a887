"""``busctl.render.text``: control characters made visible, the one function every face uses."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busctl.render.text import clipped, visible, visible_markup

KEPT = {"\u200c", "\u200d"}  # the zero-width (non-)joiner: emoji and scripts need them
ESCAPED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def test_the_terminal_controls_of_the_issue_are_shown_not_sent():
    osc_title = "\x1b]0;pwned\x07"
    assert visible(osc_title + "name") == "\\x1b]0;pwned\\x07name"
    assert visible("\x9b31m") == "\\x9b31m"  # C1 CSI: as good as ESC [ to many terminals
    assert visible("del\x7f") == "del\\x7f"
    assert visible("\u202eevil") == "\\u202eevil"  # bidi override: would read "live"
    assert visible("a\u2028b") == "a\\u2028b"
    assert visible("tag\U000e0041") == "tag\\U000e0041"
    assert visible("lone \ud800") == "lone \\ud800"


def test_newlines_and_tabs_per_context():
    assert visible("a\nb\tc\rd") == "a\\nb\\tc\\rd"  # one line stays one line
    assert visible("a\r\nb\tc\x00", multiline=True) == "a\nb\tc\\x00"
    assert visible("a\rb", multiline=True) == "a\\rb"  # a lone CR would overwrite the line


def test_ordinary_text_is_left_alone():
    for text in ["", "plain", "µs → ✓", "naïve 日本語", "👩\u200d💻", "C:\\temp\\x1b", "a b"]:
        assert visible(text) == text
    assert visible(42) == "42"
    assert visible(None) == "None"


def test_every_control_and_format_character_of_this_python_is_escaped():
    # The escaped set is written out in _text; this keeps it in step with the
    # Unicode database of whichever Python runs the tests.
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ESCAPED_CATEGORIES
        and chr(code) not in KEPT
        and visible(chr(code)) == chr(code)
    ]
    assert missed == []


@given(st.text())
def test_the_result_is_always_printable_and_one_line(text):
    shown = visible(text)
    assert all(unicodedata.category(c) not in ESCAPED_CATEGORIES or c in KEPT for c in shown), (
        ascii(shown)
    )
    shown.encode("utf-8")  # lone surrogates would raise here
    multi = visible(text, multiline=True)
    assert "\r" not in multi


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[red]x[/]", "\\[red]x\\[/]"), ("\x1b[1m[b]", "\\x1b[1m\\[b]")],
)
def test_markup_is_escaped_after_the_controls(text, expected):
    from rich.text import Text

    assert visible_markup(text) == expected
    assert Text.from_markup(visible_markup(text)).plain == visible(text)


def test_clipped_says_how_much_was_left_out():
    assert clipped("short", 10) == "short"
    assert clipped("x" * 10_005, 5) == "xxxxx…(10,000 more characters)"
