"""One view of a bus from the ``inspect()`` of each of its processes.

The control protocol over NATS answers ``inspect`` for the bus as a whole
with ``merge``: each service with the processes (instances) that host it and
its counters summed, each command once with its calls summed over its
instances, every listener with its process, and every process's own
summary.
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge"]

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
