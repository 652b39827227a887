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
with the same pieces.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import BusError

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
_SHOWN = 60  # characters of a value shown in an error message


# -- errors -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One argument that does not convert to its parameter's type.

    Attributes:
        param: the parameter (for an event, the payload field) at fault; for
            ``**kwargs`` the keyword given.
        path: where inside the argument, ``"x"`` or ``"[2].name"``; empty
            when it is the argument itself.
        expected: the parameter's annotation, as written (``"Mode"``).
        value: the offending value as given (the part of the argument at
            ``path``), or ``None`` when something is missing.
        message: what pydantic says is wrong with it.
    """

    param: str
    path: str
    expected: str
    value: Any
    message: str

    def describe(self) -> str:
        """One line: ``argument 'mode' must be Mode, not 'hot' (Input should be ...)``."""
        head = f"argument {self.param!r} must be {self.expected}"
        if not self.path:
            where = self.param
        elif self.path.startswith("["):
            where = self.param + self.path
        else:
            where = f"{self.param}.{self.path}"
        if self.message == "Field required":
            return f"{head}: {where} is missing"
        if not self.path:
            return f"{head}, not {_short(self.value)} ({self.message})"
        return f"{head}: {where} is {_short(self.value)} ({self.message})"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the real problem
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class InvalidArgumentError(BusError, TypeError):
    """An argument's value does not convert to the type its parameter is annotated with.

    Raised before anything is dispatched: by the control protocol's
    ``execute`` and ``fire`` (so every console face, and replay), and by
    ``execute_command`` and ``fire_event`` on a ``Bus(validate=True)``. A
    ``TypeError``, as arguments that do not bind are.

    Attributes:
        target: the command or event.
        problems: every argument at fault (``Problem``), in parameter order.
    """

    def __init__(self, target: str, problems: Iterable[Problem], signature: str = "") -> None:
        self.target = target
        self.problems = tuple(problems)
        self.signature = signature
        reasons = "; ".join(p.describe() for p in self.problems) or "invalid arguments"
        super().__init__(f"{target}{signature}: {reasons}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.target, self.problems, self.signature))


# -- resolving annotations ---------------------------------------------------------------


class _Hints:
    """What ``typing.get_type_hints`` needs to resolve one annotation written as text."""

    def __init__(self, annotation: str, namespace: dict[str, Any]) -> None:
        self.__annotations__ = {"value": annotation}
        self.__globals__ = namespace


def _namespace_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The globals that ``fn``'s annotations were written in."""
    try:
        target: Any = inspect.unwrap(fn)
    except ValueError:  # a cycle of __wrapped__
        target = fn
    for candidate in (
        target,
        getattr(target, "__func__", None),
        getattr(target, "func", None),  # functools.partial
        vars(type(target)).get("__call__"),  # a callable instance's method
    ):
        found = getattr(candidate, "__globals__", None)
        if isinstance(found, dict):
            return found
    return {}


def _resolve(annotation: Any, namespace: dict[str, Any]) -> tuple[Any, str | None]:
    """The type an annotation names, or ``(Any, why not)``."""
    if annotation is _EMPTY:
        return Any, None
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(_Hints(annotation, namespace), include_extras=True)[
                "value"
            ]
        except Exception as exc:
            return Any, f"not checked: {annotation!r} cannot be resolved ({_first_line(exc)})"
    try:
        return portable(annotation), None
    except Exception as exc:
        return Any, f"not checked: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


if sys.version_info >= (3, 12):

    def portable(hint: Any) -> Any:
        """``hint`` as pydantic can use it (as it is, from Python 3.12)."""
        return hint

else:
    # Before Python 3.12, pydantic validates only typing_extensions' TypedDict,
    # whose classes keep their original bases. A typing.TypedDict class is
    # given to pydantic as a typing_extensions clone with the same name, keys
    # and types, rebuilt wherever it occurs in an annotation.
    _clones: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()
    _cloning: set[type] = set()
    _clones_lock = threading.RLock()

    def portable(hint: Any) -> Any:
        """``hint`` as pydantic can use it: typing.TypedDict classes cloned."""
        if isinstance(hint, type):
            if type(hint).__module__ == "typing" and typing.is_typeddict(hint):
                return _clone(hint)
            return hint
        args = typing.get_args(hint)
        origin = typing.get_origin(hint)
        if not args or origin is typing.Literal:
            return hint
        if origin is typing.Annotated:
            inner = portable(args[0])
            return hint if inner is args[0] else typing.Annotated[(inner, *hint.__metadata__)]
        new = tuple(a if isinstance(a, list) else portable(a) for a in args)
        if all(n is a for n, a in zip(new, args, strict=True)):
            return hint
        if origin is typing.Union or isinstance(hint, types.UnionType):
            return typing.Union[new]  # noqa: UP007 - rebuilt from parts
        copy_with = getattr(hint, "copy_with", None)
        if copy_with is not None:
            return copy_with(new)
        return origin[new]

    def _clone(cls: type) -> type:
        import typing_extensions

        with _clones_lock:
            found = _clones.get(cls)
            if found is not None:
                return found
            if cls in _cloning:
                raise TypeError(f"the TypedDict {cls.__qualname__} refers to itself")
            _cloning.add(cls)
            try:
                required: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
                fields: dict[str, Any] = {}
                for key, hint in typing.get_type_hints(cls, include_extras=True).items():
                    while typing.get_origin(hint) in (typing.Required, typing.NotRequired):
                        hint = typing.get_args(hint)[0]
                    wrap = typing.Required if key in required else typing.NotRequired
                    fields[key] = wrap[portable(hint)]
                make: Any = typing_extensions.TypedDict  # a name known only at run time
                clone: Any = make(cls.__name__, fields)
                clone.__qualname__ = cls.__qualname__
                clone.__module__ = cls.__module__
                clone.__doc__ = cls.__doc__
                config = getattr(cls, "__pydantic_config__", None)
                if config is not None:
                    clone.__pydantic_config__ = config
                _clones[cls] = clone
                return typing.cast(type, clone)
            finally:
                _cloning.discard(cls)


# -- pydantic, imported when first needed -------------------------------------------------


def _params_adapter(title: str, fields: dict[str, Any]) -> TypeAdapter[Any]:
    """One adapter for a whole signature: a ``TypedDict`` keyed by parameter name."""
    import typing_extensions
    from pydantic import ConfigDict, TypeAdapter, with_config

    make: Any = typing_extensions.TypedDict  # a name known only at run time
    typed: Any = make(title, fields, total=False)
    # Arbitrary classes are checked with isinstance: a JSON value never is one.
    with_config(ConfigDict(arbitrary_types_allowed=True))(typed)
    return TypeAdapter(typed)


def adapter_for(hint: Any) -> TypeAdapter[Any]:
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except PydanticUserError:  # a type with a config of its own (a model, a dataclass)
        return TypeAdapter(hint)


def validation_error() -> type[Exception]:
    from pydantic import ValidationError

    return ValidationError


def problems_of(
    error: Exception, texts: Mapping[str, str], var_keyword: str | None
) -> list[Problem]:
    """pydantic's errors as ``Problem``s, the parameter named first in each."""
    problems = []
    for item in error.errors(include_url=False):  # type: ignore[attr-defined]
        loc = tuple(item["loc"])
        param = str(loc[0]) if loc else "?"
        expected = texts.get(param, "?")
        rest = loc[1:]
        if param == var_keyword and rest:
            param, rest = str(rest[0]), rest[1:]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in rest)
        value = None if item["type"] == "missing" else item.get("input")
        problems.append(Problem(param, path.removeprefix("."), expected, value, item["msg"]))
    return problems


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
        namespace = _namespace_of(fn)
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
            hint, note = _resolve(p.annotation, namespace)
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
        self._result_hint, note = _resolve(signature.return_annotation, namespace)
        if note is not None:
            self.notes["return"] = note
        self._result: TypeAdapter[Any] | None = None
        self._result_lock = threading.Lock()

    def _build(self, fields: dict[str, Any], checked: set[str]) -> TypeAdapter[Any]:
        """The adapter; a parameter pydantic cannot use is left unchecked, and noted."""
        try:
            return _params_adapter(self.name, fields)
        except Exception:
            pass
        for key in sorted(checked):
            try:
                _params_adapter(self.name, {key: fields[key]})
            except Exception as exc:
                checked.discard(key)
                self.notes[key] = (
                    f"not checked: pydantic cannot use {self.texts[key]} ({_first_line(exc)})"
                )
                fields[key] = _loose(key, self._var_positional, self._var_keyword)
        try:
            return _params_adapter(self.name, fields)
        except Exception as exc:  # nothing is checked rather than the handler refused
            for key in checked:
                self.notes[key] = f"not checked: {_first_line(exc)}"
            checked.clear()
            loose = {key: _loose(key, self._var_positional, self._var_keyword) for key in fields}
            return _params_adapter(self.name, loose)

    def result(self) -> TypeAdapter[Any] | None:
        """The adapter of the return annotation (for its schema), or ``None`` if unannotated."""
        if self.signature.return_annotation is _EMPTY:
            return None
        with self._result_lock:
            if self._result is None:
                try:
                    self._result = adapter_for(self._result_hint)
                except Exception as exc:
                    self.notes["return"] = f"no schema: {_first_line(exc)}"
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
