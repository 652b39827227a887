"""One view of a bus from the answers of each of its processes.

The control protocol over NATS answers ``inspect`` for the bus as a whole
with ``merge``: each service with the processes (instances) that host it and
its counters summed, each command once with its calls summed over its
instances, every listener with its process, and every process's own
summary.

It answers ``schema`` with ``merge_schema``: each process describes the
commands and events it has the types of (its own), and the documents are
put together. A command is described once (replicas agree); an event by its
declared type if some process declared it, else by what every process's
listeners take; a type two processes define differently under one name
keeps both, the second renamed (``Point_2``) with its references.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["merge", "merge_schema"]

_SERVICE_SUMS = ("mailbox", "handled", "failed", "rejected", "dropped")
_COMMAND_SUMS = ("calls", "errors", "in_flight", "cancelled", "dropped", "late_replies")
_STATE_ORDER = ("failed", "starting", "stopping", "stopped", "running")


def merge(
    bus_name: str, parts: list[tuple[dict[str, Any], dict[str, Any] | None]]
) -> dict[str, Any]:
    """Merge ``(process, inspect or None)`` pairs (``None``: it did not answer)."""
    processes: list[dict[str, Any]] = []
    services: dict[str, dict[str, Any]] = {}
    commands: dict[str, dict[str, Any]] = {}
    listeners: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    for process, snapshot in parts:
        label = process["label"]
        if snapshot is None:
            processes.append({**process, "state": "unreachable"})
            continue
        bus = snapshot.get("bus", {})
        processes.append(
            {
                **process,
                "pid": bus.get("pid"),
                "started_at": bus.get("started_at"),
                "uptime": bus.get("uptime"),
                "state": bus.get("state"),
                "totals": snapshot.get("totals", {}),
            }
        )
        for key, value in snapshot.get("totals", {}).items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
        for service in snapshot.get("services", []):
            if service.get("kind") == "pool":
                service = {**service, "name": f"pool@{label}"}
            instance = {
                "process": label,
                "state": service.get("state"),
                "activity": service.get("activity"),
                "threads": service.get("threads", []),
                **{k: service.get(k, 0) for k in _SERVICE_SUMS},
            }
            merged = services.get(service["name"])
            if merged is None:
                merged = services[service["name"]] = {**service, "instances": []}
                merged["threads"] = []
            else:
                for key in _SERVICE_SUMS:
                    merged[key] = merged.get(key, 0) + service.get(key, 0)
                merged["state"] = min(
                    (merged.get("state"), service.get("state")),
                    key=lambda s: _STATE_ORDER.index(s) if s in _STATE_ORDER else 0,
                )
                if service.get("activity") == "busy":
                    merged["activity"] = "busy"
            merged["threads"] = [*merged["threads"], *service.get("threads", [])]
            merged["instances"].append(instance)
        for command in snapshot.get("commands", []):
            merged = commands.get(command["name"])
            if merged is None:
                commands[command["name"]] = {**command, "instances": [label]}
                continue
            for key in _COMMAND_SUMS:
                merged[key] = merged.get(key, 0) + command.get(key, 0)
            for key in ("p50_ms", "p99_ms"):
                values = [v for v in (merged.get(key), command.get(key)) if v is not None]
                merged[key] = max(values) if values else None
            if (command.get("last_error_at") or 0) > (merged.get("last_error_at") or 0):
                merged["last_error"] = command.get("last_error")
                merged["last_error_at"] = command.get("last_error_at")
            merged["instances"].append(label)
        listeners.extend({**entry, "process": label} for entry in snapshot.get("listeners", []))
        waits.extend({**entry, "process": label} for entry in snapshot.get("waits", []))
    totals["services"] = len([s for s in services.values() if s.get("kind") == "service"])
    totals["commands"] = len(commands)
    totals["processes"] = len(processes)
    return {
        "bus": {"name": bus_name, "transport": "nats", "processes": len(processes)},
        "processes": processes,
        "totals": totals,
        "services": sorted(services.values(), key=lambda s: s["name"]),
        "commands": sorted(commands.values(), key=lambda c: c["name"]),
        "listeners": listeners,
        "waits": waits,
    }


# -- schema ---------------------------------------------------------------------------


def merge_schema(bus_name: str, fmt: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema document of the whole bus from each process's (``jsonschema`` or
    ``asyncapi``, as the control protocol's ``schema`` makes them); at least one."""
    if fmt == "asyncapi":
        return _merge_asyncapi(bus_name, documents)
    return _merge_jsonschema(bus_name, documents)


def _merge_jsonschema(bus_name: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    commands: dict[str, Any] = {}
    events: dict[str, Any] = {}
    for document in documents:
        document = _adopt(document, "$defs", defs, "#/$defs/", lambda d: d.get("$defs", {}))
        for name, entry in document.get("commands", {}).items():
            commands.setdefault(name, entry)
        for name, entry in document.get("events", {}).items():
            known = events.get(name)
            if known is None or (entry.get("declared") and not known.get("declared")):
                events[name] = entry
            elif not known.get("declared") and not entry.get("declared"):
                known["payload"] = _payloads(known.get("payload"), entry.get("payload"))
    merged: dict[str, Any] = {
        "$schema": documents[0].get("$schema"),
        "title": f"bus {bus_name}",
        "commands": dict(sorted(commands.items())),
        "events": dict(sorted(events.items())),
    }
    if defs:
        merged["$defs"] = dict(sorted(defs.items()))
    return merged


def _merge_asyncapi(bus_name: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    first = documents[0]
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    for document in documents:
        ops = document.get("operations", {})
        contract = {"bus.error"}
        for key in ops:
            kind, _, name = key.partition(".")
            if kind == "execute":
                contract |= {f"{name}.params", f"{name}.result"}
            elif kind in ("fire", "listen"):
                contract.add(f"{name}.payload")

        def types(d: dict[str, Any], contract: set[str] = contract) -> dict[str, Any]:
            found = d.get("components", {}).get("schemas", {})
            return {k: v for k, v in found.items() if k not in contract}

        document = _adopt(document, None, schemas, "#/components/schemas/", types)
        components = document.get("components", {})
        for key, schema in components.get("schemas", {}).items():
            if key not in contract:
                continue
            known = schemas.get(key)
            if known is None:
                schemas[key] = schema
            elif key.endswith(".payload") and known != schema:
                channel = "event." + key.removesuffix(".payload")
                declared = "declared as" in str(document["channels"].get(channel, {}))
                was = "declared as" in str(channels.get(channel, {}))
                if declared and not was:
                    schemas[key] = schema
                    channels[channel] = document["channels"][channel]
                elif not declared and not was:
                    schemas[key] = _payloads(known, schema)
        for key, channel in document.get("channels", {}).items():
            channels.setdefault(key, channel)
        for key, operation in ops.items():
            known = operations.get(key)
            if known is None:
                operations[key] = operation
            elif key.startswith("listen."):
                tags = {t["name"]: t for t in [*known.get("tags", []), *operation.get("tags", [])]}
                known["tags"] = [tags[n] for n in sorted(tags)]
        for key, message in components.get("messages", {}).items():
            messages.setdefault(key, message)
        for key, trait in components.get("operationTraits", {}).items():
            traits.setdefault(key, trait)
    info = dict(first.get("info", {}))
    info["title"] = f"bus {bus_name}"
    merged: dict[str, Any] = {
        **{k: v for k, v in first.items() if k not in ("channels", "operations", "components")},
        "info": info,
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": dict(sorted(messages.items())),
            "operationTraits": traits,
        },
    }
    return merged


def _adopt(
    document: dict[str, Any],
    section: str | None,
    defs: dict[str, Any],
    prefix: str,
    types_of: Any,
) -> dict[str, Any]:
    """``document`` with its type definitions added to ``defs``.

    A definition ``defs`` holds already under the same name but differently
    is renamed in ``document`` (``Point_2``), every reference to it too, until
    nothing clashes (a renamed type changes those that refer to it). Returns
    the document as renamed (a copy when anything was).
    """
    renames: dict[str, str] = {}
    for _ in range(64):
        found = types_of(document)
        clash = {
            k: _free(k, defs, renames)
            for k, v in found.items()
            if k not in renames.values() and k in defs and defs[k] != v
        }
        if not clash:
            break
        renames.update(clash)
        document = _renamed(document, clash, prefix)
        if section is not None:
            section_defs = document.get(section, {})
            document[section] = {clash.get(k, k): v for k, v in section_defs.items()}
        else:
            schemas = document["components"]["schemas"]
            document["components"]["schemas"] = {clash.get(k, k): v for k, v in schemas.items()}
    for key, value in types_of(document).items():
        defs.setdefault(key, value)
    return document


def _free(key: str, defs: dict[str, Any], renames: dict[str, str]) -> str:
    n = 2
    while f"{key}_{n}" in defs or f"{key}_{n}" in renames.values():
        n += 1
    return f"{key}_{n}"


def _renamed(value: Any, renames: dict[str, str], prefix: str) -> Any:
    """A deep copy of ``value`` with references to renamed definitions changed."""
    value = copy.deepcopy(value)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix):
                target = ref[len(prefix) :]
                if target in renames:
                    node["$ref"] = prefix + renames[target]
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return value


def _payloads(one: Any, other: Any) -> Any:
    """The payload of an event whose listeners are in several processes: what each takes."""
    found: list[Any] = []
    for payload in (one, other):
        if not isinstance(payload, dict) or not payload:
            continue  # {}: a process whose listeners take anything
        for part in payload["allOf"] if set(payload) == {"allOf"} else [payload]:
            if part not in found:
                found.append(part)
    if len(found) < 2:
        return found[0] if found else {}
    # Each listener may ignore what the others take.
    return {"allOf": [{k: v for k, v in p.items() if k != "additionalProperties"} for p in found]}
