"""Arguments typed by people: JSON or Python literals, ``key=value``, ``NAME(...)``.

    from busctl._args import parse_args, parse_line

    parse_args(["kitchen", "brightness=60"])     # (["kitchen"], {"brightness": 60})
    parse_args(['[1, 2]', "{'a': None}", "true"]) # ([[1, 2], {"a": None}, True], {})
    parse_line("lights.turn_on(room='hall', brightness=40)")
    # ("lights.turn_on", [], {"room": "hall", "brightness": 40})
    parse_line("say_hello Alice")                 # ("say_hello", ["Alice"], {})

A value is read as JSON, else as a Python literal (``ast.literal_eval``: never
``eval``), else, if it does not start like a literal (a quote or a bracket), as
a bare string. So ``kitchen`` is ``"kitchen"``, ``42`` is ``42``, ``none`` is a
string but ``None`` and ``null`` are ``None``; quote a value to force a string
(``'"42"'``). Values must survive JSON, since they travel to the bus as JSON:
sets, bytes and non-string dict keys are refused, tuples become lists; so are
values nested deeper than ``MAX_DEPTH``, integers too long for Python to read
(``sys.get_int_max_str_digits()``) and text that is not valid Unicode (a lone
surrogate, from an escape such as ``"\\ud800"`` or a byte that is not UTF-8 in
a shell argument).

A value that starts like a literal and is not one is an ``ArgumentError``
naming the argument (counted from 1) and the column (from 1) where it broke.
Nothing here raises anything else, whatever the text.
"""

from __future__ import annotations

import ast
import json
import math
import re
import sys
from typing import Any

__all__ = [
    "MAX_ARGUMENT_BYTES",
    "MAX_DEPTH",
    "ArgumentError",
    "check_text",
    "option_hint",
    "parse_args",
    "parse_call",
    "parse_line",
    "parse_value",
    "split_line",
]

#: How deep lists and dicts may nest in one argument. JSON has no limit, but
#: every reader recurses: deeper values would break the encoder, the bus's
#: parser or a console that shows them, far from the mistake.
MAX_DEPTH = 100

#: How many bytes the arguments may take as JSON: a request line to the bus
#: is at most 1 MiB (docs/protocol.md), and the bus closes a connection that
#: sends a longer one. The rest is room for the request around them.
MAX_ARGUMENT_BYTES = (1 << 20) - 4096

_KEYWORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.DOTALL)
_NAME = re.compile(r"[^\s(]+")
# A token starting with one of these means to be a literal; if it is not one,
# that is a mistake worth reporting rather than a string to send.
_LITERAL_START = "[{(\"'"
_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_CLOSERS = {"[": "]", "{": "}", "(": ")"}
_DIGITS = re.compile(r"value has (\d+) digits")
_OPTION = re.compile(r"--?([A-Za-z_][A-Za-z0-9_-]*)(?:=(.*))?\Z", re.DOTALL)


class ArgumentError(ValueError):
    """An argument that cannot be read.

    Attributes:
        reason: what is wrong, without the position.
        index: which argument (from 1), or ``None`` when it is not known.
        column: the column (from 1) in that argument, or in the whole line
            for ``parse_line``/``parse_call``; ``None`` when not known.
    """

    def __init__(self, reason: str, index: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.index = index
        self.column = column
        where = []
        if index is not None:
            where.append(f"argument {index}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, self.index, self.column))


def parse_value(text: str, *, index: int | None = None, column_offset: int = 0) -> Any:
    """Read one value typed by a person (see the module docstring).

    Args:
        text: the value as typed.
        index: the argument's number, for error messages.
        column_offset: added to error columns (the value's place in its token).

    Raises:
        ArgumentError: it starts like a literal but is not one, or it holds
            something JSON cannot carry.
    """
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    start = 1 + lead + column_offset
    if not stripped:
        return check_text(text, index, start)
    try:
        value = json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        pass
    except ValueError as exc:  # valid JSON Python will not read: too many digits
        raise ArgumentError(_digits_reason(exc) or _short(exc), index, start) from None
    else:
        return _jsonable(value, index, start)
    try:
        value = ast.literal_eval(stripped)
    except SyntaxError as exc:
        digits = _digits_reason(exc)
        if digits is not None:
            raise ArgumentError(digits, index, start) from None
        if stripped[0] in _LITERAL_START:
            column = (exc.offset or 1) + lead + column_offset
            raise ArgumentError(_syntax_reason(exc), index, column) from None
        return check_text(text, index, start)
    except (ValueError, TypeError, MemoryError, RecursionError) as exc:
        if stripped[0] in _LITERAL_START:
            where, reason = _not_literal(stripped, exc)
            at = None if where is None else where + lead + column_offset
            raise ArgumentError(reason, index, at) from None
        return check_text(text, index, start)
    return _jsonable(value, index, start)


def check_text(text: str, index: int | None = None, column: int | None = None) -> str:
    """``text``, if it is valid Unicode and so can be sent as JSON.

    A lone surrogate cannot be encoded as UTF-8: it comes from an escape
    (``"\\ud800"``) or from a shell argument holding bytes that are not
    UTF-8 (Python keeps those as surrogates).

    Raises:
        ArgumentError: ``text`` holds a lone surrogate (shown escaped).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        # Python decodes a byte that is not UTF-8 in argv as U+DC80..U+DCFF.
        why = f"byte 0x{code - 0xDC00:02X} is not UTF-8" if 0xDC80 <= code <= 0xDCFF else ""
        raise ArgumentError(
            f"{_clip_repr(text)} is not valid Unicode (a lone surrogate, U+{code:04X}"
            f"{': ' + why if why else ''})",
            index,
            column,
        ) from None
    return text


def option_hint(tokens: list[str]) -> str | None:
    """How to write the first token that looks like ``--name value``, if any.

    ``busctl call lights.turn_on kitchen --brightness 60`` sends the text
    ``--brightness`` as a positional argument; when that does not bind, this
    says to write ``brightness=60`` instead.
    """
    for i, token in enumerate(tokens):
        match = _OPTION.match(token)
        if match is None:
            continue
        name, value = match.groups()
        written = token
        if value is None and i + 1 < len(tokens):
            value = tokens[i + 1]
            written = f"{token} {value}"
        key = name.replace("-", "_")
        return f"write a keyword argument as {key}={value or 'VALUE'}, not {written}"
    return None


def parse_args(tokens: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """Read command-line arguments into positional ``args`` and ``kwargs``.

    ``key=value`` (``key`` an identifier) is a keyword argument; anything else
    is a positional one. Positional arguments cannot follow keyword ones.

    Raises:
        ArgumentError: a bad literal, a repeated keyword, or a positional
            argument after a keyword one; the message names the argument.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for index, token in enumerate(tokens, start=1):
        match = _KEYWORD.match(token)
        if match:
            key, raw = match.groups()
            if key in kwargs:
                raise ArgumentError(f"keyword {key!r} given twice", index)
            kwargs[key] = parse_value(raw, index=index, column_offset=len(key) + 1)
        elif kwargs:
            raise ArgumentError(
                f"positional argument {token!r} after keyword arguments; put it first", index
            )
        else:
            args.append(parse_value(token, index=index))
    _check_size(args, kwargs)
    return args, kwargs


def split_line(text: str) -> list[str]:
    """Split a line into tokens at spaces outside quotes and brackets.

    ``call x [1, 2] 'a b'`` gives ``["call", "x", "[1, 2]", "'a b'"]``: quotes
    are kept, so each token can be read by ``parse_value``.

    Raises:
        ArgumentError: a quote or bracket is never closed (with its column).
    """
    tokens: list[str] = []
    current: list[str] = []
    stack: list[tuple[str, int]] = []  # open brackets / quote, with their columns
    start = 0  # where the current token began
    i = 0
    while i < len(text):
        char = text[i]
        if stack and stack[-1][0] in "\"'":
            current.append(char)
            if char == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif char == stack[-1][0]:
                stack.pop()
        elif char.isspace() and not stack:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            if not current:
                start = i
            current.append(char)
            if char in "\"'[{(":
                stack.append((char, i - start + 1))
            elif char in "]})" and stack and _CLOSERS.get(stack[-1][0]) == char:
                stack.pop()
        i += 1
    if stack:
        opener, column = stack[-1]
        what = "quote" if opener in "\"'" else "bracket"
        raise ArgumentError(f"{what} {opener} is never closed", len(tokens) + 1, column)
    if current:
        tokens.append("".join(current))
    return tokens


def parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Read the call form ``NAME(arg, ..., kw=value, ...)``.

    ``NAME`` may be dotted (``lights.turn_on``). Arguments are literals, bare
    identifiers are strings (``lights.get(kitchen)``), and ``true``/``false``/
    ``null`` are read as in JSON.

    Raises:
        ArgumentError: not a call, or an argument that is not a literal; the
            column counts in ``text``.
    """
    source = text.strip()
    lead = len(text) - len(text.lstrip())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # ast.parse would only say it cannot encode it
        check_text(text, None, exc.start + 1)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        digits = _digits_reason(exc)
        if digits is not None:
            raise ArgumentError(digits) from None
        raise ArgumentError(_syntax_reason(exc), None, (exc.offset or 1) + lead) from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ArgumentError(_short(exc)) from None
    call = tree.body
    if not isinstance(call, ast.Call):
        raise ArgumentError("expected NAME(arg, ..., key=value, ...)", None, 1 + lead)
    name = _dotted(call.func)
    if name is None:
        raise ArgumentError("the name before ( must be a command or event name", None, 1 + lead)
    args = [_node_value(node, index, lead) for index, node in enumerate(call.args, start=1)]
    kwargs: dict[str, Any] = {}
    for index, keyword in enumerate(call.keywords, start=len(call.args) + 1):
        if keyword.arg is None:
            raise ArgumentError("** is not supported", index, keyword.col_offset + 1 + lead)
        if keyword.arg in kwargs:  # ast.parse already refuses this; kept for clarity
            raise ArgumentError(f"keyword {keyword.arg!r} given twice", index)
        kwargs[keyword.arg] = _node_value(keyword.value, index, lead)
    _check_size(args, kwargs)
    return name, args, kwargs


def parse_line(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Read ``NAME ARG...`` or ``NAME(kw=value, ...)`` (the REPL's two forms).

    Raises:
        ArgumentError: an empty line, or an argument that cannot be read.
    """
    stripped = text.lstrip()
    match = _NAME.match(stripped)
    if match is None:
        raise ArgumentError("expected a command or event name")
    rest = stripped[match.end() :]
    if rest.lstrip().startswith("("):
        return parse_call(text)
    name = check_text(match.group(), None, 1 + len(text) - len(stripped))
    args, kwargs = parse_args(split_line(rest))
    return name, args, kwargs


def _node_value(node: ast.expr, index: int, lead: int) -> Any:
    column = node.col_offset + 1 + lead
    if isinstance(node, ast.Name):
        return _JSON_WORDS.get(node.id, node.id)
    if isinstance(node, ast.Starred):
        raise ArgumentError("* is not supported", index, column)
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        bad = _first_bad_node(node)
        column = bad.col_offset + 1 + lead if bad is not None else column
        reason = _bad_reason(ast.unparse(bad) if bad is not None else None, exc)
        raise ArgumentError(reason, index, column) from None
    return _jsonable(value, index, column)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _first_bad_node(node: ast.AST) -> ast.expr | None:
    """The first sub-expression ``literal_eval`` would refuse, for its column."""
    allowed = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp)
    for child in ast.walk(node):
        if isinstance(child, ast.expr) and not isinstance(child, allowed):
            if isinstance(child, ast.Load | ast.USub | ast.UAdd):
                continue
            return child
    return None


def _not_literal(text: str, exc: BaseException) -> tuple[int | None, str]:
    """The column (from 1) and a reason for a value ``literal_eval`` refused."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None, _bad_reason(None, exc)
    bad = _first_bad_node(tree.body)
    if bad is None:
        return None, _bad_reason(None, exc)
    return bad.col_offset + 1, _bad_reason(ast.unparse(bad), exc)


def _bad_reason(source: str | None, exc: BaseException) -> str:
    if source is None:
        return f"not a literal ({_short(exc)})"
    if len(source) > 40:
        source = source[:37] + "..."
    return f"{source} is not a literal; quote strings inside brackets"


def _jsonable(value: Any, index: int | None, column: int | None, depth: int = 0) -> Any:
    """``value`` with tuples made lists; refuse what JSON cannot carry."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return check_text(value, index, column)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(f"{value!r} cannot be sent as JSON", index, column)
        return value
    if depth >= MAX_DEPTH and isinstance(value, list | tuple | dict):
        raise ArgumentError(f"nested deeper than {MAX_DEPTH} levels", index, column)
    if isinstance(value, list | tuple):
        return [_jsonable(item, index, column, depth + 1) for item in value]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(f"dict key {key!r} is not a string", index, column)
            result[check_text(key, index, column)] = _jsonable(item, index, column, depth + 1)
        return result
    kind = type(value).__name__
    raise ArgumentError(f"a {kind} cannot be sent as JSON; use a list or a string", index, column)


def _check_size(args: list[Any], kwargs: dict[str, Any]) -> None:
    size = len(json.dumps([args, kwargs], ensure_ascii=False).encode("utf-8"))
    if size > MAX_ARGUMENT_BYTES:
        raise ArgumentError(
            f"the arguments take {size:,} bytes as JSON; a request to the bus "
            f"takes at most {MAX_ARGUMENT_BYTES:,}"
        )


def _digits_reason(exc: BaseException) -> str | None:
    """A plain reason for an integer too long for Python to read, else ``None``."""
    match = _DIGITS.search(str(exc))
    if match is None:
        return None
    limit = sys.get_int_max_str_digits()
    return f"an integer of {match.group(1)} digits is too long (at most {limit})"


def _clip_repr(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _syntax_reason(exc: SyntaxError) -> str:
    reason = exc.msg or "invalid syntax"
    if "too many nested" in reason:  # the parser's own limit, deeper than ours
        return f"nested deeper than {MAX_DEPTH} levels"
    if reason == "invalid syntax":
        return "not a JSON or Python literal (invalid syntax)"
    return f"not a JSON or Python literal ({reason})"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:80]
