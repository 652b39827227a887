"""``busctl tui`` as a command: lazily loaded, Textual imported only when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from busctl.cli import cli

pytestmark = pytest.mark.timeout(60)


def test_tui_help_names_the_bus_option():
    result = CliRunner().invoke(cli, ["tui", "--help"])
    assert result.exit_code == 0
    assert "--bus NAME|PATH" in result.output
    assert "embedded sample bus" in result.output


def test_importing_the_command_does_not_load_textual():
    code = "import sys, busctl.tui; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tui_runs_the_app_on_what_connect_returns(monkeypatch):
    ran = []

    def fake_run(self):
        ran.append(self._connect_fn)

    monkeypatch.setattr("busctl.tui.app.BusctlApp.run", fake_run)
    result = CliRunner().invoke(cli, ["tui", "--bus", "home"])
    assert result.exit_code == 0, result.output
    assert len(ran) == 1
    assert callable(ran[0])
