"""Which ``TracerProvider`` receives the bus's spans, and how they reach it.

An explicit provider wins, then the application's global one; with neither
the bus makes its own, configured from the standard ``OTEL_*`` variables.
``OTEL_SDK_DISABLED=true`` turns tracing off for the process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sized
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ._otlp_file import OtlpJsonFileExporter

__all__ = [
    "batch_queues",
    "processor_of",
    "resolve_provider",
    "tracing_disabled_by_env",
]

log = logging.getLogger("bus.tracing")


def tracing_disabled_by_env() -> bool:
    """Whether ``OTEL_SDK_DISABLED`` turns tracing off for the process."""
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _env_exporters() -> list[SpanExporter]:
    """Exporters named by ``OTEL_TRACES_EXPORTER``, loaded as the SDK does.

    Unlike the SDK's auto-configuration, nothing is exported when the variable
    is unset: a bus on its own keeps its spans in memory for the console.
    """
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    exporters: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "none":
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("OTEL_TRACES_EXPORTER names %r, but no such exporter is installed", name)
            continue
        try:
            exporters.append(next(iter(found)).load()())
        except Exception:
            log.exception("could not start the span exporter %r", name)
    return exporters


def resolve_provider(
    explicit: trace.TracerProvider | None, bus_name: str
) -> tuple[trace.TracerProvider, list[OtlpJsonFileExporter]]:
    """The provider whose processors receive the bus's spans, and trace files to write.

    An explicit provider wins, then the application's global one; with neither,
    the bus makes its own (resource from ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``, exporters from ``OTEL_TRACES_EXPORTER``).
    The bus's own trace-file exporters (``bus_otlp_json_file``) on its own
    provider are returned apart: the trace thread writes their lines straight
    from its records, with no SDK span in between (and nothing dropped).
    """
    if explicit is not None:
        return explicit, []
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return current, []
    # The bus's name is only the default: OTEL_SERVICE_NAME (or service.name
    # in OTEL_RESOURCE_ATTRIBUTES) wins, as it does for the SDK.
    resource = Resource.create()
    if not OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        resource = resource.merge(Resource({SERVICE_NAME: bus_name}))
    own = TracerProvider(resource=resource)
    files: list[OtlpJsonFileExporter] = []
    for exporter in _env_exporters():
        if type(exporter) is OtlpJsonFileExporter:
            files.append(exporter)
        else:
            own.add_span_processor(BatchSpanProcessor(exporter))
    return own, files


def processor_of(provider: trace.TracerProvider) -> SpanProcessor | None:
    # The SDK has no public getter for a provider's processors. Handing spans
    # to them directly is what lets the bus build spans off the hot path with
    # ids it chose on the hot path; every SDK release since 1.0 has this
    # attribute, and a provider without it gets the slower fallback below.
    processor = getattr(provider, "_active_span_processor", None)
    return processor if isinstance(processor, SpanProcessor) else None


def batch_queues(processor: SpanProcessor) -> list[tuple[Sized, int, int]]:
    """``(queue, bound, export batch)`` of each ``BatchSpanProcessor`` among ``processor``'s.

    For the lossless mode, which must not overrun them. Read from the SDK's
    internals, which have no public getter; a processor that does not look
    as expected is left out (and then drops as it would anyway).
    """
    found: list[tuple[Sized, int, int]] = []
    members = getattr(processor, "_span_processors", (processor,))
    for member in members if isinstance(members, tuple) else ():
        if not isinstance(member, BatchSpanProcessor):
            continue
        inner = getattr(member, "_batch_processor", None)
        queue = getattr(inner, "_queue", None)
        size = getattr(inner, "_max_queue_size", None)
        batch = getattr(inner, "_max_export_batch_size", None)
        if (
            isinstance(queue, Sized)
            and isinstance(size, int)
            and isinstance(batch, int)
            and 0 < batch <= size
        ):
            found.append((queue, size, batch))
    return found
