"""Checking call arguments against a handler's signature before any handler runs.

``inspect.Signature.bind`` costs microseconds, which matters on the command hot
path, so each handler gets a ``Binder`` that settles the common case (plain
positional arguments, no keywords) with two integer comparisons and falls back
to ``bind`` for everything else. Only when ``bind`` refuses does it work out
every problem at once (missing, unexpected with a close match, too many,
given twice), so a caller fixes them in one go rather than one per try.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._contract import Contract

__all__ = ["Binder", "Param", "annotation_text", "describe_params"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a handler, as the console shows it.

    Attributes:
        name: the parameter name.
        kind: ``positional``, ``positional_or_keyword``, ``var_positional``,
            ``keyword_only`` or ``var_keyword``.
        annotation: the annotation as source text, or ``None``.
        default: the default's ``repr``, or ``None`` when there is none.
        required: whether a call must supply it.
    """

    name: str
    kind: str
    annotation: str | None
    default: str | None
    required: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return {
            "name": self.name,
            "kind": self.kind,
            "annotation": self.annotation,
            "default": self.default,
            "required": self.required,
        }


_KIND_NAMES = {
    inspect.Parameter.POSITIONAL_ONLY: "positional",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.VAR_POSITIONAL: "var_positional",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
    inspect.Parameter.VAR_KEYWORD: "var_keyword",
}


def annotation_text(annotation: Any) -> str | None:
    """An annotation as source text (``None`` when there is none)."""
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__qualname__
    return inspect.formatannotation(annotation)


def describe_params(signature: inspect.Signature | None) -> list[Param]:
    """The parameters of ``signature`` as ``Param`` records (empty if unknown)."""
    if signature is None:
        return []
    params = []
    for p in signature.parameters.values():
        has_default = p.default is not inspect.Parameter.empty
        variadic = p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        params.append(
            Param(
                name=p.name,
                kind=_KIND_NAMES[p.kind],
                annotation=annotation_text(p.annotation),
                default=repr(p.default) if has_default else None,
                required=not has_default and not variadic,
            )
        )
    return params


class _Source(str):
    """Annotation text that prints as written: ``name: str``, not ``name: 'str'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def signature_text(signature: inspect.Signature | None) -> str:
    """The signature as source text, ``(name: str) -> str``, or ``(...)``.

    String annotations (from ``from __future__ import annotations``) print
    unquoted, the way they were written.
    """
    if signature is None:
        return "(...)"

    def plain(annotation: Any) -> Any:
        return _Source(annotation) if isinstance(annotation, str) else annotation

    params = [p.replace(annotation=plain(p.annotation)) for p in signature.parameters.values()]
    returns = plain(signature.return_annotation)
    return str(signature.replace(parameters=params, return_annotation=returns))


def binding_problems(
    signature: inspect.Signature, given: int, kwargs: Mapping[str, Any]
) -> list[str]:
    """Every reason ``given`` positional arguments and ``kwargs`` do not bind.

    The rules of calling the handler (as ``inspect.Signature.bind`` has them
    from Python 3.13), but all the problems rather than the first: the
    arguments missing, the positional ones too many, the keywords given twice,
    passed by name though positional-only, or unknown (with the closest
    parameter name, for a typo). Empty when they bind.
    """
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in _POSITIONAL]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    by_name = {p.name: p for p in params}
    bound = {p.name for p in positional[:given]}
    problems: list[str] = []
    twice: list[str] = []
    by_position: list[str] = []
    unknown: list[str] = []
    for key in kwargs:
        param = by_name.get(key)
        if param is None or param.kind not in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            positional_only = param is not None and param.kind is inspect.Parameter.POSITIONAL_ONLY
            if var_keyword:
                # The call puts it in **kwargs, even a positional-only name
                # (PEP 570); bind before Python 3.13 refused it.
                continue
            if positional_only and key not in bound:
                by_position.append(key)
                continue
            unknown.append(key)
        elif key in bound:
            twice.append(key)
        else:
            bound.add(key)
    missing = [
        p.name
        for p in params
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and p.default is inspect.Parameter.empty
        and p.name not in bound
    ]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        problems.append(f"missing required argument{plural} {_names(missing)}")
    if given > len(positional) and not var_positional:
        problems.append(f"too many positional arguments: takes {_at_most(positional)}, got {given}")
    for key in twice:
        problems.append(f"multiple values for argument {key!r}")
    for key in by_position:
        problems.append(f"{key!r} is positional-only: give it by position, not as {key}=")
    keywords = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for key in unknown:
        # Prefer a parameter still unset: that is the one a typo meant.
        unset = [name for name in keywords if name not in bound] or keywords
        close = difflib.get_close_matches(key, unset, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unexpected keyword argument {key!r}{hint}")
    return problems


def _names(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _at_most(positional: list[inspect.Parameter]) -> str:
    required = sum(1 for p in positional if p.default is inspect.Parameter.empty)
    count = len(positional)
    if required == count:
        return str(count)
    return f"{required} to {count}"


def _signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature
        return None


class Binder:
    """Checks that arguments bind to a callable's signature.

    Thread-safe: it holds no mutable state after construction.
    """

    __slots__ = ("_contract", "_fast", "_fn", "_max", "_min", "_name", "_text", "signature")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self._name = name
        self._fn = fn
        self._contract: Contract | None = None
        self.signature = _signature_of(fn)
        params = list(self.signature.parameters.values()) if self.signature else []
        self._fast = self.signature is not None and all(p.kind in _POSITIONAL for p in params)
        self._max = len(params)
        self._min = sum(1 for p in params if p.default is inspect.Parameter.empty)
        self._text = signature_text(self.signature)

    def check(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` naming the handler if the arguments do not bind."""
        if not kwargs and self._fast and self._min <= len(args) <= self._max:
            return
        if self.signature is None:
            return
        # The rules of the call itself, not inspect's bind: before Python 3.13
        # bind refuses a positional-only name given as a keyword to a handler
        # with **kwargs, which the call takes; 3.13.0's takes one the call
        # refuses (the parameter is then missing).
        problems = binding_problems(self.signature, len(args), kwargs)
        if problems:
            raise TypeError(f"{self._name}{self._text}: {'; '.join(problems)}")

    def contract(self) -> Contract | None:
        """The typed contract of the signature (``None`` without one), built on first use.

        Building it imports pydantic and makes the signature's ``TypeAdapter``,
        which takes milliseconds: that is why it waits until something
        converts arguments or asks for a schema. Two threads asking at once
        may both build one; either is kept, and they are equal.
        """
        contract = self._contract
        if contract is None and self.signature is not None:
            from ._contract import Contract

            contract = self._contract = Contract(self._name, self._fn, self.signature, self._text)
        return contract

    def params(self) -> list[Param]:
        """The parameters, for forms, completion and ``introspect``."""
        return describe_params(self.signature)

    def text(self) -> str:
        """The signature as source text, ``(name: str) -> str``, or ``(...)``."""
        return self._text
