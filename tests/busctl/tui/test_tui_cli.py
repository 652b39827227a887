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


def test_tui_attaches_first_then_runs_the_app(monkeypatch, fake_source):
    ran = []
    monkeypatch.setattr("busctl.tui._source.connect", lambda target, nats=None: fake_source)
    monkeypatch.setattr("busctl.tui.app.BusctlApp.run", lambda self: ran.append(self))
    result = CliRunner().invoke(cli, ["tui", "--bus", "home"])
    assert result.exit_code == 0, result.output
    assert len(ran) == 1
    assert ran[0].source is fake_source


def test_tui_on_a_bus_that_is_not_there_exits_3(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["tui", "--bus", "nosuchbus"])
    assert result.exit_code == 3
    assert "nosuchbus" in result.output
