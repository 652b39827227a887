"""The bus's typed contract exported: a JSON Schema document, and an AsyncAPI 3.0 one.

    from bus.schema import asyncapi, json_schema

    document = json_schema(bus)   # every command's params and result, every event's payload
    spec = asyncapi(bus)          # channels, request/reply operations, components

Every schema in them is pydantic's, made from the handlers' annotations (the
one ``TypeAdapter`` per signature of ``_core._contract``) and the declared
payload types, in one pass so that the types they share are defined once.
This module only assembles them: which commands and events there are, what
each parameter defaults to, which ones are required.

An event's payload is its declared type (``Bus.declare_event``) or, for an
event that was not declared, the parameters of the listeners registered for
its exact name (wildcard listeners describe no one event). A parameter whose
annotation is not checked says why in its ``description``.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .._core._contract import Contract
from .._core._events import EventContract, EventTable
from .._core._patterns import is_wildcard
from .._core._router import Handler, Router
from .._core._version import VERSION
from ._jsonval import json_ready

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["FORMATS", "Described", "asyncapi", "json_schema", "names"]

FORMATS = ("jsonschema", "asyncapi")
"""The formats of the schema export (the control protocol's ``schema``)."""

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"

_Mode = Literal["validation", "serialization"]


class Described(Protocol):
    """What the export reads of a bus: its name, routing table and declared events."""

    name: str
    router: Router
    events: EventTable


@functools.cache
def _generator() -> type[Any]:
    """pydantic's schema generator, made to never fail on a type JSON Schema cannot say."""
    from pydantic.json_schema import GenerateJsonSchema

    class Generate(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            # An arbitrary class, a callable: any value is described, none refused.
            return {"description": f"not expressible in JSON Schema: {error_info}"}

        def emit_warning(self, kind: Any, detail: str) -> None:
            """Defaults that are not JSON are left out of the schema, quietly."""

    return Generate


class _Event:
    """One event of the export: declared, or inferred from its exact listeners."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.declared: EventContract | None = None
        self.listeners: list[Handler] = []


def _events(bus: Described) -> dict[str, _Event]:
    found: dict[str, _Event] = {}
    for contract in bus.events.declared():
        found.setdefault(contract.name, _Event(contract.name)).declared = contract
    for handler in bus.router.listeners():
        if not is_wildcard(handler.name):
            found.setdefault(handler.name, _Event(handler.name)).listeners.append(handler)
    return dict(sorted(found.items()))


def names(bus: Described) -> tuple[list[str], list[str]]:
    """The commands and the events the export describes."""
    return [h.name for h in bus.router.commands()], list(_events(bus))


class _Export:
    """One pass of pydantic over every adapter, then the pieces put back together."""

    def __init__(self, bus: Described, only: str | None, ref_template: str) -> None:
        self.commands = [h for h in bus.router.commands() if only is None or h.name == only]
        self.events = {k: v for k, v in _events(bus).items() if only is None or k == only}
        self.ref_template = ref_template
        inputs: list[tuple[tuple[str, str, int], _Mode, TypeAdapter[Any]]] = []
        self.contracts: dict[int, Contract] = {}
        for handler in self.commands:
            contract = handler.binder.contract()
            if contract is None:
                continue
            self.contracts[id(handler)] = contract
            inputs.append((("params", handler.name, id(handler)), "validation", contract.params))
            result = contract.result()
            if result is not None:
                inputs.append((("result", handler.name, 0), "serialization", result))
        for event in self.events.values():
            if event.declared is not None:
                inputs.append((("payload", event.name, 0), "validation", event.declared.adapter))
                continue
            for handler in event.listeners:
                contract = handler.binder.contract()
                if contract is not None:
                    self.contracts[id(handler)] = contract
                    key = ("params", handler.name, id(handler))
                    inputs.append((key, "validation", contract.params))
        from pydantic import TypeAdapter as Adapter

        schemas, defs = Adapter.json_schemas(
            inputs, ref_template=ref_template, schema_generator=_generator()
        )
        self.defs: dict[str, Any] = defs.get("$defs", {})
        self.schemas = {key: schema for (key, _mode), schema in schemas.items()}
        for key, schema in self.schemas.items():
            if key[0] == "params":
                self.schemas[key] = self._inline(schema)

    def _inline(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A signature's own schema in place of the reference pydantic gives it.

        The ``TypedDict`` of a signature is made for it alone, so nothing else
        refers to its definition.
        """
        ref = schema.get("$ref")
        if len(schema) == 1 and isinstance(ref, str):
            key = ref.rsplit("/", 1)[-1]
            if key in self.defs:
                return self.defs.pop(key)  # type: ignore[no-any-return]
        return schema

    def params(self, handler: Handler) -> dict[str, Any]:
        """The JSON Schema of ``handler``'s parameters, as one object."""
        contract = self.contracts.get(id(handler))
        if contract is None:
            return {"type": "object", "description": "the handler's signature is unknown"}
        schema = copy.deepcopy(self.schemas[("params", handler.name, id(handler))])
        schema.pop("title", None)
        properties: dict[str, Any] = schema.setdefault("properties", {})
        for key, value in contract.defaults().items():
            default = _json_default(value)
            if default is not _NO_DEFAULT and key in properties:
                properties[key]["default"] = default
        for key, note in contract.notes.items():
            if key in properties:
                properties[key]["description"] = note
        signature = contract.signature.parameters
        for key, param in signature.items():
            if key in properties and param.kind is param.VAR_POSITIONAL:
                properties[key]["description"] = f"*{key}: the positional arguments past the others"
            elif key in properties and param.kind is param.VAR_KEYWORD:
                properties[key]["description"] = f"**{key}: the keyword arguments past the others"
        required = contract.required()
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.values()):
            schema["additionalProperties"] = False
        return schema

    def result(self, handler: Handler) -> dict[str, Any]:
        """The JSON Schema of what ``handler`` returns (``{}``: anything)."""
        schema = self.schemas.get(("result", handler.name, 0))
        contract = self.contracts.get(id(handler))
        if schema is None:
            return {}
        schema = copy.deepcopy(schema)
        if contract is not None and "return" in contract.notes:
            schema["description"] = contract.notes["return"]
        return schema

    def payload(self, event: _Event) -> dict[str, Any]:
        """The JSON Schema of an event's arguments, declared or inferred."""
        if event.declared is not None:
            return copy.deepcopy(self.schemas[("payload", event.name, 0)])
        found: list[dict[str, Any]] = []
        for handler in event.listeners:
            schema = self.params(handler)
            if schema not in found:
                found.append(schema)
        if not found:
            return {}
        if len(found) == 1:
            return found[0]
        for schema in found:  # each listener may ignore what the others take
            schema.pop("additionalProperties", None)
        return {"allOf": found}  # a payload every listener takes


_NO_DEFAULT: Any = object()


def _json_default(value: Any) -> Any:
    """A parameter's default as JSON, or ``_NO_DEFAULT`` if it has none that JSON holds."""
    clean, lossy = json_ready(value)
    return _NO_DEFAULT if lossy else clean


def _strict(document: dict[str, Any]) -> dict[str, Any]:
    """The document as strict JSON: a NaN default pydantic wrote, say, is marked instead."""
    clean, _ = json_ready(document)
    return clean  # type: ignore[no-any-return]


def _doc(handler: Handler) -> dict[str, str]:
    if not handler.doc:
        return {}
    return {"summary": handler.doc.splitlines()[0], "description": handler.doc}


def json_schema(bus: Described, name: str | None = None) -> dict[str, Any]:
    """A JSON Schema (2020-12) document of the bus's commands and events.

    ``commands`` maps each command to the schema of its ``params`` (one
    object: a property per parameter, ``required`` and ``default`` as the
    signature has them) and of its ``result``; ``events`` maps each event to
    the schema of its ``payload`` and says whether it was ``declared``. Types
    they share are defined once, in ``$defs``. With ``name``, only that
    command or event.

    Raises:
        LookupError: ``name`` is neither a command nor an event of the bus.
    """
    export = _Export(bus, name, "#/$defs/{model}")
    if name is not None and not export.commands and not export.events:
        raise LookupError(f"no command or event named {name!r}")
    commands: dict[str, Any] = {}
    for handler in export.commands:
        commands[handler.name] = {
            "service": handler.destination.name,
            "readonly": handler.readonly,
            **({"description": handler.doc} if handler.doc else {}),
            "params": export.params(handler),
            "result": export.result(handler),
        }
    events: dict[str, Any] = {}
    for event in export.events.values():
        entry: dict[str, Any] = {"declared": event.declared is not None}
        if event.declared is not None:
            entry["type"] = event.declared.payload.__qualname__
        entry["payload"] = export.payload(event)
        events[event.name] = entry
    document: dict[str, Any] = {
        "$schema": DIALECT,
        "title": f"bus {bus.name}",
        "commands": commands,
        "events": events,
    }
    if export.defs:
        document["$defs"] = dict(sorted(export.defs.items()))
    return _strict(document)


_ERROR = {
    "type": "object",
    "description": "What the handler raised, or why the bus refused the call",
    "properties": {
        "type": {"type": "string"},
        "message": {"type": "string"},
        "traceback": {"type": "string"},
    },
    "required": ["type", "message"],
}


def asyncapi(bus: Described, *, title: str | None = None) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the whole bus.

    Each command is a request/reply operation the bus receives on a channel
    named after it (``command.NAME``), answered on ``command.NAME.reply`` with
    its result or an error; a ``readonly`` command carries the ``readonly``
    operation trait (and ``x-bus-readonly``). Each event is a channel
    (``event.NAME``) the bus sends on, and receives on where it has
    listeners. Message payloads are the schemas of ``json_schema``, under
    ``components.schemas``.
    """
    export = _Export(bus, None, "#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(sorted(export.defs.items()))
    messages: dict[str, Any] = {"bus.error": _message("error", "bus.error", None)}
    schemas["bus.error"] = _ERROR
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for handler in export.commands:
        name = handler.name
        schemas[f"{name}.params"] = export.params(handler)
        schemas[f"{name}.result"] = export.result(handler)
        messages[f"{name}.request"] = _message(name, f"{name}.params", handler)
        messages[f"{name}.reply"] = _message(f"{name} result", f"{name}.result", None)
        request, reply = f"command.{name}", f"command.{name}.reply"
        channels[request] = {
            "address": name,
            "title": name,
            **_doc(handler),
            "messages": {"request": {"$ref": f"#/components/messages/{name}.request"}},
        }
        channels[reply] = {
            "address": None,
            "title": f"{name} reply",
            "messages": {
                "result": {"$ref": f"#/components/messages/{name}.reply"},
                "error": {"$ref": "#/components/messages/bus.error"},
            },
        }
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{request}"},
            "title": f"execute {name}",
            **_doc(handler),
            "tags": [{"name": f"service:{handler.destination.name}"}],
            "messages": [{"$ref": f"#/channels/{request}/messages/request"}],
            "reply": {
                "channel": {"$ref": f"#/channels/{reply}"},
                "messages": [
                    {"$ref": f"#/channels/{reply}/messages/result"},
                    {"$ref": f"#/channels/{reply}/messages/error"},
                ],
            },
            "x-bus-readonly": handler.readonly,
        }
        if handler.readonly:
            operation["traits"] = [{"$ref": "#/components/operationTraits/readonly"}]
        operations[f"execute.{name}"] = operation
    for event in export.events.values():
        name = event.name
        schemas[f"{name}.payload"] = export.payload(event)
        messages[f"{name}.event"] = _message(name, f"{name}.payload", None)
        channel = f"event.{name}"
        described = next((h for h in event.listeners if h.doc), None)
        channels[channel] = {
            "address": name,
            "title": name,
            **({"description": f"declared as {event.declared.payload.__qualname__}"}
               if event.declared is not None else {}),
            "messages": {"event": {"$ref": f"#/components/messages/{name}.event"}},
        }  # fmt: skip
        refs = [{"$ref": f"#/channels/{channel}/messages/event"}]
        operations[f"fire.{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "title": f"fire {name}",
            "messages": refs,
        }
        if event.listeners:
            services = sorted({h.destination.name for h in event.listeners})
            operations[f"listen.{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "title": f"listen to {name}",
                **(_doc(described) if described is not None else {}),
                "tags": [{"name": f"service:{s}"} for s in services],
                "messages": copy.deepcopy(refs),
            }
    return _strict(
        {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": title or f"bus {bus.name}",
                "version": VERSION,
                "description": (
                    f"The commands and events of bus {bus.name!r}: each command a request/reply "
                    "operation, each event a channel."
                ),
            },
            "defaultContentType": "application/json",
            "channels": channels,
            "operations": operations,
            "components": {
                "schemas": schemas,
                "messages": dict(sorted(messages.items())),
                "operationTraits": {
                    "readonly": {
                        "title": "readonly",
                        "summary": "No side effects: replay and the console may run it freely.",
                        "tags": [{"name": "readonly"}],
                    }
                },
            },
        }
    )


def _message(name: str, schema: str, handler: Handler | None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema}"},
    }
    if handler is not None:
        message.update(_doc(handler))
    return message
