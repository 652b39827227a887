"""Typed contracts: arguments converted to a handler's annotated types, with pydantic.

    contract = handler.binder.contract()       # built once, then kept
    args, kwargs = contract.convert(("kitchen",), {"mode": "heat"})
    # kwargs == {"mode": Mode.HEAT}; 42 for ``name: str`` raises InvalidArgumentError

Where values arrive as JSON (the control protocol, and so every console face
and replay; a network transport) a command's arguments are converted to the
types its handler's parameters are annotated with, and checked, before
anything is dispatched: ``{"x": 1, "y": 2}`` becomes ``Point(1, 2)`` for
``p: Point``, ``"heat"`` becomes ``Mode.HEAT`` for ``mode: Mode``, and ``42``
for ``name: str`` is refused with an ``InvalidArgumentError`` naming the
parameter, the type it expects and the value it got. ``Bus(validate=True)``
converts in-process calls the same way.

pydantic does the converting and the checking: each signature gets one
``TypeAdapter``, of a ``TypedDict`` whose keys are its parameters, built the
first time it is needed and kept on the handler's ``Binder``. pydantic is
imported only then, so a bus that never converts anything never loads it.
Parameters without an annotation (or annotated ``Any``) pass through as they
are; an annotation that cannot be resolved or that pydantic cannot use is not
checked either, and the contract says why (``notes``), which the schema shows.

Events get a contract too (``_events``): a declared payload type, converted
with the same pieces (``_hints``: annotations resolved, pydantic's adapters,
``InvalidArgumentError``).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._hints import (
    InvalidArgumentError,
    Problem,
    adapter_for,
    first_line,
    namespace_of,
    params_adapter,
    portable,
    problems_of,
    resolve,
    validation_error,
)

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ._router import Handler

__all__ = [
    "Contract",
    "InvalidArgumentError",
    "Problem",
    "adapter_for",
    "convert_arguments",
    "portable",
    "problems_of",
    "validation_error",
]

_EMPTY = inspect.Parameter.empty
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


# -- commands: one contract per signature --------------------------------------------------


class Contract:
    """The typed contract of one handler's signature, built once.

    Thread-safe: nothing changes after construction (pydantic's validators
    may be called from any thread).

    Attributes:
        name: the command (or listener pattern) it belongs to.
        signature: the handler's signature.
        checked: the parameters whose arguments are converted and checked.
        notes: why a parameter is not checked, when it is annotated but its
            annotation cannot be resolved or used.
        params: the adapter of the parameters (``TypedDict`` keyed by name;
            ``*args`` as a tuple, ``**kwargs`` as a dict).
        texts: each parameter's annotation as written.
    """

    __slots__ = (
        "_named",
        "_positional",
        "_result",
        "_result_hint",
        "_result_lock",
        "_signature_text",
        "_var_keyword",
        "_var_positional",
        "checked",
        "name",
        "notes",
        "params",
        "signature",
        "texts",
    )

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        signature: inspect.Signature,
        signature_text: str = "",
    ) -> None:
        from ._binding import annotation_text

        self.name = name
        self.signature = signature
        self._signature_text = signature_text
        namespace = namespace_of(fn)
        self.notes: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        fields: dict[str, Any] = {}
        checked: set[str] = set()
        self._positional: tuple[str, ...] = ()
        self._named: frozenset[str] = frozenset()
        self._var_positional: str | None = None
        self._var_keyword: str | None = None
        positional, named = [], []
        for p in signature.parameters.values():
            hint, note = resolve(p.annotation, namespace)
            self.texts[p.name] = annotation_text(p.annotation) or "Any"
            if note is not None:
                self.notes[p.name] = note
            if hint is not Any and hint is not object:
                checked.add(p.name)
            if p.kind is _VAR_POSITIONAL:
                self._var_positional = p.name
                hint = tuple[hint, ...]  # type: ignore[valid-type]
            elif p.kind is _VAR_KEYWORD:
                self._var_keyword = p.name
                hint = dict[str, hint]  # type: ignore[valid-type]
            if p.kind in _POSITIONAL:
                positional.append(p.name)
            if p.kind in _BY_NAME:
                named.append(p.name)
            fields[p.name] = hint
        self._positional = tuple(positional)
        self._named = frozenset(named)
        self.params = self._build(fields, checked)
        self.checked = frozenset(checked)
        self._result_hint, note = resolve(signature.return_annotation, namespace)
        if note is not None:
            self.notes["return"] = note
        self._result: TypeAdapter[Any] | None = None
        self._result_lock = threading.Lock()

    def _build(self, fields: dict[str, Any], checked: set[str]) -> TypeAdapter[Any]:
        """The adapter; a parameter pydantic cannot use is left unchecked, and noted."""
        try:
            return params_adapter(self.name, fields)
        except Exception:
            pass
        for key in sorted(checked):
            try:
                params_adapter(self.name, {key: fields[key]})
            except Exception as exc:
                checked.discard(key)
                self.notes[key] = (
                    f"not checked: pydantic cannot use {self.texts[key]} ({first_line(exc)})"
                )
                fields[key] = _loose(key, self._var_positional, self._var_keyword)
        try:
            return params_adapter(self.name, fields)
        except Exception as exc:  # nothing is checked rather than the handler refused
            for key in checked:
                self.notes[key] = f"not checked: {first_line(exc)}"
            checked.clear()
            loose = {key: _loose(key, self._var_positional, self._var_keyword) for key in fields}
            return params_adapter(self.name, loose)

    def result(self) -> TypeAdapter[Any] | None:
        """The adapter of the return annotation (for its schema), or ``None`` if unannotated."""
        if self.signature.return_annotation is _EMPTY:
            return None
        with self._result_lock:
            if self._result is None:
                try:
                    self._result = adapter_for(self._result_hint)
                except Exception as exc:
                    self.notes["return"] = f"no schema: {first_line(exc)}"
                    self._result = adapter_for(Any)
            return self._result

    def convert(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments converted to the annotated types, in the shape they were given.

        The arguments must bind to the signature (``Binder.check`` first).
        Positional arguments stay positional and keywords keywords; only the
        values change. Unchecked parameters pass through untouched.

        Raises:
            InvalidArgumentError: some argument does not convert; every one
                at fault is named.
        """
        checked = self.checked
        if not checked:
            return args, kwargs
        values: dict[str, Any] = {}
        positional = self._positional
        count = len(positional)
        for index, value in enumerate(args[:count]):
            name = positional[index]
            if name in checked:
                values[name] = value
        var_positional = self._var_positional
        if len(args) > count and var_positional in checked:
            values[var_positional] = args[count:]
        extra: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in self._named:
                if key in checked:
                    values[key] = value
            else:
                extra[key] = value
        var_keyword = self._var_keyword
        if extra and var_keyword in checked:
            values[var_keyword] = extra
        if not values:
            return args, kwargs
        try:
            out = self.params.validate_python(values)
        except validation_error() as exc:
            problems = problems_of(exc, self.texts, var_keyword)
            raise InvalidArgumentError(self.name, problems, self._signature_text) from None
        new_args = list(args)
        for index in range(min(len(args), count)):
            name = positional[index]
            if name in out:
                new_args[index] = out[name]
        if var_positional in out:
            new_args[count:] = out[var_positional]
        new_kwargs = dict(kwargs)
        converted_extra: dict[str, Any] = out.get(var_keyword, {}) if var_keyword else {}
        for key in kwargs:
            if key in self._named:
                if key in out:
                    new_kwargs[key] = out[key]
            elif key in converted_extra:
                new_kwargs[key] = converted_extra[key]
        return tuple(new_args), new_kwargs

    def required(self) -> list[str]:
        """The parameters a call must give."""
        return [
            p.name
            for p in self.signature.parameters.values()
            if p.default is _EMPTY and p.kind not in (_VAR_POSITIONAL, _VAR_KEYWORD)
        ]

    def defaults(self) -> dict[str, Any]:
        """Each parameter's default, for those that have one."""
        return {
            p.name: p.default for p in self.signature.parameters.values() if p.default is not _EMPTY
        }


def _loose(key: str, var_positional: str | None, var_keyword: str | None) -> Any:
    if key == var_positional:
        return tuple[Any, ...]
    if key == var_keyword:
        return dict[str, Any]
    return Any


def convert_arguments(
    handler: Handler, args: Iterable[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments that arrived as JSON, checked and converted for ``handler``.

    What a transport or console endpoint calls before it dispatches: the
    arguments must bind (else ``TypeError``, as ``execute_command`` raises)
    and convert (else ``InvalidArgumentError``). Handlers without a signature
    (some builtins) take the arguments as they are.
    """
    args, kwargs = tuple(args), dict(kwargs)
    handler.binder.check(args, kwargs)
    contract = handler.binder.contract()
    if contract is None:
        return args, kwargs
    return contract.convert(args, kwargs)
