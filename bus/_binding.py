"""Checking call arguments against a handler's signature before any handler runs.

``inspect.Signature.bind`` costs microseconds, which matters on the command hot
path, so each handler gets a ``Binder`` that settles the common case (plain
positional arguments, no keywords) with two integer comparisons and falls back
to ``bind`` for everything else.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Binder", "Param", "describe_params"]

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


def _annotation_text(annotation: Any) -> str | None:
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
                annotation=_annotation_text(p.annotation),
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


def _signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature
        return None


class Binder:
    """Checks that arguments bind to a callable's signature.

    Thread-safe: it holds no mutable state after construction.
    """

    __slots__ = ("_fast", "_max", "_min", "_name", "_text", "signature")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self._name = name
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
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self._name}{self._text}: {exc}") from None

    def params(self) -> list[Param]:
        """The parameters, for forms, completion and ``introspect``."""
        return describe_params(self.signature)

    def text(self) -> str:
        """The signature as source text, ``(name: str) -> str``, or ``(...)``."""
        return self._text
