"""Fixtures for the sample services: a fresh bus per test, fast options.

This directory has no ``__init__.py`` on purpose: as a package it would be
imported as ``sample_services`` and shadow the package under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sample_services
from bus import Bus

FAST: sample_services.Options = {
    "tick_interval": 3600.0,  # no ticks unless a test fires them
    "notifier_delay": 0.0,
    "sensor_failure_rate": 0.0,
    "sensor_seed": 0,
}
"""Options that keep tests quick and deterministic."""

Call = Callable[..., Any]


@pytest.fixture
def bus() -> Iterator[Bus]:
    """A bus of its own, closed (every thread joined) after the test."""
    with Bus(name="test") as b:
        yield b


@pytest.fixture
def options() -> sample_services.Options:
    """A copy of ``FAST`` for tests that start the services with changes."""
    return FAST.copy()


@pytest.fixture
def home(bus: Bus) -> Bus:
    """The bus with every sample service started with ``FAST`` options."""
    sample_services.start(bus, **FAST)
    return bus


@pytest.fixture
def call(bus: Bus) -> Call:
    """``call(name, *args, **kwargs)``: execute a command and wait for its result."""

    def run(name: str, /, *args: Any, **kwargs: Any) -> Any:
        return bus.execute_command(name, *args, **kwargs).result(timeout=10)

    return run
