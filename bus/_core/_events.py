"""Event contracts: a declared payload type for an event, and the converting of its arguments.

    @event_type("lights.changed")
    @dataclass
    class LightsChanged:
        room: str
        on: bool
        brightness: int

    bus.declare_event(LightsChanged)      # or list it in a Service's ``events``

A payload type is a dataclass, ``TypedDict`` or pydantic model whose fields
are the event's arguments (by name, or positionally in field order). The
console's ``fire`` converts and checks a declared event's arguments always,
``fire_event`` on a ``Bus(validate=True)``; both with pydantic, through the
pieces of ``_contract``.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._hints import (
    InvalidArgumentError,
    Problem,
    adapter_for,
    portable,
    problems_of,
    validation_error,
)
from ._patterns import validate_name

__all__ = [
    "EventContract",
    "EventTable",
    "event_name",
    "event_type",
    "payload_fields",
    "service_events",
]

_EMPTY = inspect.Parameter.empty
_EVENT_ATTR = "__bus_event__"
_T = TypeVar("_T", bound=type)


def event_type(name: str) -> Callable[[_T], _T]:
    """Mark a dataclass, ``TypedDict`` or pydantic model as the payload of event ``name``.

        @event_type("lights.changed")
        @dataclass
        class LightsChanged:
            room: str
            on: bool
            brightness: int

    Its fields are the event's arguments (``fire_event("lights.changed",
    room="hall", on=True, brightness=80)``). Marking declares nothing by
    itself: give the class to ``Bus.declare_event(LightsChanged)``, or list it
    in a service's ``events``, which ``add_service`` declares.
    """
    validate_name(name, "event name")

    def mark(cls: _T) -> _T:
        payload_fields(cls)  # refuses what cannot be a payload, at once
        setattr(cls, _EVENT_ATTR, name)
        return cls

    return mark


def event_name(payload: type) -> str | None:
    """The event name ``@event_type`` gave ``payload``, if any."""
    name = payload.__dict__.get(_EVENT_ATTR) if isinstance(payload, type) else None
    return name if isinstance(name, str) else None


def _is_model(payload: type) -> bool:
    # A pydantic model without importing pydantic: only models have both.
    return hasattr(payload, "model_fields") and hasattr(payload, "__pydantic_core_schema__")


def payload_fields(payload: Any) -> tuple[str, ...]:
    """The fields of a payload type, in order: its arguments' names.

    Raises:
        TypeError: ``payload`` is not a dataclass, ``TypedDict`` or pydantic model.
    """
    if isinstance(payload, type):
        if dataclasses.is_dataclass(payload):
            return tuple(f.name for f in dataclasses.fields(payload) if f.init)
        if typing.is_typeddict(payload) or _is_typing_extensions_typeddict(payload):
            return tuple(typing.get_type_hints(payload))
        if _is_model(payload):
            return tuple(typing.cast(Any, payload).model_fields)
    raise TypeError(
        "an event's payload type must be a dataclass, a TypedDict or a pydantic model, "
        f"not {getattr(payload, '__qualname__', None) or type(payload).__qualname__}"
    )


def _is_typing_extensions_typeddict(payload: type) -> bool:
    import typing_extensions

    return typing_extensions.is_typeddict(payload)


class EventContract:
    """An event's declared payload type, and the converting of its arguments.

    Attributes:
        name: the event.
        payload: the dataclass, ``TypedDict`` or pydantic model.
        fields: its fields in order: the event's arguments, positionally.
        adapter: pydantic's adapter of ``payload``.
    """

    __slots__ = ("adapter", "fields", "name", "payload", "texts")

    def __init__(self, name: str, payload: type) -> None:
        self.name = name
        self.payload = payload
        self.fields = payload_fields(payload)
        self.adapter = adapter_for(portable(payload))
        self.texts = _field_texts(payload, self.fields)

    def convert(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The event's arguments converted to the payload's field types, shape kept.

        Positional arguments are the fields in order; keywords name them.

        Raises:
            InvalidArgumentError: an argument does not convert, a required
                field is missing, or an argument names no field.
        """
        fields = self.fields
        problems: list[Problem] = []
        if len(args) > len(fields):
            problems.append(
                Problem(
                    "*",
                    "",
                    self.payload.__qualname__,
                    args[len(fields) :],
                    f"too many positional arguments: {self.payload.__qualname__} has "
                    f"{len(fields)} fields",
                )
            )
        values = dict(zip(fields, args, strict=False))
        for key, value in kwargs.items():
            if key not in fields:
                problems.append(
                    Problem(
                        key, "", "nothing", value, f"no such field; fields: {', '.join(fields)}"
                    )
                )
            elif key in values:
                problems.append(Problem(key, "", self.texts[key], value, "given twice"))
            else:
                values[key] = value
        if problems:
            raise InvalidArgumentError(self.name, problems)
        try:
            out = self.adapter.validate_python(values)
        except validation_error() as exc:
            raise InvalidArgumentError(self.name, problems_of(exc, self.texts, None)) from None
        get: Callable[[str], Any] = (
            out.__getitem__ if isinstance(out, dict) else out.__getattribute__
        )
        new_args = tuple(get(field) for field in fields[: len(args)])
        return new_args, {key: get(key) for key in kwargs}


def _field_texts(payload: type, fields: tuple[str, ...]) -> dict[str, str]:
    from ._binding import annotation_text

    try:
        hints = typing.get_type_hints(payload, include_extras=True)
    except Exception:
        hints = getattr(payload, "__annotations__", {})
    return {field: annotation_text(hints.get(field, _EMPTY)) or "Any" for field in fields}


class EventTable:
    """The events a bus has declared payload types for. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._declared: dict[str, EventContract] = {}

    def declare(self, name: str | type, payload: type | None = None) -> EventContract:
        """Give event ``name`` the payload type ``payload``; idempotent for the same type.

        ``declare(LightsChanged)`` takes the name ``@event_type`` gave the class.

        Raises:
            TypeError: ``payload`` cannot be a payload type, or no name is given.
            ValueError: ``name`` is invalid, or declared with another type.
        """
        if isinstance(name, type) and payload is None:
            payload, found = name, event_name(name)
            if found is None:
                raise TypeError(
                    f"{name.__qualname__} has no event name: mark it @event_type(NAME), "
                    "or declare_event(NAME, TYPE)"
                )
            name = found
        if not isinstance(name, str):
            raise TypeError(f"event name must be a str, not {type(name).__name__}")
        validate_name(name, "event name")
        if payload is None:
            raise TypeError(f"declare_event({name!r}) needs the payload type")
        with self._lock:
            existing = self._declared.get(name)
        if existing is not None:
            if existing.payload is payload:
                return existing
            raise ValueError(
                f"event {name!r} is declared with {existing.payload.__qualname__} already, "
                f"not {getattr(payload, '__qualname__', payload)!r}"
            )
        contract = EventContract(name, payload)
        with self._lock:
            existing = self._declared.setdefault(name, contract)
        if existing is not contract and existing.payload is not payload:
            raise ValueError(
                f"event {name!r} is declared with {existing.payload.__qualname__} already"
            )
        return existing

    def get(self, name: str) -> EventContract | None:
        """The contract of event ``name``, if it was declared."""
        return self._declared.get(name)

    def declared(self) -> list[EventContract]:
        """Every declared event, by name."""
        with self._lock:
            return sorted(self._declared.values(), key=lambda c: c.name)


def service_events(events: Any) -> list[tuple[str, type]]:
    """A service's ``events`` as ``(name, payload)`` pairs.

    ``events`` maps names to payload types, or lists types marked with
    ``@event_type``.

    Raises:
        TypeError: an entry is neither.
    """
    if isinstance(events, Mapping):
        return [(name, payload) for name, payload in events.items()]
    pairs = []
    for payload in events:
        name = event_name(payload)
        if name is None:
            raise TypeError(
                f"{getattr(payload, '__qualname__', payload)!r} in events has no event name: "
                "mark it @event_type(NAME), or make events a dict of names to types"
            )
        pairs.append((name, payload))
    return pairs
