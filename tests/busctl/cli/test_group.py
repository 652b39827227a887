"""The ``busctl`` group: every verb is found where ``LAZY_VERBS`` says, and only when used."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from busctl.cli import LAZY_VERBS, cli

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("verb", sorted(LAZY_VERBS))
def test_every_lazy_verb_is_a_click_command_defined_where_it_says(verb: str) -> None:
    target, _ = LAZY_VERBS[verb]
    module_name, attribute = target.split(":")
    command = cli.get_command(click.Context(cli), verb)
    assert isinstance(command, click.Command)
    assert command.name == verb
    assert getattr(importlib.import_module(module_name), attribute) is command
    # Defined in that module, not re-exported from elsewhere: the table says
    # where to read the verb's code.
    assert command.callback is not None
    assert command.callback.__module__ == module_name


def test_help_lists_every_verb_with_its_one_line() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for verb, (_, line) in LAZY_VERBS.items():
        assert verb in result.output
        assert line in " ".join(result.output.split())


def test_help_imports_no_verb_module() -> None:
    # ``busctl --help`` stays instant: no verb's module (nor rich, textual,
    # prompt_toolkit) is imported to list the verbs.
    code = (
        "import sys\n"
        "from busctl.cli import cli\n"
        "try:\n"
        "    cli.main(['--help'], standalone_mode=False)\n"
        "finally:\n"
        "    loaded = sorted(m for m in sys.modules if m.startswith(('busctl.', 'rich', "
        "'textual', 'prompt_toolkit')))\n"
        "    print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("LOADED"))
    loaded = ast.literal_eval(line.removeprefix("LOADED "))
    assert loaded == ["busctl._exit", "busctl.cli", "busctl.cli.group"]
