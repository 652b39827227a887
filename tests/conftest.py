"""Fixtures shared by every test: a bus per test, and an in-memory span exporter.

There is no ``__init__.py`` here or under ``tests/bus``: as packages they would
be imported as ``bus`` and shadow the library under test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bus import Bus


@pytest.fixture
def bus() -> Iterator[Bus]:
    """A bus named ``test``, closed (every thread joined) after the test."""
    b = Bus(name="test")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def make_bus() -> Iterator[Callable[..., Bus]]:
    """``make_bus(**options)``: a bus with options, closed after the test."""
    made: list[Bus] = []

    def make(**options: Any) -> Bus:
        options.setdefault("name", "test")
        b = Bus(**options)
        made.append(b)
        return b

    yield make
    for b in reversed(made):
        b.close()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """Where the ``tracer_provider`` fixture's spans end up."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """An SDK provider exporting every span at once to ``span_exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def traced_bus(tracer_provider: TracerProvider) -> Iterator[Bus]:
    """A bus named ``traced`` whose spans go to ``tracer_provider``."""
    b = Bus(name="traced", tracer_provider=tracer_provider)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def finished_spans(
    span_exporter: InMemorySpanExporter,
) -> Callable[[Bus], list[ReadableSpan]]:
    """``finished_spans(bus)``: flush the bus's spans and return all exported."""

    def read(b: Bus) -> list[ReadableSpan]:
        assert b.flush_traces(timeout=10), "spans were not exported in time"
        return list(span_exporter.get_finished_spans())

    return read


def bus_threads(name: str) -> list[threading.Thread]:
    """The live threads that belong to the bus called ``name``."""
    return [t for t in threading.enumerate() if t.name.startswith(f"bus:{name}/")]


@pytest.fixture
def live_bus_threads() -> Callable[[str], list[threading.Thread]]:
    """``live_bus_threads(name)``: the live threads named ``bus:NAME/...``."""
    return bus_threads
