"""Arguments typed by people: literals, bare words, key=value, the call form."""

from __future__ import annotations

import json
import keyword
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busctl._args import (
    MAX_ARGUMENT_BYTES,
    MAX_DEPTH,
    ArgumentError,
    option_hint,
    parse_args,
    parse_call,
    parse_line,
    split_line,
)

pytestmark = pytest.mark.timeout(60)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)
# Words a person types bare, meaning a string: none of them reads as a literal.
bare_words = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,12}", fullmatch=True).filter(
    lambda s: (
        s not in {"true", "false", "null", "True", "False", "None"}
        and not (s[0] in "Ii" and s.lower().startswith("inf"))
        and s not in {"NaN", "Infinity"}
    )
)


@pytest.mark.parametrize(
    ("tokens", "args", "kwargs"),
    [
        (["kitchen", "brightness=60"], ["kitchen"], {"brightness": 60}),
        (["[1, 2]", "{'a': None}", "true"], [[1, 2], {"a": None}, True], {}),
        (["None", "null", "none"], [None, None, "none"], {}),
        (["42", "-1.5", "1e3", "0x10"], [42, -1.5, 1000.0, 16], {}),
        (['"42"', "'True'"], ["42", "True"], {}),
        (["hello world", "1.2.3", "-", ""], ["hello world", "1.2.3", "-", ""], {}),
        (["(1, 2)"], [[1, 2]], {}),
        (["a=b=c", "x="], [], {"a": "b=c", "x": ""}),
        (["=5"], ["=5"], {}),
    ],
)
def test_examples(tokens: list[str], args: list[Any], kwargs: dict[str, Any]) -> None:
    assert parse_args(tokens) == (args, kwargs)


@pytest.mark.parametrize(
    ("tokens", "index", "column", "words"),
    [
        (["ok", "[1, 2"], 2, 1, "never closed"),
        (["x=[1, foo]"], 1, 7, "foo is not a literal"),
        (["{1, 2}"], 1, 1, "set cannot be sent"),
        (["{1: 2}"], 1, 1, "key 1 is not a string"),
        (["NaN"], 1, 1, "cannot be sent as JSON"),
        (['"abc'], 1, 1, "unterminated string"),
        (["b'x'"], 1, 1, "bytes cannot be sent"),
    ],
)
def test_bad_literals_name_the_position(
    tokens: list[str], index: int, column: int, words: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_args(tokens)
    assert (info.value.index, info.value.column) == (index, column)
    assert words in str(info.value)
    assert str(info.value).startswith(f"argument {index}, column {column}: ")


def test_keyword_rules() -> None:
    with pytest.raises(ArgumentError, match="argument 2: positional argument 'b' after"):
        parse_args(["a=1", "b"])
    with pytest.raises(ArgumentError, match="argument 2: keyword 'a' given twice"):
        parse_args(["a=1", "a=2"])


def test_call_form() -> None:
    assert parse_line("lights.turn_on(room='hall', brightness=40)") == (
        "lights.turn_on",
        [],
        {"room": "hall", "brightness": 40},
    )
    assert parse_line("  lights.get(kitchen, true, null)") == (
        "lights.get",
        ["kitchen", True, None],
        {},
    )
    assert parse_call("f()") == ("f", [], {})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("f(1, [2, x()])", "argument 2, column 10: x() is not a literal"),
        ("f(1,", "column 2: not a JSON or Python literal ('(' was never closed)"),
        ("f(**a)", "argument 1, column 3: ** is not supported"),
        ("f(*a)", "argument 1, column 3: * is not supported"),
        ("f(1)(2)", "the name before ( must be"),
    ],
)
def test_call_form_errors(line: str, message: str) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_line(line)
    assert message in str(info.value)


def test_name_and_args_form() -> None:
    assert parse_line('x [1, 2] "a b" k={"a": [1, 2]}') == (
        "x",
        [[1, 2], "a b"],
        {"k": {"a": [1, 2]}},
    )
    assert parse_line("say_hello Alice") == ("say_hello", ["Alice"], {})
    assert parse_line("say_hello") == ("say_hello", [], {})
    with pytest.raises(ArgumentError, match="argument 2, column 1: bracket \\[ is never closed"):
        parse_line("x a [1[2]")
    with pytest.raises(ArgumentError, match="expected a command"):
        parse_line("   ")


def test_split_line_keeps_quotes_and_brackets() -> None:
    assert split_line('call x [1, 2] \'a b\' "c\\" d"') == [
        "call",
        "x",
        "[1, 2]",
        "'a b'",
        '"c\\" d"',
    ]


@given(json_values)
def test_any_json_round_trips(value: Any) -> None:
    assert parse_args([json.dumps(value)]) == ([value], {})


@given(json_values)
def test_python_repr_of_json_values_round_trips(value: Any) -> None:
    assert parse_args([repr(value)]) == ([value], {})


@given(bare_words)
def test_bare_words_are_strings(word: str) -> None:
    (value,), _ = parse_args([word])
    # a word that happens to be a number (e.g. "1_0" is not, "e" is not) stays as typed
    assert value == word


@given(st.dictionaries(identifiers, json_values, max_size=4))
def test_keywords_round_trip(kwargs: dict[str, Any]) -> None:
    tokens = [f"{key}={json.dumps(value)}" for key, value in kwargs.items()]
    assert parse_args(tokens) == ([], kwargs)


@given(
    identifiers,
    st.lists(json_values, max_size=3),
    st.dictionaries(identifiers, json_values, max_size=3),
)
def test_call_form_round_trips(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    text = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    assert parse_line(f"{name}({text})") == (name, args, kwargs)


@given(identifiers, st.lists(json_values, max_size=3))
def test_line_form_round_trips(name: str, args: list[Any]) -> None:
    line = " ".join([name, *(json.dumps(a) for a in args)])
    assert parse_line(line) == (name, args, {})


# Any text, lone surrogates included (as a shell hands over bytes that are not UTF-8).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)


def sendable(value: Any) -> None:
    """What the client does with arguments: JSON, then UTF-8."""
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


@given(st.lists(any_text | st.text(max_size=30), max_size=4))
def test_anything_parses_or_raises_argument_error(tokens: list[str]) -> None:
    try:
        args, kwargs = parse_args(tokens)
    except ArgumentError as exc:
        index = exc.index
    else:
        sendable([args, kwargs])  # always sendable
        return
    assert index is not None
    assert 1 <= index <= len(tokens)


@given(st.text(max_size=60) | any_text)
def test_any_line_parses_or_raises_argument_error(line: str) -> None:
    try:
        name, args, kwargs = parse_line(line)
    except ArgumentError:
        return
    assert name
    sendable([name, args, kwargs])


# -- values that would break a reader further on: one ArgumentError each ------------------

_DEEP = "[" * 600 + "]" * 600
_DEEPER = "[" * 5000 + "]" * 5000
_LONG_INT = "1" * 5000


@pytest.mark.parametrize(
    ("tokens", "words"),
    [
        ([_DEEP], f"argument 1, column 1: nested deeper than {MAX_DEPTH} levels"),
        ([_DEEPER], f"nested deeper than {MAX_DEPTH} levels"),
        ([f"k={_DEEP}"], f"argument 1, column 3: nested deeper than {MAX_DEPTH} levels"),
        (["{'a': " * 150 + "1" + "}" * 150], f"nested deeper than {MAX_DEPTH} levels"),
        (['"\\ud800"'], "argument 1, column 1: '\\ud800' is not valid Unicode (a lone surrogate"),
        (["'\\udfff'"], "'\\udfff' is not valid Unicode"),
        (['{"\\ud800": 1}'], "'\\ud800' is not valid Unicode"),
        (["ok", "caf\udce9"], "argument 2, column 1: 'caf\\udce9' is not valid Unicode"),
        (["k=\udcff"], "byte 0xFF is not UTF-8"),
        ([_LONG_INT], "argument 1, column 1: an integer of 5000 digits is too long (at most"),
        ([f"[{_LONG_INT}]"], "an integer of 5000 digits is too long"),
        ([f"-{_LONG_INT}"], "an integer of 5000 digits is too long"),
    ],
)
def test_values_no_reader_could_take_are_refused(tokens: list[str], words: str) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_args(tokens)
    assert words in str(info.value)
    assert "\n" not in str(info.value)
    str(info.value).encode("utf-8")  # the message itself prints anywhere


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f"f({_DEEP})", f"nested deeper than {MAX_DEPTH} levels"),
        (f"f(x={'[' * 150}{']' * 150})", f"argument 1, column 5: nested deeper than {MAX_DEPTH}"),
        ('f("\\ud800")', "argument 1, column 3: '\\ud800' is not valid Unicode"),
        (f"f({_LONG_INT})", "an integer of 5000 digits is too long"),
        (f"f {_DEEP}", "argument 1, column 1: nested deeper than"),
        ("\udcff x", "column 1: '\\udcff' is not valid Unicode"),
        ("  n\ud800(1)", "not valid Unicode"),
    ],
)
def test_lines_no_reader_could_take_are_refused(line: str, words: str) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_line(line)
    assert words in str(info.value)
    str(info.value).encode("utf-8")


def test_arguments_too_big_for_one_request_are_refused() -> None:
    chunk = "x" * (MAX_ARGUMENT_BYTES // 3)
    parse_args([chunk, chunk])  # two thirds: fine
    with pytest.raises(ArgumentError, match=r"the arguments take 1,04\d,\d{3} bytes as JSON"):
        parse_args([chunk, chunk, f"k={chunk}"])
    with pytest.raises(ArgumentError, match="a request to the bus takes at most"):
        parse_line(f"f('{chunk}', '{chunk}', k='{chunk}')")
    with pytest.raises(ArgumentError, match="takes at most"):
        parse_args(["é" * (MAX_ARGUMENT_BYTES // 2 + 1)])  # bytes, not characters


def test_nesting_up_to_the_limit_is_fine() -> None:
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    (value,), _ = parse_args([deep])
    for _ in range(MAX_DEPTH - 1):
        (value,) = value
    assert value == []


@pytest.mark.parametrize(
    ("tokens", "hint"),
    [
        (["kitchen", "--brightness", "60"], "brightness=60, not --brightness 60"),
        (["--brightness=60"], "brightness=60, not --brightness=60"),
        (["--dry-run"], "dry_run=VALUE, not --dry-run"),
        (["-n", "3"], "n=3, not -n 3"),
        (["kitchen", "60", "-1"], None),
        (["--", "x"], None),
    ],
)
def test_option_hint(tokens: list[str], hint: str | None) -> None:
    found = option_hint(tokens)
    assert (found if hint is None else found and found.split("as ", 1)[1]) == hint
