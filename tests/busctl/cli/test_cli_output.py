"""What busctl prints: tables for people, JSON for scripts."""

from __future__ import annotations

import pytest

from busctl.cli import _output


def test_table_and_json_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    _output.table(["NAME", "CALLS"], [["say_hello", 3], ["[x]", None]], right=["CALLS"])
    _output.print_json({"a": [1]})
    out = capsys.readouterr().out
    assert "say_hello" in out
    assert "[x]" in out
    assert out.endswith('{\n  "a": [\n    1\n  ]\n}\n')
