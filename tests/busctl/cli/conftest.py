"""Fixtures for the CLI's tests: verbs run in this process against the module's bus.

``busctl(*args, input=None)`` runs a verb with click's ``CliRunner`` against
``bus_process``, the module's ``busctl run`` subprocess (``tests/busctl/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from busctl.cli import cli
from tests.busctl.programs import attach_to


@pytest.fixture
def attached(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process verbs see only the module's bus."""
    attach_to(monkeypatch, home)
    return home


@pytest.fixture
def busctl(bus_process: Any, attached: Path) -> Callable[..., Result]:
    """``busctl(*args, input=None)``: a verb run in process against ``bus_process``."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
