"""The typed contract of one name, as ``busctl introspect`` prints it.

    contracts = read_contracts(client, "thermostat.set_mode")
    contract = contracts.command("thermostat.set_mode", params=entry["params"])
    print_fields(contract.fields)                 # PARAMETER KIND TYPE CHOICES DEFAULT
    contract_json(contract)                       # the same, for --json

The contract is the bus's ``schema`` for that name (``busctl._types`` reads
it); a bus older than the typed contract has none, and then the signature
from ``inspect`` is all there is to show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bus.control.protocol import ErrorCode

from .._client import Client, RemoteError
from .._types import Contract, Contracts, Field, choice_text
from . import _output

__all__ = ["contract_json", "field_json", "print_fields", "print_result", "read_contracts"]

_CHOICES_SHOWN = 12  # an enum of more values is cut, the count said


def read_contracts(client: Client, name: str) -> Contracts:
    """The bus's contract of ``name`` (empty when the bus has none to give).

    Raises:
        RemoteError: the bus refused for another reason than "no such name"
            or "no such method" (an older bus).
    """
    try:
        document = client.request("schema", {"name": name}, timeout=30.0)
    except RemoteError as exc:
        if exc.code == ErrorCode.METHOD_NOT_FOUND:
            return Contracts()
        if exc.code == ErrorCode.INVALID_PARAMS and exc.data.get("param") == "name":
            return Contracts()  # neither a command nor an event the schema knows
        raise
    return Contracts(document if isinstance(document, dict) else None)


def choices_text(field: Field) -> str:
    """The values an enum or ``Literal`` allows, as typed: ``heat, off``; ``-`` for any."""
    values = [choice_text(v) for v in field.choices[:_CHOICES_SHOWN]]
    if field.nullable and field.choices:
        values.append("null")
    more = len(field.choices) - _CHOICES_SHOWN
    if more > 0:
        values.append(f"... ({more} more)")
    return ", ".join(values) or "-"


def default_text(field: Field) -> str:
    """``(required)``, the default as typed, or ``-`` (optional with no default JSON holds)."""
    if field.required:
        return "(required)"
    if field.kind == "var_positional":
        return "(any number)"
    if field.kind == "var_keyword":
        return "(any names)"
    return field.default_text() if field.has_default else "-"


def print_fields(fields: Sequence[Field], *, first: str = "PARAMETER", kinds: bool = True) -> None:
    """A table of parameters (or payload fields): kind, type, choices, default."""
    stars = {"var_positional": "*", "var_keyword": "**"}
    columns = [first, *(["KIND"] if kinds else []), "TYPE", "CHOICES", "DEFAULT"]
    rows = [
        [
            stars.get(f.kind, "") + f.name,
            *([f.kind] if kinds else []),
            f.type,
            choices_text(f),
            default_text(f),
        ]
        for f in fields
    ]
    _output.table(columns, rows)
    notes = [(f.name, f.description) for f in fields if f.description]
    for name, note in notes:  # why a parameter is not checked, say
        _output.console().print(f"  {name}: {note}", markup=False, highlight=False)


def print_result(contract: Contract) -> None:
    """What a command returns: its type, and the fields of an object."""
    if not contract.result_fields:
        return
    _output.console().print()
    _output.table(
        [f"RESULT {contract.result}", "TYPE", "CHOICES"],
        [[f.name, f.type, choices_text(f)] for f in contract.result_fields],
    )


def field_json(field: Field, *, kind: bool = True) -> dict[str, Any]:
    """One field for ``--json`` (``kind``: a parameter's, which a result's field has not)."""
    entry: dict[str, Any] = {"name": field.name}
    if kind:
        entry["kind"] = field.kind
    entry.update(type=field.type, required=field.required)
    if field.choices:
        entry["choices"] = list(field.choices)
    if field.has_default:
        entry["default"] = field.default
    if field.nullable:
        entry["nullable"] = True
    if field.description:
        entry["description"] = field.description
    return entry


def contract_json(contract: Contract) -> dict[str, Any]:
    """A contract for ``--json``: its fields, and the result type or the payload's origin."""
    entry: dict[str, Any] = {"fields": [field_json(f) for f in contract.fields]}
    if contract.kind == "command":
        entry["result"] = contract.result
        if contract.result_fields:
            entry["result_fields"] = [field_json(f, kind=False) for f in contract.result_fields]
    else:
        entry["declared"] = bool(contract.declared)
        if contract.payload_type:
            entry["payload_type"] = contract.payload_type
    entry["extra"] = contract.extra
    return entry


def payload_origin(contract: Contract | None, listeners: Iterable[Mapping[str, Any]]) -> str:
    """Where an event's payload contract comes from, in words."""
    if contract is None:
        return "not described: no listener registered for this exact name, none declared"
    if contract.declared:
        return f"{contract.payload_type or 'a type'} (declared)"
    exact = [entry for entry in listeners if entry.get("pattern") == contract.name]
    count = len(exact)
    return f"inferred from {count} listener{'s' if count != 1 else ''} of this exact name"
