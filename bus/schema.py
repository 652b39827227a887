"""The bus's typed contract: converting JSON to it, typed values to JSON, and its schemas.

    from bus import Bus
    from bus.schema import asyncapi, convert_call, json_schema, to_json

    with Bus(name="home") as bus:
        ...                                          # add services
        document = json_schema(bus)                  # {"commands", "events", "$defs"}
        spec = asyncapi(bus)                         # {"asyncapi": "3.0.0", "channels": ...}
        args, kwargs = convert_call(bus, "thermostat.set_mode", ["office"], {"mode": "off"})
        value, lossy = to_json(bus.execute_command("thermostat.set_mode", *args, **kwargs).result())

Everything here is pydantic's work, from the handlers' annotations and the
events' declared payload types (``Bus.declare_event``); ``docs/bus.md``
("Types") has the rules. The control protocol does the same at its boundary
(``execute``, ``fire``, ``schema``): this module is for what works on a bus
in the same process (a console's embedded bus, a transport).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._core._contract import InvalidArgumentError, Problem, convert_arguments
from ._core._events import event_type
from ._observe._jsonval import json_ready
from ._observe._schema import FORMATS, asyncapi, json_schema

if TYPE_CHECKING:
    from ._bus import Bus

__all__ = [
    "FORMATS",
    "InvalidArgumentError",
    "Problem",
    "asyncapi",
    "convert_call",
    "convert_event",
    "event_type",
    "json_schema",
    "to_json",
]


def convert_call(
    bus: Bus, name: str, args: Iterable[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for command ``name`` (JSON, say) converted to its handler's annotated types.

    What the control protocol's ``execute`` does before it sends a command.
    Any thread.

    Raises:
        CommandNotFoundError: no such command.
        TypeError: the arguments do not bind to the handler's signature.
        InvalidArgumentError: an argument does not convert (every one at
            fault is named in ``problems``).
    """
    return convert_arguments(bus.router.command(name), args, kwargs)


def convert_event(
    bus: Bus, name: str, args: Iterable[Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for event ``name`` converted to its declared payload type's fields.

    An event that was not declared keeps its arguments as they are. What the
    control protocol's ``fire`` does before it fires. Any thread.

    Raises:
        InvalidArgumentError: an argument does not convert, a field is
            missing, or an argument names no field.
    """
    args, kwargs = tuple(args), dict(kwargs)
    contract = bus.events.get(name)
    return (args, kwargs) if contract is None else contract.convert(args, kwargs)


def to_json(value: Any) -> tuple[Any, bool]:
    """``value`` as JSON-ready data, and whether anything was lost on the way.

    Typed values become the JSON they stand for (pydantic's JSON mode); what
    JSON cannot hold is marked ``{"$repr": ...}`` and makes it lossy. Never
    raises. Any thread.
    """
    return json_ready(value)
