"""The bus's typed contract as the console reads it: each parameter's type, choices and default.

    contracts = Contracts(client.request("schema"))      # the bus's JSON Schema document
    contract = contracts.command("thermostat.set_mode", params=entry["params"])
    for field in contract.fields:
        field.name, field.type, field.choices, field.default   # 'mode', 'Mode', ('heat', 'off')
    contract.result                                            # 'ModeChange'

The document is the one the control protocol's ``schema`` method sends
(``docs/protocol.md``): pydantic's JSON Schema of every command's parameters
and result and every event's payload. This module only reads it: what type
to name, which values to offer, what a parameter defaults to. Nothing here
checks a value: the bus does that (``execute`` and ``fire`` with ``check``),
with the very rules it applies to a call. The REPL's completion, the TUI's
forms and ``busctl introspect`` all read the contract here, so they say the
same thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MISSING",
    "Contract",
    "Contracts",
    "Field",
    "choice_text",
    "field_problems",
    "type_text",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""A parameter without a default (``None`` is a default JSON can hold)."""

_DEPTH = 6  # how deep a type's description goes before it says "..."
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/@+-]*\Z")
_JSON_WORDS = {"true", "false", "null"}
_VARIADIC = {"var_positional", "var_keyword"}


@dataclass(frozen=True)
class Field:
    """One parameter of a command, or one field of an event's payload.

    Attributes:
        name: the parameter's name.
        kind: as ``inspect()`` says it: ``positional``, ``positional_or_keyword``,
            ``keyword_only``, ``var_positional`` or ``var_keyword``.
        type: the JSON type, said short: ``integer``, ``Mode``, ``list[Point]``,
            ``string | null``.
        choices: the values an enum or ``Literal`` allows (as JSON), in order;
            empty when any value of the type will do.
        default: the default as JSON, or ``MISSING``.
        required: whether a call must give it.
        nullable: whether ``null`` is one of the values it takes.
        description: what the schema says of it (why it is not checked, say).
        schema: its JSON Schema, as the document has it.
    """

    name: str
    kind: str = "positional_or_keyword"
    type: str = "any"
    choices: tuple[Any, ...] = ()
    default: Any = MISSING
    required: bool = False
    nullable: bool = False
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_default(self) -> bool:
        """Whether the parameter has a default JSON can hold."""
        return self.default is not MISSING

    @property
    def variadic(self) -> bool:
        """``*args`` or ``**kwargs``."""
        return self.kind in _VARIADIC

    @property
    def keyword(self) -> bool:
        """Whether it can be given as ``name=value``."""
        return self.kind in {"positional_or_keyword", "keyword_only"}

    @property
    def positional(self) -> bool:
        """Whether it can be given by position."""
        return self.kind in {"positional", "positional_or_keyword"}

    def default_text(self) -> str:
        """The default as a person would type it (``""`` when there is none)."""
        return "" if self.default is MISSING else choice_text(self.default)


@dataclass(frozen=True)
class Contract:
    """What a command takes and gives, or what an event carries.

    Attributes:
        name: the command or event.
        kind: ``"command"`` or ``"event"``.
        fields: the parameters (or payload fields), in signature order.
        result: the result's type, said short (commands; ``None`` for events).
        result_fields: the fields of a result that is an object with known fields.
        declared: for an event, whether its payload type was declared (else it
            is inferred from its listeners); ``None`` for a command.
        payload_type: the declared payload type's name.
        extra: whether arguments beyond ``fields`` are taken (``**kwargs``, an
            event with no known payload).
        description: the command's docstring, as the schema has it.
    """

    name: str
    kind: Literal["command", "event"]
    fields: tuple[Field, ...] = ()
    result: str | None = None
    result_fields: tuple[Field, ...] = ()
    declared: bool | None = None
    payload_type: str | None = None
    extra: bool = False
    description: str = ""

    def field(self, name: str) -> Field | None:
        """The field called ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)

    def positional(self, index: int) -> Field | None:
        """The field a positional argument at ``index`` (from 0) fills, if any.

        Past the last positional parameter, a ``*args`` one takes them all.
        """
        fields = [f for f in self.fields if f.positional]
        if index < len(fields):
            return fields[index]
        return next((f for f in self.fields if f.kind == "var_positional"), None)


class Contracts:
    """The contracts of a bus, read from its ``schema`` document.

    Args:
        document: the ``schema`` method's JSON Schema document (whole bus, or
            one name); ``None`` or ``{}`` when the bus has none to give (an
            older bus): every lookup then answers ``None``.
    """

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        document = document if isinstance(document, Mapping) else {}
        self.document = document
        self.defs: Mapping[str, Any] = _mapping(document.get("$defs"))
        self.commands: Mapping[str, Any] = _mapping(document.get("commands"))
        self.events: Mapping[str, Any] = _mapping(document.get("events"))

    def __bool__(self) -> bool:
        return bool(self.commands or self.events)

    def command(
        self, name: str, params: Iterable[Mapping[str, Any]] | None = None
    ) -> Contract | None:
        """The contract of command ``name``, or ``None`` if the document lacks it.

        Args:
            params: the command's ``params`` from ``inspect()``: they give each
                parameter's kind (positional, keyword-only, ``*args``...),
                which JSON Schema does not say.
        """
        entry = self.commands.get(name)
        if not isinstance(entry, Mapping):
            return None
        schema = _mapping(entry.get("params"))
        fields = _fields(schema, self.defs, _kinds(params))
        result_schema = _mapping(entry.get("result"))
        return Contract(
            name=name,
            kind="command",
            fields=fields,
            result=type_text(result_schema, self.defs),
            result_fields=_fields(_resolved(result_schema, self.defs), self.defs, {}),
            extra=schema.get("additionalProperties", True) is not False,
            description=str(entry.get("description") or ""),
        )

    def event(self, name: str) -> Contract | None:
        """The payload contract of event ``name``, or ``None`` if the document lacks it."""
        entry = self.events.get(name)
        if not isinstance(entry, Mapping):
            return None
        payload = _resolved(_mapping(entry.get("payload")), self.defs)
        parts = [_resolved(_mapping(p), self.defs) for p in payload.get("allOf", ())] or [payload]
        fields: dict[str, Field] = {}
        extra = False
        for part in parts:  # several listeners: the payload each of them takes
            for found in _fields(part, self.defs, {}):
                fields.setdefault(found.name, found)
            extra = extra or part.get("additionalProperties", True) is not False
        declared = bool(entry.get("declared"))
        return Contract(
            name=name,
            kind="event",
            fields=tuple(fields.values()),
            declared=declared,
            payload_type=str(entry["type"]) if declared and entry.get("type") else None,
            # A declared type takes its fields and no others; an inferred
            # payload what its listeners take.
            extra=not declared and (extra or not fields),
            description=str(payload.get("description") or ""),
        )


def type_text(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int = 0) -> str:
    """A JSON Schema said short: ``integer``, ``Mode``, ``list[Point]``, ``string | null``.

    A named type (a ``$ref``: a dataclass, a model, an enum) is its name; a
    ``Literal`` its values (``"s" | "m"``); ``{}`` is ``any``.
    """
    if depth > _DEPTH:
        return "..."
    if not isinstance(schema, Mapping):
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        key = ref.rsplit("/", 1)[-1]
        # Two types of one name are told apart in $defs by their module
        # (``a__b__Mode``); the title is the name the code gave it.
        title = _mapping(defs.get(key)).get("title")
        return title if isinstance(title, str) and title else key
    if "const" in schema:
        return choice_text(schema["const"], quote=True)
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(choice_text(v, quote=True) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            texts = [type_text(_mapping(o), defs, depth + 1) for o in options]
            return " | ".join(dict.fromkeys(texts))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(type_text({**schema, "type": k}, defs, depth + 1) for k in kind)
    if kind == "array":
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            inner = ", ".join(type_text(_mapping(p), defs, depth + 1) for p in prefix)
            return f"tuple[{inner}]"
        items = schema.get("items")
        return f"list[{type_text(_mapping(items), defs, depth + 1) if items else 'any'}]"
    if kind == "object":
        if schema.get("properties") and schema.get("title"):
            return str(schema["title"])
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and values:
            return f"dict[string, {type_text(values, defs, depth + 1)}]"
        return "object"
    if isinstance(kind, str):
        fmt = schema.get("format")
        return f"{kind} ({fmt})" if isinstance(fmt, str) else kind
    if "allOf" in schema and isinstance(schema["allOf"], list) and len(schema["allOf"]) == 1:
        return type_text(_mapping(schema["allOf"][0]), defs, depth + 1)
    return "any"


def choice_text(value: Any, *, quote: bool = False) -> str:
    """A JSON value as a person types it at the REPL or in a form.

    A string that reads back as itself is bare (``heat``), unless ``quote``;
    anything else is JSON (``"two words"``, ``42``, ``true``, ``null``).
    """
    if isinstance(value, str) and not quote and _bare(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _bare(text: str) -> bool:
    """Whether ``text`` typed bare is read back as this string (``busctl._args``)."""
    if not _BARE_WORD.match(text) or text in _JSON_WORDS:
        return False
    return text not in {"True", "False", "None", "inf", "nan", "Infinity", "NaN"}


def field_problems(data: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter at fault in an ``INVALID_ARGUMENT`` error's data, and what is wrong with it.

    The message is pydantic's (``Input should be 'heat' or 'off'``), with the
    path inside the argument when the fault is deep (``x: ...``).
    """
    found: dict[str, str] = {}
    problems = data.get("problems")
    if not isinstance(problems, list):
        problems = [data] if data.get("param") else []
    for problem in problems:
        if not isinstance(problem, Mapping) or not isinstance(problem.get("param"), str):
            continue
        path = problem.get("path")
        expected = problem.get("expected")
        message = str(problem.get("message") or f"must be {expected}")
        if isinstance(path, str) and path:
            message = f"{path}: {message}"
        elif isinstance(path, list) and path:
            message = f"{'.'.join(map(str, path))}: {message}"
        param = problem["param"]
        found[param] = f"{found[param]}; {message}" if param in found else message
    return found


# -- reading the document ---------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _resolved(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema``, or the definition it refers to (one ``$ref`` deep, local ones only)."""
    for _ in range(_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target = defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, Mapping):
            return schema
        schema = target
    return schema


def _kinds(params: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    if params is None:
        return {}
    return {
        str(p.get("name")): str(p.get("kind") or "positional_or_keyword")
        for p in params
        if isinstance(p, Mapping)
    }


def _choices(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[tuple[Any, ...], bool]:
    """The values an enum or ``Literal`` allows, and whether ``null`` is one of them."""
    schema = _resolved(schema, defs)
    if "const" in schema:
        return (schema["const"],), schema["const"] is None
    enum = schema.get("enum")
    if isinstance(enum, list):
        return tuple(v for v in enum if v is not None), None in enum
    kind = schema.get("type")
    if kind == "null":
        return (), True
    if isinstance(kind, list) and "null" in kind:
        return (), True
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        values: list[Any] = []
        nullable = False
        for option in options:
            found, null = _choices(_mapping(option), defs)
            nullable = nullable or null
            resolved = _resolved(_mapping(option), defs)
            if not found and not null and resolved.get("type") != "null":
                return (), nullable  # one branch takes more than a list of values
            values.extend(v for v in found if v not in values)
        return tuple(values), nullable
    return (), False


def _nullable(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> bool:
    schema = _resolved(schema, defs)
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        return any(_nullable(_mapping(o), defs) for o in options)
    return False


def _fields(
    schema: Mapping[str, Any], defs: Mapping[str, Any], kinds: Mapping[str, str]
) -> tuple[Field, ...]:
    properties = _mapping(schema.get("properties"))
    required = schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    found: list[Field] = []
    for name, raw in properties.items():
        prop = _mapping(raw)
        kind = kinds.get(name, "positional_or_keyword")
        choices, nullable = _choices(prop, defs)
        text = type_text(prop, defs)
        description = str(prop.get("description") or "")
        if kind in _VARIADIC:  # the schema describes the collected tuple or dict
            key = "items" if kind == "var_positional" else "additionalProperties"
            inner = _mapping(prop.get(key))
            text = type_text(inner, defs) if inner else "any"
            choices, nullable = _choices(inner, defs)
            description = ""  # the bus's note on it says what the kind already says
        found.append(
            Field(
                name=str(name),
                kind=kind,
                type=text,
                choices=choices,
                default=prop.get("default", MISSING),
                required=name in required_names,
                nullable=nullable or _nullable(prop, defs),
                description=description,
                schema=prop,
            )
        )
    # Parameters the schema leaves out (none should be) keep their place from inspect().
    known = {f.name for f in found}
    found += [Field(name=n, kind=k) for n, k in kinds.items() if n not in known]
    order = list(kinds)
    if order:
        found.sort(key=lambda f: order.index(f.name) if f.name in order else len(order))
    return tuple(found)
