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
sets, bytes and non-string dict keys are refused, tuples become lists.

A value that starts like a literal and is not one is an ``ArgumentError``
naming the argument (counted from 1) and the column (from 1) where it broke.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

__all__ = ["ArgumentError", "parse_args", "parse_call", "parse_line", "parse_value", "split_line"]

_KEYWORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.DOTALL)
_NAME = re.compile(r"[^\s(]+")
# A token starting with one of these means to be a literal; if it is not one,
# that is a mistake worth reporting rather than a string to send.
_LITERAL_START = "[{(\"'"
_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_CLOSERS = {"[": "]", "{": "}", "(": ")"}


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
    if not stripped:
        return text
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    else:
        return _jsonable(value, index, 1 + lead + column_offset)
    try:
        value = ast.literal_eval(stripped)
    except SyntaxError as exc:
        if stripped[0] in _LITERAL_START:
            column = (exc.offset or 1) + lead + column_offset
            raise ArgumentError(_syntax_reason(exc), index, column) from None
        return text
    except (ValueError, TypeError, MemoryError, RecursionError) as exc:
        if stripped[0] in _LITERAL_START:
            where, reason = _not_literal(stripped, exc)
            at = None if where is None else where + lead + column_offset
            raise ArgumentError(reason, index, at) from None
        return text
    return _jsonable(value, index, 1 + lead + column_offset)


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
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
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
    args, kwargs = parse_args(split_line(rest))
    return match.group(), args, kwargs


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


def _jsonable(value: Any, index: int | None, column: int | None) -> Any:
    """``value`` with tuples made lists; refuse what JSON cannot carry."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ArgumentError(f"{value!r} cannot be sent as JSON", index, column)
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item, index, column) for item in value]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArgumentError(f"dict key {key!r} is not a string", index, column)
            result[key] = _jsonable(item, index, column)
        return result
    kind = type(value).__name__
    raise ArgumentError(f"a {kind} cannot be sent as JSON; use a list or a string", index, column)


def _syntax_reason(exc: SyntaxError) -> str:
    reason = exc.msg or "invalid syntax"
    if reason == "invalid syntax":
        return "not a JSON or Python literal (invalid syntax)"
    return f"not a JSON or Python literal ({reason})"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:80]
