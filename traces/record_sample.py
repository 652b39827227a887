"""Record ``sample_services/sample.jsonl``: a short session of the sample services.

    python traces/record_sample.py [OUT]      # default: sample_services/sample.jsonl

The file ships as package data (``sample_services.sample_trace()``, ``busctl
trace show --sample``); ``traces/sample.jsonl`` is a link to it.

The bus exports every span into an SDK ``TracerProvider``; the spans are
written with ``busctl.traces.write_trace_file`` (OTLP JSON lines). The
session is deterministic apart from ids and times: the sensor is seeded, the
clock does not tick by itself, and each step waits until the bus is idle, so
replaying the file onto fresh sample services reproduces it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sample_services
from bus import Bus
from bus.testing import wait_idle

__all__ = ["OPTIONS", "SESSION", "record", "run_session"]

OPTIONS: dict[str, Any] = {
    "tick_interval": 3600.0,  # the session fires clock.tick itself
    "notifier_delay": 0.005,
    "sensor_failure_rate": 0.5,
    "sensor_seed": 7,
}
"""The ``sample_services.start`` options the session is recorded (and replayed) with."""

# (kind, name, args, kwargs): events first, then queries, then a scene.
SESSION: list[tuple[str, str, list[Any], dict[str, Any]]] = [
    ("event", "greet_event", ["Bob"], {}),
    ("event", "motion.detected", [], {"room": "hall"}),
    ("event", "motion.detected", [], {"room": "garage"}),
    ("event", "clock.tick", [], {"count": 2, "timestamp": 1700000000.0}),
    ("event", "clock.tick", [], {"count": 4, "timestamp": 1700000002.0}),
    ("command", "say_hello", ["Alice"], {}),
    ("command", "lights.get", ["hall"], {}),
    ("command", "thermostat.get", ["living_room"], {}),
    ("command", "lights.get", ["attic"], {}),
    ("command", "automation.status", [], {}),
    ("command", "automation.evening_scene", [], {}),
]


def run_session(bus: Bus, session: list[tuple[str, str, list[Any], dict[str, Any]]]) -> None:
    """Send the session's traffic, each step once the bus is idle again."""
    for kind, name, args, kwargs in session:
        if kind == "event":
            bus.fire_event(name, *args, **kwargs)
        else:
            try:
                bus.execute_command(name, *args, **kwargs).result(timeout=10)
            except Exception as exc:  # recorded on the span: that is the point
                print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        wait_idle(bus)
        time.sleep(0.02)  # a visible gap between steps, for the recorded pace


def record(
    session: list[tuple[str, str, list[Any], dict[str, Any]]] = SESSION,
    options: dict[str, Any] | None = None,
) -> list[ReadableSpan]:
    """Run the session on a fresh bus with the sample services; return its spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sample"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with Bus(name="sample", tracer_provider=provider) as bus:
        sample_services.start(bus, **(OPTIONS if options is None else options))
        run_session(bus, session)
        bus.flush_traces()
    provider.shutdown()
    return sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)


def main() -> None:
    """Record the session into the file named on the command line."""
    from busctl.traces import write_trace_file

    default = Path(__file__).resolve().parents[1] / "sample_services" / "sample.jsonl"
    out = Path(sys.argv[1] if len(sys.argv) > 1 else default)
    count = write_trace_file(out, record(), by_trace=True)
    print(f"wrote {count} spans to {out}")


if __name__ == "__main__":
    main()
