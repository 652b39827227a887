"""Fixtures for the control endpoint's tests.

A module says which bus it serves in a fixture ``served`` (a ``Bus``, or a
tuple that starts with one), usually made with ``serve``; ``client`` is a raw
line client on it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bus import Bus, Service
from tests.bus.control.control_client import LineClient


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private, short ``XDG_RUNTIME_DIR`` (AF_UNIX paths are limited to 107 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="bctl", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    monkeypatch.delenv("BUS_ADDRESS", raising=False)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def serve(runtime_dir: Path, make_bus: Callable[..., Bus]) -> Callable[..., Bus]:
    """``serve(name, *services, **options)``: a ``Bus(control=True)`` running ``services``.

    It listens in ``runtime_dir`` and is closed after the test (by ``make_bus``),
    after the fixtures that use it have finished theirs.
    """

    def start(name: str, *services: Service, **options: Any) -> Bus:
        bus = make_bus(name=name, control=True, **options)
        for service in services:
            bus.add_service(service)
        return bus

    return start


@pytest.fixture
def client(served: Bus | tuple[Any, ...]) -> Iterator[LineClient]:
    """A raw line client on the module's ``served`` bus, closed after the test."""
    bus = served[0] if isinstance(served, tuple) else served
    assert isinstance(bus, Bus)
    assert bus.address is not None
    with LineClient(bus.address) as c:
        yield c
