"""busctl's house rules: faces in folders, the protocol spelled once, modules of a readable size."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUSCTL = ROOT / "busctl"
SOURCES = sorted(BUSCTL.rglob("*.py"))

MAX_LINES = 500
"""About as long as a module gets before it does several things (STYLE.md)."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_error_code_or_envelope_is_spelled_out(path: Path) -> None:
    # The codes and the envelopes are bus.control.protocol's (ErrorCode,
    # request, dumps, loads): written once, read by the server and the console.
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"-32[0-9]{3}\b", text), "use bus.control.protocol.ErrorCode"
    assert not re.search(r"""["']jsonrpc["']""", text), "use bus.control.protocol's envelopes"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_readable(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{lines} lines: split it by what it does"


def test_render_imports_no_face() -> None:
    for path in sorted((BUSCTL / "render").rglob("*.py")):
        faces = {
            m for m in _imports(path) if m.startswith(("busctl.cli", "busctl.repl", "busctl.tui"))
        }
        assert not faces, (path, faces)
        assert not {m for m in _imports(path) if m == "bus" or m.startswith("bus.")}, path


def test_the_faces_do_not_reach_into_each_other() -> None:
    # The REPL and the TUI share with the CLI only the words of a failure
    # (cli.options.as_failure); everything drawn alike is busctl.render's.
    allowed = {"busctl.cli.options", "busctl.cli.options.as_failure"}
    for face, others in (
        ("repl", ("busctl.tui", "busctl.cli")),
        ("tui", ("busctl.repl", "busctl.cli")),
        ("cli", ("busctl.repl", "busctl.tui")),
    ):
        for path in sorted((BUSCTL / face).rglob("*.py")):
            reached = {m for m in _imports(path) if m.startswith(others)} - allowed
            assert not reached, (path, reached)


def test_traces_has_no_click() -> None:
    for path in sorted((BUSCTL / "traces").rglob("*.py")):
        assert not {m for m in _imports(path) if m.split(".")[0] in {"click", "rich"}}, path
