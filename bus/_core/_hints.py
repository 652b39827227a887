"""What typed contracts are made of: annotations resolved, pydantic's adapters, the errors.

``_contract`` builds a handler's ``Contract`` from these pieces, and
``_events`` an event's; the transport (``bus._nats``) resolves a result's
annotation with them too. pydantic is imported only inside the functions that
need it, so importing this module does not load it.
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

from ._errors import BusError, error_message

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "InvalidArgumentError",
    "Problem",
    "adapter_for",
    "first_line",
    "namespace_of",
    "params_adapter",
    "portable",
    "problems_of",
    "resolve",
    "validation_error",
]

_EMPTY = inspect.Parameter.empty
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


def namespace_of(fn: Callable[..., Any]) -> dict[str, Any]:
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


def resolve(annotation: Any, namespace: dict[str, Any]) -> tuple[Any, str | None]:
    """The type an annotation names, or ``(Any, why not)``."""
    if annotation is _EMPTY:
        return Any, None
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(_Hints(annotation, namespace), include_extras=True)[
                "value"
            ]
        except Exception as exc:
            return Any, f"not checked: {annotation!r} cannot be resolved ({first_line(exc)})"
    try:
        return portable(annotation), None
    except Exception as exc:
        return Any, f"not checked: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    text = error_message(exc).strip().splitlines()
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


def params_adapter(title: str, fields: dict[str, Any]) -> TypeAdapter[Any]:
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
